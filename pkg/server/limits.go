package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// Limits bound what one caller may hold of a server at once, so that no caller, with a
// token or without, can take the capacity every other caller needs. Streaming calls may last
// minutes, so a caller's streams beyond StreamsPerCaller are refused at once. Unary calls
// are short: beyond CallsPerCaller running, a caller's calls wait their turn in a line of
// the caller's own (so they queue behind each other, not in front of other callers' calls
// at the pool), bounded by the call's deadline; beyond CallQueuePerCaller waiting, they are
// refused (0: calls beyond CallsPerCaller are refused at once). Refusals are
// RESOURCE_EXHAUSTED (HTTP 429 through the gateway) with reason TOO_MANY_STREAMS or
// TOO_MANY_REQUESTS and a RetryInfo. Zero StreamsPerCaller or CallsPerCaller: no limit.
//
// A caller is the token's subject; a call without one (public methods) is its client's
// address, an IPv6 address counting by its /64 (what one host or subscriber gets). A peer in
// TrustedProxies (the gateway, a load balancer) calls for others: the client is then the
// right-most address of x-forwarded-for that is not itself a trusted proxy, as in Rails'
// RemoteIp. The gateway appends its own peer's address to that header (grpc-gateway), so a
// client cannot pick an identity unless it sits in a trusted range itself. Calls by the
// service role (the fleet's own services: portfolio prices every trade through one token)
// and calls of grpc's own services (health, reflection) are not limited.
type Limits struct {
	StreamsPerCaller   int `env:"STREAMS_PER_CALLER, default=8" help:"streaming calls one caller may have open at once; more are RESOURCE_EXHAUSTED TOO_MANY_STREAMS; 0: no limit"`
	CallsPerCaller     int `env:"CALLS_PER_CALLER, default=64" help:"unary calls one caller may have running at once; more wait in a line of its own; 0: no limit"`
	CallQueuePerCaller int `env:"CALL_QUEUE_PER_CALLER, default=1024" help:"unary calls of one caller that may wait behind those running; more are TOO_MANY_REQUESTS"`
	// TrustedProxies are CIDR prefixes whose peers may speak for others through
	// x-forwarded-for: by default loopback and the private ranges, where the gateway runs.
	TrustedProxies []string `env:"TRUSTED_PROXIES, default=127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7" help:"CIDR prefixes (comma-separated) of peers that call for others (the gateway, a balancer): their anonymous calls count as the x-forwarded-for client's"`
}

// limiter enforces Limits per caller.
type limiter struct {
	limits   Limits
	proxies  []netip.Prefix
	identify func(context.Context) (string, bool)
	refused  *prometheus.CounterVec
	waiting  prometheus.Gauge

	mu      sync.Mutex
	callers map[string]*callerLoad
}

// callerLoad is what one caller holds now; it is dropped when the caller holds nothing.
type callerLoad struct {
	streams int
	calls   int // running and waiting unary calls
	running *semaphore.Weighted
}

func newLimiter(limits Limits, identify func(context.Context) (string, bool)) (*limiter, error) {
	l := &limiter{limits: limits, identify: identify, callers: map[string]*callerLoad{}}
	for _, s := range limits.TrustedProxies {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("TRUSTED_PROXIES: %w", err)
		}
		l.proxies = append(l.proxies, p.Masked())
	}
	l.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgfleet_grpc_limited_total",
		Help: "Calls refused RESOURCE_EXHAUSTED because their caller held too many streams or calls (reason TOO_MANY_STREAMS, TOO_MANY_REQUESTS).",
	}, []string{"grpc_method", "reason"})
	l.waiting = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pgfleet_grpc_calls_waiting",
		Help: "Unary calls waiting for their caller's other calls to end (CALLS_PER_CALLER).",
	})
	return l, nil
}

// caller returns the key of ctx's caller, or exempt.
func (l *limiter) caller(ctx context.Context, fullMethod string) (key string, exempt bool) {
	if strings.HasPrefix(fullMethod, "/grpc.") {
		return "", true
	}
	if l.identify != nil {
		subject, exempt := l.identify(ctx)
		if exempt {
			return "", true
		}
		if subject != "" {
			return "subject " + subject, false
		}
	}
	return "address " + ClientAddr(ctx, l.proxies), false
}

