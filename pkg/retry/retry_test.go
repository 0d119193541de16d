package retry_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// testConfig retries quickly; the breaker stays out of the way unless a test tunes it.
func testConfig() retry.Config {
	return retry.Config{
		MaxAttempts: 5,
		BaseDelay:   time.Millisecond,
		MaxDelay:    10 * time.Millisecond,
		MaxElapsed:  30 * time.Second,
		Breaker:     breaker.Config{MinRequests: new(uint32(1000)), FailureRatio: 0.5, OpenTimeout: new(time.Second), Window: time.Minute},
	}
}

func TestConfig_defaults(t *testing.T) {
	t.Parallel()
	var got retry.Config
	if err := envconfig.Process(t.Context(), &envconfig.Config{
		Target:   &got,
		Lookuper: envconfig.MapLookuper(map[string]string{"DB_RETRY_MAX_ATTEMPTS": "7"}),
	}); err != nil {
		t.Fatalf("process: %v", err)
	}
	want := retry.Config{
		MaxAttempts: 7,
		BaseDelay:   20 * time.Millisecond,
		MaxDelay:    time.Second,
		MaxElapsed:  15 * time.Second,
		Breaker:     breaker.Config{MinRequests: new(uint32(20)), FailureRatio: 0.5, OpenTimeout: new(5 * time.Second), Window: 30 * time.Second},
	}
	// Unset, MinRequests and OpenTimeout are the database breaker's: 20 attempts, 5s.
	got.Breaker = got.Breaker.With(retry.BreakerDefaults)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

// TestRetrier_RunTx_writeSkew runs two SERIALIZABLE transactions that each insert a row
// numbered after the rows they read. Run side by side they would both insert 1 (write
// skew); PostgreSQL aborts one, RunTx reruns it, and it inserts 2.
func TestRetrier_RunTx_writeSkew(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	exec(t, pool, "CREATE TABLE ledger (who text PRIMARY KEY, seq int NOT NULL)")
	r := retry.New(testConfig(), nil)
	b := pgtest.NewBarrier(2)
	var calls atomic.Int64
	errs := make(chan error, 2)
	for i, who := range []string{"a", "b"} {
		go func() {
			errs <- r.RunTx(t.Context(), pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
				calls.Add(1)
				var next int
				if err := tx.QueryRow(t.Context(), "SELECT count(*) + 1 FROM ledger").Scan(&next); err != nil {
					return err
				}
				// Both read before either writes, on the first attempt only.
				if err := b.Arrive(t.Context(), i); err != nil {
					return err
				}
				_, err := tx.Exec(t.Context(), "INSERT INTO ledger (who, seq) VALUES ($1, $2)", who, next)
				return err
			})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("RunTx: %v", err)
		}
	}

	rows, _ := pool.Query(t.Context(), "SELECT seq FROM ledger ORDER BY seq")
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read ledger: %v", err)
	}
	if diff := cmp.Diff([]int{1, 2}, got); diff != "" {
		t.Errorf("ledger mismatch (-want +got):\n%s", diff)
	}
	st := r.Stats()
	if st.SerializationFailures < 1 || st.Retries < 1 || calls.Load() < 3 {
		t.Errorf("stats %+v after %d calls: want a serialization failure retried", st, calls.Load())
	}
	if st.Operations != 2 || st.Exhausted != 0 {
		t.Errorf("stats %+v: want 2 operations, none exhausted", st)
	}
}

func TestRetrier_RunTx_permanent(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	exec(t, pool, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)")
	r := retry.New(testConfig(), nil)
	var calls int
	err := r.RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		calls++
		if _, err := tx.Exec(t.Context(), "INSERT INTO u VALUES (2)"); err != nil {
			return err
		}
		_, err := tx.Exec(t.Context(), "INSERT INTO u VALUES (1)")
		return err
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("RunTx = %v, want unique violation", err)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times, want 1", calls)
	}
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM u").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 1 {
		t.Errorf("rows = %d, want 1: the failed transaction must roll back", n)
	}
}

func TestRetrier_RunTx_exhausted(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	cfg := testConfig()
	cfg.MaxAttempts = 3
	r := retry.New(cfg, nil)
	var calls int
	err := r.RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		calls++
		_, err := tx.Exec(t.Context(), raise("40001"))
		return err
	})
	if !errors.Is(err, retry.ErrExhausted) {
		t.Fatalf("RunTx = %v, want ErrExhausted", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Errorf("RunTx = %v, want it to wrap the serialization failure", err)
	}
	if calls != 3 {
		t.Errorf("fn ran %d times, want MaxAttempts = 3", calls)
	}
	want := retry.Stats{Operations: 1, Retries: 2, Exhausted: 1, SerializationFailures: 3, BreakerState: "closed"}
	if diff := cmp.Diff(want, r.Stats()); diff != "" {
		t.Errorf("stats mismatch (-want +got):\n%s", diff)
	}
}

