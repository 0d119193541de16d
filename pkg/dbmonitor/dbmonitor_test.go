package dbmonitor_test

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/dbmonitor"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
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

// TestGetDatabaseStatus_replica: a service started as the binaries start (app.Start) with a
// real hot standby in DATABASE_READ_URL reports it in DatabaseMonitor: usable with its replay
// position and lag while it keeps up; up but not usable, with its lag in bytes, once paused
// replay puts it beyond MAX_REPLICA_LAG; down once stopped; and the reads routed on the way.
func TestGetDatabaseStatus_replica(t *testing.T) {
	cluster := pgtest.NewReplicatedCluster(t)
	set := migrate.Set{Schema: "dbmon", FS: fstest.MapFS{"0001_init.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE dbmon.notes (id int PRIMARY KEY);\n")}}}
	primaryURL, standbyURL := cluster.NewDBURLs(t, set)
	svc, conn := apptest.StartServer(t, app.Options{Name: "dbmon", Migrations: set}, map[string]string{
		"DATABASE_URL": primaryURL, "DATABASE_READ_URL": standbyURL,
		"MAX_REPLICA_LAG": "300ms", "REPLICA_CHECK_INTERVAL": "50ms",
	}, func(*app.Service) []string { return nil })
	monitor := opsv1.NewDatabaseMonitorClient(conn)
	status := func() *opsv1.DatabaseStatus {
		t.Helper()
		resp, err := monitor.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
		if err != nil {
			t.Fatalf("GetDatabaseStatus: %v", err)
		}
		return resp.GetStatus()
	}
	// read runs one read of a replica-safe call, as a service's store does.
	read := func() {
		t.Helper()
		var n int
		if err := svc.DB.QueryRow(replica.WithReplicaReads(t.Context(), 0), "SELECT count(*) FROM dbmon.notes").Scan(&n); err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	label := svc.Reads.Replicas()[0]

	pgtest.Poll(t, "the standby usable in DatabaseMonitor", func() bool {
		rs := status().GetReplicas()
		return len(rs) == 1 && rs[0].GetUsable()
	})
	for range 3 {
		read()
	}
	st := status()
	rs := st.GetReplicas()[0]
	if rs.GetReplica() != label || !rs.GetUp() || rs.GetReplayLsn() == "" || rs.GetLag() == nil ||
		rs.GetLag().AsDuration() > 300*time.Millisecond || rs.GetCheckTime() == nil || rs.GetReads() != 3 {
		t.Errorf("replicas[0] = %v, want %s up, usable, a replay position, lag within 300ms, a check time and 3 reads", rs, label)
	}
	if got := count(st, "replica", "replica"); got != 3 || len(st.GetReads()) != 4 {
		t.Errorf("reads = %v, want the four series and 3 on the replica", st.GetReads())
	}
	if st.GetMaxReplicaLag().AsDuration() != 300*time.Millisecond {
		t.Errorf("max_replica_lag = %v, want 300ms", st.GetMaxReplicaLag().AsDuration())
	}

	cluster.PauseReplay(t)
	if _, err := svc.Pool.Exec(t.Context(), "INSERT INTO dbmon.notes VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "the paused standby up but not usable", func() bool {
		rs := status().GetReplicas()[0]
		return rs.GetUp() && !rs.GetUsable()
	})
	read()
	st = status()
	if rs := st.GetReplicas()[0]; rs.GetLagBytes() == 0 || (rs.GetLag() != nil && rs.GetLag().AsDuration() <= 300*time.Millisecond) {
		t.Errorf("replicas[0] while replay is paused = %v, want lag bytes and no lag within 300ms", rs)
	}
	if got := count(st, "primary", "lagging"); got != 1 {
		t.Errorf("reads = %v, want 1 on the primary as lagging", st.GetReads())
	}
	cluster.ResumeReplay(t)

	cluster.StopStandby(t)
	pgtest.Poll(t, "the stopped standby down", func() bool { return !status().GetReplicas()[0].GetUp() })
	read()
	st = status()
	if rs := st.GetReplicas()[0]; rs.GetUsable() || rs.GetReplayLsn() != "" || rs.GetLag() != nil || rs.GetReads() != 3 {
		t.Errorf("replicas[0] with the standby stopped = %v, want down, no position, no lag, still 3 reads", rs)
	}
	if got := count(st, "primary", "no_replica"); got < 1 {
		t.Errorf("reads = %v, want a read on the primary as no_replica", st.GetReads())
	}
	if st.GetHealth() != opsv1.Health_HEALTH_SERVING {
		t.Errorf("health with the standby stopped = %v, want SERVING: a replica's failure is not the service's", st.GetHealth())
	}
}

// count returns the status's reads routed to target for reason, -1 without that series.
func count(st *opsv1.DatabaseStatus, target, reason string) int64 {
	for _, c := range st.GetReads() {
		if c.GetTarget() == target && c.GetReason() == reason {
			return c.GetCount()
		}
	}
	return -1
}
