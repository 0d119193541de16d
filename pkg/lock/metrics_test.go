package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/metricstest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestLocker_waitMetric: two callers contend for one lock on a real database; a real
// scrape shows each wait by kind, mode and outcome: granted after the holder commits,
// given up by its caller, and timed out.
func TestLocker_waitMetric(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	reg := prometheus.NewRegistry()
	l := lock.New(lock.Config{Wait: 30 * time.Second}, reg)

	holder, waiter := begin(t, pool), begin(t, pool)
	if err := l.Acquire(t.Context(), holder, "stock:AAPL", lock.Write); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	done := acquireAsync(t, l, waiter, "stock:AAPL", lock.Write)
	waitForWaiter(t, l, pool)
	if err := holder.Commit(t.Context()); err != nil {
		t.Fatalf("holder commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter Acquire: %v", err)
	}

	// The waiter holds it now; a third caller gives up while waiting.
	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error, 1)
	go func() { gaveUp <- l.Acquire(ctx, begin(t, pool), "stock:AAPL", lock.Read) }()
	waitForWaiter(t, l, pool)
	cancel()
	if err := <-gaveUp; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Acquire = %v, want context.Canceled", err)
	}

	short := prometheus.NewRegistry()
	impatient := lock.New(lock.Config{Wait: 100 * time.Millisecond}, short)
	if err := impatient.Acquire(t.Context(), begin(t, pool), "portfolio:42/position:AAPL", lock.Exclusive); err != nil {
		t.Fatalf("Acquire position: %v", err)
	}
	if err := impatient.Acquire(t.Context(), begin(t, pool), "portfolio:42/position:AAPL", lock.Read); !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Acquire under an exclusive lock = %v, want ErrTimeout", err)
	}

	body := metricstest.Scrape(t, metricstest.Serve(t, reg))
	for _, want := range []string{
		`pgfleet_lock_wait_seconds_count{kind="stock",mode="write",outcome="acquired"} 2`,
		`pgfleet_lock_wait_seconds_count{kind="stock",mode="read",outcome="canceled"} 1`,
		`pgfleet_lock_wait_seconds_bucket{kind="stock",mode="write",outcome="acquired",le="0.0001"} `,
		`pgfleet_lock_wait_seconds_bucket{kind="stock",mode="write",outcome="acquired",le="+Inf"} 2`,
	} {
		metricstest.WantLine(t, body, want)
	}
	body = metricstest.Scrape(t, metricstest.Serve(t, short))
	metricstest.WantLine(t, body, `pgfleet_lock_wait_seconds_count{kind="position",mode="exclusive",outcome="acquired"} 1`)
	metricstest.WantLine(t, body, `pgfleet_lock_wait_seconds_count{kind="position",mode="read",outcome="timeout"} 1`)
}
