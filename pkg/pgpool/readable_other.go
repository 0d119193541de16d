//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package pgpool

import "net"

// readable cannot peek at sockets on this platform; pgxpool's idle-time rule alone decides.
func readable(net.Conn) bool { return false }
