package lock_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgfleet/pgfleet/pkg/lock"
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

	body := scrape(t, serveMetrics(t, reg))
	for _, want := range []string{
		`pgfleet_lock_wait_seconds_count{kind="stock",mode="write",outcome="acquired"} 2`,
		`pgfleet_lock_wait_seconds_count{kind="stock",mode="read",outcome="canceled"} 1`,
		`pgfleet_lock_wait_seconds_bucket{kind="stock",mode="write",outcome="acquired",le="0.0001"} `,
		`pgfleet_lock_wait_seconds_bucket{kind="stock",mode="write",outcome="acquired",le="+Inf"} 2`,
	} {
		wantLine(t, body, want)
	}
	body = scrape(t, serveMetrics(t, short))
	wantLine(t, body, `pgfleet_lock_wait_seconds_count{kind="position",mode="exclusive",outcome="acquired"} 1`)
	wantLine(t, body, `pgfleet_lock_wait_seconds_count{kind="position",mode="read",outcome="timeout"} 1`)
}

// serveMetrics serves reg's /metrics on a real listener until the test ends.
func serveMetrics(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis) //nolint:errcheck // ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })
	return "http://" + lis.Addr().String() + "/metrics"
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url) //nolint:noctx // a local scrape, bounded by the test's deadline
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return string(b)
}

// wantLine fails unless a line of body starts with want.
func wantLine(t *testing.T, body, want string) {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, want) {
			return
		}
	}
	t.Errorf("scrape lacks a line starting %q; pgfleet_lock lines:\n%s", want, lockLines(body))
}

func lockLines(body string) string {
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, "pgfleet_lock_wait_seconds_count") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
