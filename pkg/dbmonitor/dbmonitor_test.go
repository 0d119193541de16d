package dbmonitor_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/dbmonitor"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestGetDatabaseStatus(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	locks := lock.New(lock.Config{Wait: time.Second}, nil)
	mon := dbmonitor.New("stock", pool, locks, retry.New(retry.Config{MaxAttempts: 1}, nil), nil, nil)

	// Hold a write lock in an open transaction: the status must list it.
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context()) //nolint:errcheck // the test ends here
	if err := locks.Acquire(t.Context(), tx, "stock:AAPL", lock.Write); err != nil {
		t.Fatal(err)
	}

	resp, err := mon.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
	if err != nil {
		t.Fatalf("GetDatabaseStatus: %v", err)
	}
	st := resp.GetStatus()
	if st.GetService() != "stock" || st.GetHealth() != opsv1.Health_HEALTH_SERVING || st.GetError() != "" {
		t.Errorf("status = %v, want stock SERVING without error", st)
	}
	if !strings.HasPrefix(st.GetServerVersion(), "1") || st.GetResponseTime().AsDuration() <= 0 {
		t.Errorf("server_version %q, response_time %v; want a version and a positive time", st.GetServerVersion(), st.GetResponseTime().AsDuration())
	}
	if st.GetPool().GetMaxConns() == 0 || st.GetPool().GetAcquiredConns() < 1 {
		t.Errorf("pool = %v, want max_conns set and the transaction's connection acquired", st.GetPool())
	}
	if st.GetRetry().GetBreakerState() != "closed" {
		t.Errorf("breaker state %q, want closed", st.GetRetry().GetBreakerState())
	}
	var found bool
	for _, l := range st.GetLocks() {
		if l.GetResource() == "stock:AAPL" && l.GetMode() == opsv1.LockMode_LOCK_MODE_WRITE && l.GetGranted() {
			found = true
		}
	}
	if !found {
		t.Errorf("locks = %v, want a granted write lock on stock:AAPL", st.GetLocks())
	}
}

// A database that is down is reported in the status, not as a failed call.
func TestGetDatabaseStatus_down(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	pool := cluster.NewDB(t)
	mon := dbmonitor.New("stock", pool, lock.New(lock.Config{}, nil), retry.New(retry.Config{MaxAttempts: 1}, nil), nil, nil)
	cluster.Stop(t)
	t.Cleanup(func() { cluster.Start(t) }) // runs first: the database's own cleanup drops it

	resp, err := mon.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
	if err != nil {
		t.Fatalf("GetDatabaseStatus: %v", err)
	}
	if st := resp.GetStatus(); st.GetHealth() != opsv1.Health_HEALTH_NOT_SERVING || st.GetError() == "" {
		t.Errorf("status = %v, want NOT_SERVING with the error", st)
	}
}

// recent holds the sampler's samples: here the pool use of a real pool, read through
// pgpool's collector, while the test holds two of its connections.
func TestGetDatabaseStatus_recent(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgpool.NewCollector(pool, nil))
	sampler := history.New(history.Config{Interval: time.Hour}, reg, history.GRPC)
	mon := dbmonitor.New("stock", pool, lock.New(lock.Config{}, nil), retry.New(retry.Config{MaxAttempts: 1}, nil), sampler, nil)

	t0 := time.Now()
	if err := sampler.Record(t0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		conn, err := pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release) // before the pool closes: cleanups run last-registered first
	}
	if err := sampler.Record(t0.Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}

	resp, err := mon.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
	if err != nil {
		t.Fatalf("GetDatabaseStatus: %v", err)
	}
	recent := resp.GetStatus().GetRecent()
	if len(recent) != 1 {
		t.Fatalf("recent = %v, want one sample", recent)
	}
	want := 2 / float64(pool.Stat().MaxConns())
	if s := recent[0]; !s.GetTime().AsTime().Equal(t0.Add(10*time.Second)) || s.GetPoolUse() != want ||
		s.GetCallsPerSecond() != 0 || s.GetP99Seconds() != 0 || s.GetErrorRatio() != 0 {
		t.Errorf("sample = %v, want pool use %v at %v and no calls", s, want, t0.Add(10*time.Second))
	}
}
