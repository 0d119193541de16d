package replica_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/metricstest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// wait bounds every poll: generous, for a busy machine; polls end as soon as the condition holds.
const wait = time.Minute

// TestRouter routes reads on a real primary and hot standby. The subtests share the pair and run
// in order (paused replay and the stopped standby are the pair's state).
func TestRouter(t *testing.T) {
	r := pgtest.NewReplicatedCluster(t)
	primary := r.NewDB(t)
	db := primary.Config().ConnConfig.Database
	exec(t, primary, "CREATE TABLE public.notes (id int PRIMARY KEY)")
	// standby_waits() returns false at once on the primary; on the standby it waits until
	// its session ends: a read in flight when the standby stops.
	exec(t, primary, `CREATE FUNCTION public.standby_waits() RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			WHILE pg_is_in_recovery() LOOP PERFORM pg_sleep(0.1); END LOOP;
			RETURN pg_is_in_recovery();
		END $$`)
	r.WaitReplayed(t, r.PrimaryLSN(t))
	standbyURL := r.StandbyURL(db)

	// strict routes with a small lag bound; lenient with a large one, for read-your-writes.
	strictReg, lenientReg := prometheus.NewRegistry(), prometheus.NewRegistry()
	strict := newRouter(t, primary, replica.Config{ReadURL: standbyURL, MaxLag: 300 * time.Millisecond, Interval: 50 * time.Millisecond}, strictReg)
	lenient := newRouter(t, primary, replica.Config{ReadURL: standbyURL, MaxLag: time.Hour, Interval: 50 * time.Millisecond}, lenientReg)
	metrics := metricstest.Serve(t, strictReg)
	label := strict.Replicas()[0]

	t.Run("healthy standby serves reads", func(t *testing.T) {
		pool := waitReader(t, strict, true)
		if !inRecovery(t, pool) {
			t.Error("Reader's pool: pg_is_in_recovery() = false, want the standby")
		}
		body := metricstest.Scrape(t, metrics)
		metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_db_replica_up{replica=%q} 1`, label))
		metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_db_replica_lag_seconds{replica=%q} 0`, label))
		if metricstest.HasLine(body, `pgfleet_db_reads_total{reason="replica",target="replica"} 0`) {
			t.Errorf("no read counted on the replica:\n%s", metricstest.Lines(body, "pgfleet_db_reads_total"))
		}
		st := strict.Status()
		if len(st.Replicas) != 1 || st.MaxLag != 300*time.Millisecond {
			t.Fatalf("Status() = %+v, want one replica and MaxLag 300ms", st)
		}
		rs := st.Replicas[0]
		if rs.Label != label || !rs.Checked || !rs.Up || !rs.Usable || rs.ReplayLSN == 0 || !rs.LagKnown ||
			rs.Lag > 300*time.Millisecond || rs.CheckTime.IsZero() || rs.Reads < 1 {
			t.Errorf("Status().Replicas[0] = %+v, want %s checked, up, usable, replayed, lag known within MaxLag, reads counted", rs, label)
		}
		if got := reads(st, "replica", replica.ReasonReplica); got != rs.Reads {
			t.Errorf("Status() reads on the replica = %d, want the replica's own count %d", got, rs.Reads)
		}
		if len(st.Reads) != 4 || st.Reads[0].Target != "replica" {
			t.Errorf("Status().Reads = %+v, want the four series, the replica's first", st.Reads)
		}
		began := time.Now()
		const n = 20
		for range n {
			strict.Check(t.Context())
		}
		t.Logf("a check of one replica (primary LSN + replica query) takes %v", (time.Since(began) / n).Round(time.Microsecond))
	})

	t.Run("a server not in recovery is not a replica", func(t *testing.T) {
		wrong := newRouter(t, primary, replica.Config{ReadURL: r.PrimaryURL(db), MaxLag: time.Hour, Interval: time.Hour}, nil)
		wrong.Check(t.Context()) // Run's first check may not have finished: one more, awaited
		if pool, on := wrong.Reader(0); on || pool != primary {
			t.Error("Reader with the primary given as a replica: onReplica, want the primary's own pool")
		}
	})

	t.Run("position not replayed goes to the primary, WaitReader waits for it", func(t *testing.T) {
		waitReader(t, lenient, true)
		r.PauseReplay(t)
		exec(t, primary, "INSERT INTO public.notes VALUES (1)")
		lsn := r.PrimaryLSN(t)
		if pool, on := lenient.Reader(lsn); on || inRecovery(t, pool) {
			t.Fatal("Reader(position not replayed) chose the standby")
		}
		if _, on := lenient.WaitReader(t.Context(), lsn, 100*time.Millisecond); on {
			t.Fatal("WaitReader(position not replayed, replay paused) chose the standby")
		}
		type result struct {
			pool *pgxpool.Pool
			on   bool
		}
		done := make(chan result, 1)
		go func() {
			pool, on := lenient.WaitReader(t.Context(), lsn, wait)
			done <- result{pool, on}
		}()
		resumed := time.Now()
		r.ResumeReplay(t)
		res := <-done
		t.Logf("WaitReader returned the standby %v after ResumeReplay", time.Since(resumed).Round(time.Millisecond))
		if !res.on || !inRecovery(t, res.pool) {
			t.Fatal("WaitReader after ResumeReplay: the primary, want the standby")
		}
		var n int
		if err := res.pool.QueryRow(t.Context(), "SELECT count(*) FROM public.notes").Scan(&n); err != nil || n != 1 {
			t.Errorf("notes on WaitReader's standby = %d (err %v), want 1: the write not visible", n, err)
		}
		body := metricstest.Scrape(t, metricstest.Serve(t, lenientReg))
		metricstest.WantLine(t, body, `pgfleet_db_reads_total{reason="not_replayed",target="primary"} 2`)
	})

	t.Run("a floor above the replay position sends every read to the primary", func(t *testing.T) {
		floored := newRouter(t, primary, replica.Config{ReadURL: standbyURL, MaxLag: time.Hour, Interval: 50 * time.Millisecond}, nil)
		waitReader(t, floored, true)
		r.PauseReplay(t)
		exec(t, primary, "INSERT INTO public.notes VALUES (100)")
		floor := r.PrimaryLSN(t)
		floored.SetFloor(floor)
		floored.SetFloor(floor - 1) // lower: ignored
		if pool, on := floored.Reader(0); on || inRecovery(t, pool) {
			t.Error("Reader(0) with the floor not replayed chose the standby")
		}
		if st := floored.Status(); st.Replicas[0].Usable || reads(st, "primary", replica.ReasonNotReplayed) != 1 {
			t.Errorf("Status() = %+v, want the standby not usable (up, its lag small, but behind the floor) and the read counted as not_replayed", st)
		}
		r.ResumeReplay(t)
		waitReader(t, floored, true)
		exec(t, primary, "DELETE FROM public.notes WHERE id = 100")
		r.WaitReplayed(t, r.PrimaryLSN(t))
	})

	t.Run("paused replay: reads go to the primary once lag passes MaxLag, back after resume", func(t *testing.T) {
		waitReader(t, strict, true)
		r.PauseReplay(t)
		exec(t, primary, "INSERT INTO public.notes VALUES (2)")
		written := time.Now()
		pool := waitReader(t, strict, false)
		t.Logf("reads on the primary %v after the write (MaxLag 300ms, checks every 50ms)", time.Since(written).Round(time.Millisecond))
		if inRecovery(t, pool) {
			t.Error("Reader while lagging: the standby's pool")
		}
		body := metricstest.Scrape(t, metrics)
		if !metricstest.HasLine(body, `pgfleet_db_reads_total{reason="lagging",target="primary"} `) ||
			metricstest.HasLine(body, `pgfleet_db_reads_total{reason="lagging",target="primary"} 0`) {
			t.Errorf("no read counted as lagging:\n%s", metricstest.Lines(body, "pgfleet_db_reads_total"))
		}
		metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_db_replica_up{replica=%q} 0`, label))
		if metricstest.HasLine(body, fmt.Sprintf(`pgfleet_db_replica_lag_bytes{replica=%q} 0`, label)) {
			t.Errorf("lag in bytes 0 while replay is paused behind a write:\n%s", metricstest.Lines(body, "pgfleet_db_replica_lag"))
		}
		st := strict.Status()
		if rs := st.Replicas[0]; !rs.Up || rs.Usable || rs.LagBytes == 0 || (rs.LagKnown && rs.Lag <= 300*time.Millisecond) {
			t.Errorf("Status().Replicas[0] while lagging = %+v, want up, not usable, lag bytes and lag beyond 300ms", rs)
		}
		if reads(st, "primary", replica.ReasonLagging) == 0 {
			t.Errorf("Status().Reads while lagging = %+v, want reads counted as lagging", st.Reads)
		}
		resumed := time.Now()
		r.ResumeReplay(t)
		waitReader(t, strict, true)
		t.Logf("reads back on the standby %v after ResumeReplay", time.Since(resumed).Round(time.Millisecond))
	})

	t.Run("DB: a Replica call's reads on the standby, the rest on the primary", func(t *testing.T) {
		waitReader(t, lenient, true)
		d := lenient.DB()
		marked := func() context.Context { return replica.WithReplicaReads(t.Context(), 0) }
		// pg_is_in_recovery() names the server a statement ran on: true only on the standby.
		const where = "SELECT pg_is_in_recovery()"
		queryIn := func(ctx context.Context) bool {
			t.Helper()
			rows, err := d.Query(ctx, where)
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			in, err := pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
			if err != nil {
				t.Fatalf("Query: %v", err)
			}
			return in
		}
		rowIn := func(ctx context.Context) bool {
			t.Helper()
			var in bool
			if err := d.QueryRow(ctx, where).Scan(&in); err != nil {
				t.Fatalf("QueryRow: %v", err)
			}
			return in
		}
		txIn := func(ctx context.Context, opts pgx.TxOptions) bool {
			t.Helper()
			tx, err := d.BeginTx(ctx, opts)
			if err != nil {
				t.Fatalf("BeginTx(%+v): %v", opts, err)
			}
			defer tx.Rollback(context.Background()) //nolint:errcheck // read only
			var in bool
			if err := tx.QueryRow(ctx, where).Scan(&in); err != nil {
				t.Fatalf("in BeginTx(%+v): %v", opts, err)
			}
			return in
		}
		if !queryIn(marked()) {
			t.Error("Query of a Replica call ran on the primary, want the standby")
		}
		if !rowIn(marked()) {
			t.Error("QueryRow of a Replica call ran on the primary, want the standby")
		}
		if queryIn(t.Context()) || rowIn(t.Context()) {
			t.Error("Query or QueryRow of a call not marked (no WithReplicaReads) ran on the standby")
		}
		repeatable := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
		if !txIn(marked(), repeatable) {
			t.Error("read-only REPEATABLE READ BeginTx of a Replica call on the primary, want the standby")
		}
		if txIn(t.Context(), repeatable) {
			t.Error("read-only BeginTx of a call not marked on the standby")
		}
		for _, opts := range []pgx.TxOptions{
			{IsoLevel: pgx.Serializable, AccessMode: pgx.ReadOnly}, // a standby refuses SERIALIZABLE
			{IsoLevel: pgx.RepeatableRead},
			{},
		} {
			if txIn(marked(), opts) {
				t.Errorf("BeginTx(%+v) of a Replica call on the standby, want the primary", opts)
			}
		}
		// A call keeps the server its first read chose: one view for the whole call.
		ctx := marked()
		if !rowIn(ctx) || !queryIn(ctx) || !txIn(ctx, repeatable) {
			t.Error("a Replica call's later reads left the standby its first read chose")
		}
		// Exec, CopyFrom and SendBatch of a Replica call write, on the primary (the standby
		// would refuse them).
		if _, err := d.Exec(marked(), "INSERT INTO public.notes VALUES (100)"); err != nil {
			t.Errorf("Exec of a Replica call: %v, want it run on the primary", err)
		}
		if _, err := d.CopyFrom(marked(), pgx.Identifier{"public", "notes"}, []string{"id"}, pgx.CopyFromRows([][]any{{101}})); err != nil {
			t.Errorf("CopyFrom of a Replica call: %v, want it run on the primary", err)
		}
		b := &pgx.Batch{}
		b.Queue("DELETE FROM public.notes WHERE id >= 100")
		b.Queue(where)
		br := d.SendBatch(marked(), b)
		if _, err := br.Exec(); err != nil {
			t.Errorf("SendBatch of a Replica call: %v, want it run on the primary", err)
		}
		var in bool
		if err := br.QueryRow().Scan(&in); err != nil || in {
			t.Errorf("SendBatch of a Replica call: in recovery %v, err %v; want the primary", in, err)
		}
		if err := br.Close(); err != nil {
			t.Error(err)
		}
		r.WaitReplayed(t, r.PrimaryLSN(t))
	})

	t.Run("stopped standby: reads go to the primary without error", func(t *testing.T) {
		// unchecked saw the standby up once and does not check again: it learns of the
		// standby's death from a failed read, which DB runs again on the primary.
		unchecked := newRouter(t, primary, replica.Config{ReadURL: standbyURL, MaxLag: time.Hour, Interval: time.Hour}, nil)
		waitReader(t, unchecked, true)

		// Reads in flight on the standby when it stops, before their first row: Query's
		// rows (fallbackRows) and QueryRow's row are read again on the primary. Each has a
		// router of its own, which does not check again and has not marked the standby down.
		inFlight := map[string]func(context.Context, *replica.DB) (bool, error){
			"Query": func(ctx context.Context, d *replica.DB) (bool, error) {
				rows, err := d.Query(ctx, "SELECT public.standby_waits()")
				if err != nil {
					return false, fmt.Errorf("Query returned %w; want rows whose first Next waits", err)
				}
				return pgx.CollectExactlyOneRow(rows, pgx.RowTo[bool])
			},
			"QueryRow": func(ctx context.Context, d *replica.DB) (bool, error) {
				var in bool
				err := d.QueryRow(ctx, "SELECT public.standby_waits()").Scan(&in)
				return in, err
			},
		}
		type result struct {
			name string
			in   bool
			err  error
		}
		results := make(chan result, len(inFlight))
		for name, read := range inFlight {
			rt := newRouter(t, primary, replica.Config{ReadURL: standbyURL, MaxLag: time.Hour, Interval: time.Hour}, nil)
			waitReader(t, rt, true)
			go func() {
				in, err := read(replica.WithReplicaReads(t.Context(), 0), rt.DB())
				results <- result{name, in, err}
			}()
		}
		watch, err := pgxpool.New(t.Context(), standbyURL)
		if err != nil {
			t.Fatal(err)
		}
		pgtest.Poll(t, "both reads waiting on the standby", func() bool {
			var n int
			err := watch.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
				WHERE state = 'active' AND query LIKE '%standby_waits()%' AND pid <> pg_backend_pid()`).Scan(&n)
			return err == nil && n == len(inFlight)
		})
		watch.Close()
		r.StopStandby(t)
		stopped := time.Now()
		for range inFlight {
			res := <-results
			if res.err != nil || res.in {
				t.Errorf("%s in flight when the standby stopped: standby_waits() = %v, err %v; want false (the primary's), no error", res.name, res.in, res.err)
			}
		}
		t.Logf("reads in flight answered by the primary %v after the standby stopped", time.Since(stopped).Round(time.Millisecond))
		db := unchecked.DB()
		var rows int
		err = db.QueryRow(replica.WithReplicaReads(t.Context(), 0), "SELECT count(*) FROM public.notes").Scan(&rows)
		if err != nil || rows != 2 {
			t.Errorf("QueryRow right after the standby stopped: %d notes, err %v; want 2 from the primary", rows, err)
		}
		if pool, on := unchecked.Reader(0); on || pool != primary {
			t.Error("Reader after a read failed on the standby: still the standby, want it marked down")
		}
		var gone bool
		err = db.QueryRow(replica.WithReplicaReads(t.Context(), 0), "SELECT 1 FROM public.no_such_table").Scan(&gone)
		if err == nil || !strings.Contains(err.Error(), "no_such_table") {
			t.Errorf("read of a missing table = %v, want its SQL error", err)
		}
		pool := waitReader(t, strict, false)
		t.Logf("strict's Reader on the primary %v after the standby stopped", time.Since(stopped).Round(time.Millisecond))
		var n int
		if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM public.notes").Scan(&n); err != nil || n != 2 {
			t.Errorf("notes on the primary = %d (err %v), want 2", n, err)
		}
		for range 10 {
			if pool, on := strict.Reader(0); on || pool != primary {
				t.Fatal("Reader with the standby down chose it")
			}
		}
		body := metricstest.Scrape(t, metrics)
		metricstest.WantLine(t, body, fmt.Sprintf(`pgfleet_db_replica_up{replica=%q} 0`, label))
		if metricstest.HasLine(body, `pgfleet_db_reads_total{reason="no_replica",target="primary"} 0`) {
			t.Errorf("no read counted as no_replica:\n%s", metricstest.Lines(body, "pgfleet_db_reads_total"))
		}
		st := strict.Status()
		if rs := st.Replicas[0]; !rs.Checked || rs.Up || rs.Usable || rs.LagKnown || rs.ReplayLSN != 0 || rs.CheckTime.IsZero() {
			t.Errorf("Status().Replicas[0] with the standby stopped = %+v, want checked, down, no lag, no position", rs)
		}
		if reads(st, "primary", replica.ReasonNoReplica) == 0 {
			t.Errorf("Status().Reads with the standby stopped = %+v, want reads counted as no_replica", st.Reads)
		}
		// unchecked's failed read: counted on the replica, then on the primary.
		ust := unchecked.Status()
		if ust.Replicas[0].Usable || ust.Replicas[0].CheckTime.IsZero() || reads(ust, "primary", replica.ReasonNoReplica) < 1 {
			t.Errorf("unchecked.Status() after a read failed on the standby = %+v, want it marked down at a time, the read counted on the primary", ust)
		}
	})
}

