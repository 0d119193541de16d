package pgpool

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// Ping is the outcome of one health check.
type Ping struct {
	At  time.Time     // when the check began
	RTT time.Duration // round trip of the ping itself, not counting the wait for a connection
	Err error         // nil when the database answered
}

// Monitor pings the database through a pool on an interval and tells subscribers when it starts
// or stops answering. The server mirrors it into the gRPC health status.
type Monitor struct {
	pool     *pgxpool.Pool
	interval time.Duration
	timeout  time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	last    Ping
	seen    bool // last holds a result
	serving bool
	subs    []func(serving bool)
}

// NewMonitor returns a Monitor that pings every interval (2s if interval is not positive) and
// logs transitions to log (nil discards them).
func NewMonitor(pool *pgxpool.Pool, interval time.Duration, log *slog.Logger) *Monitor {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Monitor{
		pool:     pool,
		interval: interval,
		// Shorter than the interval, so checks never pile up. The timeout covers the wait for a
		// connection too: a pool too busy to lend one for that long counts as not serving,
		// which steers new calls to replicas that can take them.
		timeout: interval * 3 / 4,
		log:     log,
	}
}

// OnChange registers fn to be called with the first result and then on every change between
// serving and not serving. Register before Run; fn runs on Run's goroutine and must not block.
func (m *Monitor) OnChange(fn func(serving bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs = append(m.subs, fn)
}

// Run checks at once and then every interval until ctx is done.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		m.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Serving reports whether the last ping succeeded; false before the first.
func (m *Monitor) Serving() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serving
}

// Last returns the latest ping; its zero value before the first.
func (m *Monitor) Last() Ping {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

func (m *Monitor) check(ctx context.Context) {
	// Each check is a task of its own: its log line carries a request_id, as a call's do.
	ctx = telemetry.WithRequestID(ctx, telemetry.NewRequestID())
	p := m.ping(ctx)
	if ctx.Err() != nil {
		return // shutting down: not the database's fault
	}
	serving := p.Err == nil
	m.mu.Lock()
	changed := !m.seen || serving != m.serving
	m.last, m.seen, m.serving = p, true, serving
	subs := m.subs
	m.mu.Unlock()
	if !changed {
		return
	}
	if serving {
		m.log.InfoContext(ctx, "database serving", "rtt", p.RTT)
	} else {
		m.log.WarnContext(ctx, "database not serving", "err", p.Err)
	}
	for _, fn := range subs {
		fn(serving)
	}
}

func (m *Monitor) ping(ctx context.Context) Ping {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	p := Ping{At: time.Now()}
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		p.Err = err
		return p
	}
	defer conn.Release() // pgxpool destroys it if the ping broke it
	start := time.Now()
	p.Err = conn.Ping(ctx)
	p.RTT = time.Since(start)
	return p
}