// load returns key's load, creating it; l.mu must be held.
func (l *limiter) load(key string) *callerLoad {
	c, ok := l.callers[key]
	if !ok {
		c = &callerLoad{}
		if l.limits.CallsPerCaller > 0 {
			c.running = semaphore.NewWeighted(int64(l.limits.CallsPerCaller))
		}
		l.callers[key] = c
	}
	return c
}

// drop forgets key's load once it holds nothing; l.mu must be held.
func (l *limiter) drop(key string, c *callerLoad) {
	if c.streams == 0 && c.calls == 0 {
		delete(l.callers, key)
	}
}

func (l *limiter) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	key, exempt := l.caller(ctx, info.FullMethod)
	if exempt || l.limits.CallsPerCaller <= 0 {
		return handler(ctx, req)
	}
	l.mu.Lock()
	c := l.load(key)
	if q := max(l.limits.CallQueuePerCaller, 0); c.calls >= l.limits.CallsPerCaller+q {
		l.drop(key, c)
		l.mu.Unlock()
		l.refused.WithLabelValues(info.FullMethod, string(apierr.TooManyRequests)).Inc()
		return nil, apierr.Newf(apierr.TooManyRequests, map[string]string{
			"caller": key, "running_limit": strconv.Itoa(l.limits.CallsPerCaller), "queue_limit": strconv.Itoa(q),
		}, "too many requests: %s has %d calls running and %d waiting, its limits; retry later",
			key, l.limits.CallsPerCaller, q)
	}
	c.calls++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		c.calls--
		l.drop(key, c)
		l.mu.Unlock()
	}()
	if !c.running.TryAcquire(1) {
		l.waiting.Inc()
		err := c.running.Acquire(ctx, 1)
		l.waiting.Dec()
		if err != nil { // the call's deadline ran out in line
			return nil, contextError(err)
		}
	}
	defer c.running.Release(1)
	return handler(ctx, req)
}

func (l *limiter) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	key, exempt := l.caller(ss.Context(), info.FullMethod)
	if exempt || l.limits.StreamsPerCaller <= 0 {
		return handler(srv, ss)
	}
	l.mu.Lock()
	c := l.load(key)
	if n := l.limits.StreamsPerCaller; c.streams >= n {
		l.drop(key, c)
		l.mu.Unlock()
		l.refused.WithLabelValues(info.FullMethod, string(apierr.TooManyStreams)).Inc()
		return apierr.Newf(apierr.TooManyStreams, map[string]string{
			"caller": key, "limit": strconv.Itoa(n), "scope": "caller",
		}, "too many streams: %s has %d open, its limit; close one or retry later", key, n)
	}
	c.streams++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		c.streams--
		l.drop(key, c)
		l.mu.Unlock()
	}()
	return handler(srv, ss)
}

// contextError is the status of a call whose context ended while it waited.
func contextError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return apierr.New(apierr.DeadlineExceeded, "deadline exceeded while waiting behind the caller's other calls", nil)
	}
	return apierr.New(apierr.Cancelled, "cancelled while waiting behind the caller's other calls", nil)
}

// ClientAddr returns the address of the client a call comes from: its peer's, unless the
// peer is in trusted, a proxy speaking for others; then the right-most address of the
// x-forwarded-for metadata that is not itself in trusted (the left-most, if all are). IPv6
// addresses are given as their /64 prefix, which one host or subscriber holds whole.
func ClientAddr(ctx context.Context, trusted []netip.Prefix) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	addr := addrOf(p.Addr.String())
	if !addr.IsValid() {
		return p.Addr.String() // not IP: a unix socket, an in-process pipe
	}
	if isTrusted(addr, trusted) {
		md, _ := metadata.FromIncomingContext(ctx)
		var hops []string
		for _, v := range md.Get("x-forwarded-for") {
			hops = append(hops, strings.Split(v, ",")...)
		}
		for i := len(hops) - 1; i >= 0; i-- {
			hop := addrOf(strings.TrimSpace(hops[i]))
			if !hop.IsValid() {
				break // what a trusted hop did not write: stop at the last one it did
			}
			addr = hop
			if !isTrusted(hop, trusted) {
				break
			}
		}
	}
	if addr.Is6() {
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	return addr.String()
}

// addrOf parses an address with or without a port ("10.0.0.1", "10.0.0.1:5000", "[::1]:5000");
// the zero Addr if s is none.
func addrOf(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