// TestNew_badURL: an unparseable replica URL is an error naming DATABASE_READ_URL, without the password.
func TestNew_badURL(t *testing.T) {
	_, err := replica.New(t.Context(), nil, replica.Config{
		ReadURL: "postgres://u:sekret@localhost:notaport/db", MaxLag: time.Second, Interval: time.Second}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_READ_URL") || strings.Contains(err.Error(), "sekret") {
		t.Errorf("New(bad URL) = %v, want an error naming DATABASE_READ_URL without the password", err)
	}
}

// TestNew_noReplica: with no DATABASE_READ_URL every read goes to the primary.
func TestNew_noReplica(t *testing.T) {
	primary := pgtest.NewDB(t)
	rt, err := replica.New(t.Context(), primary, replica.Config{MaxLag: time.Second, Interval: time.Second}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	rt.Run(t.Context()) // returns at once: nothing to check
	if pool, on := rt.Reader(0); on || pool != primary {
		t.Error("Reader with no replica: not the primary")
	}
	if pool, on := rt.WaitReader(t.Context(), 1, time.Second); on || pool != primary {
		t.Error("WaitReader with no replica: not the primary")
	}
	st := rt.Status()
	if len(st.Replicas) != 0 || reads(st, "primary", replica.ReasonNoReplica) != 2 || reads(st, "replica", replica.ReasonReplica) != 0 {
		t.Errorf("Status() with no replica = %+v, want no replica and 2 reads on the primary as no_replica", st)
	}
	if st := (*replica.Router)(nil).Status(); len(st.Replicas) != 0 || len(st.Reads) != 0 {
		t.Errorf("nil Router's Status() = %+v, want empty", st)
	}
}

func TestSplitURLs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"postgres://a:5432/db", []string{"postgres://a:5432/db"}},
		{"postgres://a:5432/db, postgresql://b:5433/db", []string{"postgres://a:5432/db", "postgresql://b:5433/db"}},
		{"postgres://a:5432,b:5433/db,postgres://c/db", []string{"postgres://a:5432,b:5433/db", "postgres://c/db"}},
	} {
		if got := replica.SplitURLs(tc.in); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("SplitURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func newRouter(t *testing.T, primary *pgxpool.Pool, cfg replica.Config, reg prometheus.Registerer) *replica.Router {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	rt, err := replica.New(t.Context(), primary, cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); rt.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; rt.Close() })
	return rt
}

// waitReader polls Reader(0) until it chooses a replica (onReplica) or the primary, and returns its pool.
func waitReader(t *testing.T, rt *replica.Router, onReplica bool) *pgxpool.Pool {
	t.Helper()
	var pool *pgxpool.Pool
	pgtest.Poll(t, fmt.Sprintf("Reader choosing onReplica=%v", onReplica), func() bool {
		p, on := rt.Reader(0)
		pool = p
		return on == onReplica
	})
	return pool
}

func inRecovery(t *testing.T, pool *pgxpool.Pool) bool {
	t.Helper()
	var in bool
	if err := pool.QueryRow(t.Context(), "SELECT pg_is_in_recovery()").Scan(&in); err != nil {
		t.Fatalf("pg_is_in_recovery(): %v", err)
	}
	return in
}

func exec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// reads returns Status's count of reads routed to target for reason.
func reads(st replica.Status, target, reason string) int64 {
	for _, c := range st.Reads {
		if c.Target == target && c.Reason == reason {
			return c.Count
		}
	}
	return -1
}