func TestRetrier_Do_maxElapsed(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	cfg := testConfig()
	cfg.MaxAttempts = 1_000_000
	cfg.BaseDelay, cfg.MaxDelay = 5*time.Millisecond, 5*time.Millisecond
	cfg.MaxElapsed = 100 * time.Millisecond
	r := retry.New(cfg, nil)
	var calls int
	start := time.Now()
	err := r.Do(t.Context(), func(ctx context.Context) error {
		calls++
		_, err := pool.Exec(ctx, raise("40P01"))
		return err
	})
	if !errors.Is(err, retry.ErrExhausted) {
		t.Fatalf("Do = %v, want ErrExhausted", err)
	}
	// Loose: the bound is on elapsed time, so attempts stop long before MaxAttempts.
	if calls >= cfg.MaxAttempts {
		t.Errorf("Do ran fn %d times, want MaxElapsed to stop it first", calls)
	}
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("Do took %v, want it bounded near MaxElapsed %v", elapsed, cfg.MaxElapsed)
	}
	if st := r.Stats(); st.Deadlocks != int64(calls) {
		t.Errorf("Deadlocks = %d, want %d", st.Deadlocks, calls)
	}
}

func TestRetrier_Do(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	tests := []struct {
		name      string
		fails     []string // SQLSTATE raised by each attempt; then success
		wantCalls int
		wantCode  string
	}{
		{name: "retryable_then_ok", fails: []string{"40001", "55P03"}, wantCalls: 3},
		{name: "permanent", fails: []string{"23505", "23505"}, wantCalls: 1, wantCode: "23505"},
		{name: "ok", wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := retry.New(testConfig(), nil)
			var calls int
			err := r.Do(t.Context(), func(ctx context.Context) error {
				calls++
				if calls <= len(tt.fails) {
					_, err := pool.Exec(ctx, raise(tt.fails[calls-1]))
					return err
				}
				_, err := pool.Exec(ctx, "SELECT 1")
				return err
			})
			var gotCode string
			if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) {
				gotCode = pgErr.Code
			}
			if (err == nil) != (tt.wantCode == "") || gotCode != tt.wantCode {
				t.Errorf("Do = %v, want SQLSTATE %q", err, tt.wantCode)
			}
			if calls != tt.wantCalls {
				t.Errorf("fn ran %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

func TestRetrier_Do_canceledDuringBackoff(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	cfg := testConfig()
	cfg.BaseDelay, cfg.MaxDelay, cfg.MaxElapsed = time.Hour, time.Hour, 0
	r := retry.New(cfg, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var calls int
	err := r.Do(ctx, func(ctx context.Context) error {
		calls++
		_, err := pool.Exec(ctx, raise("40001"))
		cancel() // the backoff sleep that follows must end now, not in an hour
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want context.Canceled", err)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "40001" {
		t.Errorf("Do = %v, want it to wrap the last error", err)
	}
	if calls != 1 {
		t.Errorf("fn ran %d times, want 1", calls)
	}
}

// TestRetrier_RunTx_ambiguousCommit cuts the connection before COMMIT: the outcome is
// unknown, so a read-write transaction must not be rerun, and a read-only one may be.
func TestRetrier_RunTx_ambiguousCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		mode      pgx.TxAccessMode
		wantCalls int
		wantErr   bool
	}{
		{name: "read_write", mode: pgx.ReadWrite, wantCalls: 1, wantErr: true},
		{name: "read_only", mode: pgx.ReadOnly, wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			r := retry.New(testConfig(), nil)
			var calls int
			err := r.RunTx(t.Context(), pool, pgx.TxOptions{AccessMode: tt.mode}, func(tx pgx.Tx) error {
				calls++
				var pid int32
				if err := tx.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					return err
				}
				if calls == 1 {
					terminate(t, pool, pid)
				}
				return nil
			})
			if (err != nil) != tt.wantErr {
				t.Fatalf("RunTx = %v, want error: %v", err, tt.wantErr)
			}
			if tt.wantErr && retry.Classify(err) != retry.Ambiguous {
				t.Errorf("Classify(%v) = %v, want ambiguous", err, retry.Classify(err))
			}
			if calls != tt.wantCalls {
				t.Errorf("fn ran %d times, want %d", calls, tt.wantCalls)
			}
		})
	}
}

// TestRetrier_breaker points a Retrier at a port nobody listens on until its breaker
// opens, checks that it then fails fast, and lets a probe against a live database close it.
func TestRetrier_breaker(t *testing.T) {
	t.Parallel()
	live := pgtest.NewDB(t)
	dead, err := pgxpool.New(t.Context(), closedPortURL(t)) // connects lazily
	if err != nil {
		t.Fatalf("new pool: %v", err)
	}
	t.Cleanup(dead.Close)
	cfg := testConfig()
	cfg.MaxAttempts = 2
	cfg.Breaker.MinRequests = new(uint32(4))
	cfg.Breaker.OpenTimeout = new(200 * time.Millisecond)
	reg := prometheus.NewRegistry()
	r := retry.New(cfg, reg)

	var opened bool
	for i := 0; i < 10 && !opened; i++ {
		err := r.RunTx(t.Context(), dead, pgx.TxOptions{}, func(pgx.Tx) error { return nil })
		switch {
		case errors.Is(err, retry.ErrCircuitOpen):
			opened = true
		case !errors.Is(err, retry.ErrExhausted):
			t.Fatalf("RunTx on a closed port = %v, want ErrExhausted or ErrCircuitOpen", err)
		}
		if !retry.Unavailable(err) {
			t.Errorf("Unavailable(%v) = false, want true: every failure on a closed port is an outage", err)
		}
	}
	if !opened {
		t.Fatalf("breaker never opened; stats %+v", r.Stats())
	}
	st := r.Stats()
	if st.BreakerState != "open" || st.BreakerRejections < 1 || st.ConnectionErrors < 4 {
		t.Errorf("stats %+v: want open breaker, rejections, >= 4 connection errors", st)
	}
	// Open: even the live database is not tried.
	var ran bool
	err = r.RunTx(t.Context(), live, pgx.TxOptions{}, func(pgx.Tx) error { ran = true; return nil })
	if !errors.Is(err, retry.ErrCircuitOpen) || ran {
		t.Errorf("RunTx while open = %v (fn ran: %v), want ErrCircuitOpen without running fn", err, ran)
	}
	if got := gauge(t, reg, "pgfleet_retry_breaker_state"); got != 2 {
		t.Errorf("breaker state gauge = %v, want 2 (open)", got)
	}

	waitFor(t, func() bool { return r.Stats().BreakerState == "half-open" })
	if err := r.RunTx(t.Context(), live, pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(t.Context(), "SELECT 1")
		return err
	}); err != nil {
		t.Fatalf("probe RunTx: %v", err)
	}
	if got := r.Stats().BreakerState; got != "closed" {
		t.Errorf("breaker after a good probe = %q, want closed", got)
	}
	if got := counter(t, reg, "pgfleet_retry_operations_total", "outcome", "circuit_open"); got < 2 {
		t.Errorf("circuit_open operations = %v, want >= 2", got)
	}
}

// TestRetrier_breakerIgnoresBusinessErrors checks that answers from a working database,
// however many fail, never open the breaker.
func TestRetrier_breakerIgnoresBusinessErrors(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	exec(t, pool, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)")
	cfg := testConfig()
	cfg.MaxAttempts = 1
	cfg.Breaker.MinRequests = new(uint32(2))
	r := retry.New(cfg, nil)
	for _, sql := range []string{"INSERT INTO u VALUES (1)", "SELECT 1/0", "SELEC", raise("40001"), raise("40P01")} {
		for range 3 {
			err := r.RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
				_, err := tx.Exec(t.Context(), sql)
				return err
			})
			if err == nil || errors.Is(err, retry.ErrCircuitOpen) {
				t.Fatalf("RunTx(%q) = %v, want its own error", sql, err)
			}
		}
	}
	if st := r.Stats(); st.BreakerState != "closed" || st.ConnectionErrors != 0 {
		t.Errorf("stats %+v: want closed breaker, no connection errors", st)
	}
}

func TestRetrier_metrics(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	reg := prometheus.NewRegistry()
	r := retry.New(testConfig(), reg)
	var calls int
	if err := r.RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		calls++
		if calls == 1 {
			_, err := tx.Exec(t.Context(), raise("40001"))
			return err
		}
		return nil
	}); err != nil {
		t.Fatalf("RunTx: %v", err)
	}
	tests := []struct {
		metric, label, value string
		want                 float64
	}{
		{"pgfleet_retry_operations_total", "outcome", "success", 1},
		{"pgfleet_retry_attempts_total", "class", "retryable", 1},
		{"pgfleet_retry_attempts_total", "class", "ok", 1},
		{"pgfleet_retry_errors_total", "sqlstate", "40001", 1},
	}
	for _, tt := range tests {
		if got := counter(t, reg, tt.metric, tt.label, tt.value); got != tt.want {
			t.Errorf("%s{%s=%q} = %v, want %v", tt.metric, tt.label, tt.value, got, tt.want)
		}
	}
	if got := histogramCount(t, reg, "pgfleet_retry_backoff_seconds"); got != 1 {
		t.Errorf("backoff observations = %d, want 1", got)
	}
}

// waitFor polls cond until it holds, failing the test if the test's context ends first.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not reached")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0
}
