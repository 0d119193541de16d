package main

import (
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"

	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// connLimit is a listener that keeps at most cap(slots) connections open, which bounds the
// gateway's memory whatever the number of clients: each open connection holds a goroutine or
// two and their buffers, some 30 to 60 KiB under load. Past the bound, Accept waits for a
// connection to close, and new ones wait in the kernel's accept queue: they are served late,
// not refused. So that the waiting ones get a turn, a full listener turns HTTP keep-alives
// off (idle connections close at once, busy ones after their answer, and their clients line
// up again); once a quarter of the slots are free again, it turns them back on. A connection
// that carries a Watch stream (server-sent events, open for as long as its client stays) gives
// its slot back as the stream starts and closes when it ends (connRelease).
type connLimit struct {
	net.Listener
	slots chan struct{}

	full          atomic.Bool
	kick          chan struct{} // wakes the goroutine that applies full to keep-alives
	setKeepAlives func(on bool) // http.Server.SetKeepAlivesEnabled
	closeOnce     sync.Once
	done          chan struct{}
}

// newConnLimit limits l to max connections; setKeepAlives is called, from a goroutine of
// its own (closing idle connections gives slots back, which must not wait for it), whenever
// the listener fills up or has room again.
func newConnLimit(l net.Listener, max int, setKeepAlives func(on bool)) *connLimit {
	cl := &connLimit{Listener: l, slots: make(chan struct{}, max), kick: make(chan struct{}, 1),
		setKeepAlives: setKeepAlives, done: make(chan struct{})}
	go cl.apply()
	return cl
}

// Accept waits for a free slot, then for a connection.
func (l *connLimit) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	if len(l.slots) == cap(l.slots) && l.full.CompareAndSwap(false, true) {
		l.wake()
	}
	return &limitedConn{Conn: c, release: sync.OnceFunc(l.release)}, nil
}

func (l *connLimit) release() {
	<-l.slots
	if len(l.slots) <= cap(l.slots)*3/4 && l.full.CompareAndSwap(true, false) {
		l.wake()
	}
}

func (l *connLimit) wake() {
	select {
	case l.kick <- struct{}{}:
	default: // a wake-up is pending: it will read the latest state
	}
}

// apply turns keep-alives off while the listener is full, on otherwise.
func (l *connLimit) apply() {
	for {
		select {
		case <-l.kick:
			l.setKeepAlives(!l.full.Load())
		case <-l.done:
			return
		}
	}
}

// open is the number of connections open now.
func (l *connLimit) open() int { return len(l.slots) }

// Close closes the listener, ends a waiting Accept and the keep-alive goroutine.
func (l *connLimit) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// connRelease is http.Server.ConnContext: it lets the gateway take a connection that carries
// a Watch stream out of the limit (gateway.WithConnRelease); MAX_WATCH_STREAMS bounds those.
func connRelease(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		return gateway.WithConnRelease(ctx, lc.release)
	}
	return ctx
}
