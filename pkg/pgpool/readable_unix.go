//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package pgpool

import (
	"errors"
	"net"
	"syscall"
)

// readable reports whether conn, idle between queries and with no read in progress (see
// PgConn.SyncConn), has input waiting or was closed by the server; either way it should be pinged
// before use. It peeks at the socket without blocking and without consuming anything
// (go-sql-driver/mysql checks its idle connections the same way).
func readable(conn net.Conn) bool {
	for {
		// TLS wraps the socket; encrypted bytes waiting count as input just the same.
		inner, ok := conn.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		conn = inner.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	var peekErr error
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, peekErr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true // never wait for readiness: an idle, healthy connection has nothing to read
	})
	if err != nil {
		return true
	}
	if errors.Is(peekErr, syscall.EAGAIN) || errors.Is(peekErr, syscall.EWOULDBLOCK) {
		return false
	}
	return true // a message waiting (the server's FATAL error, say), end of stream, or a socket error
}
