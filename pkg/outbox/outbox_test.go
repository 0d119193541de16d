package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup creates schema and its outbox in a new database; it returns a pool and the URL.
func setup(t *testing.T, schema string) (*pgxpool.Pool, string) {
	t.Helper()
	url := pgtest.NewDBURL(t)
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ddl := "CREATE SCHEMA " + pgx.Identifier{schema}.Sanitize() + ";\n" + outbox.Schema(schema)
	if _, err := pool.Exec(t.Context(), ddl); err != nil {
		t.Fatalf("DDL: %v\n%s", err, ddl)
	}
	return pool, url
}

// startSequencer runs a sequencer until the returned cancel is called or the test ends.
func startSequencer(t *testing.T, url, schema string) (*outbox.Sequencer, context.CancelFunc) {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	s := outbox.NewSequencer(outbox.SequencerConfig{Schema: schema, Conn: cfg, Batch: 500, Poll: 200 * time.Millisecond, Retry: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s, func() { cancel(); <-done }
}

func appendTx(ctx context.Context, pool *pgxpool.Pool, schema string, events ...outbox.Event) error {
	if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return outbox.Append(ctx, tx, schema, events...) }); err != nil {
		return err
	}
	return outbox.Wake(ctx, pool, schema)
}

func ev(payload string) outbox.Event {
	return outbox.Event{AggregateType: "portfolio", AggregateID: "p1", Type: "TradeExecuted", Payload: []byte(payload)}
}

func payloads(recs []outbox.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Payload)
	}
	return out
}

// readUntil polls Read from after until it returns n records (or fails the test).
func readUntil(t *testing.T, pool *pgxpool.Pool, schema string, after int64, n int) []outbox.Record {
	t.Helper()
	var recs []outbox.Record
	pgtest.Poll(t, fmt.Sprintf("%d events after %d", n, after), func() bool {
		var err error
		recs, err = outbox.Read(t.Context(), pool, schema, after, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(recs) >= n
	})
	return recs
}

// Append takes a pgx.Tx: a pool or a connection does not implement it, so an event cannot be
// written outside the transaction of its change.
func TestAppend_onlyInATransaction(t *testing.T) {
	txType := reflect.TypeFor[pgx.Tx]()
	for _, typ := range []reflect.Type{reflect.TypeFor[*pgxpool.Pool](), reflect.TypeFor[*pgx.Conn](), reflect.TypeFor[*pgxpool.Conn]()} {
		if typ.Implements(txType) {
			t.Errorf("%v implements pgx.Tx: Append would accept it", typ)
		}
	}
	if got := reflect.TypeOf(outbox.Append).In(1); got != txType {
		t.Errorf("Append's second parameter is %v, want pgx.Tx", got)
	}
}

// Schema quotes the schema name: an awkward one works (DDL twice: idempotent), end to end.
func TestSchema_quoting(t *testing.T) {
	t.Parallel()
	const schema = `Odd "name"; DROP TABLE x; '--`
	pool, url := setup(t, schema)
	if _, err := pool.Exec(t.Context(), outbox.Schema(schema)); err != nil {
		t.Fatalf("DDL again: %v", err)
	}
	startSequencer(t, url, schema)
	if err := appendTx(t.Context(), pool, schema, ev("a"), ev("b"), ev("c")); err != nil {
		t.Fatal(err)
	}
	recs := readUntil(t, pool, schema, 0, 3)
	if got := payloads(recs); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("payloads %q, want a b c in append order", got)
	}
	for i, r := range recs {
		if r.Position != int64(i+1) || r.ID == "" || r.AggregateType != "portfolio" || r.AggregateID != "p1" ||
			r.Type != "TradeExecuted" || r.CreatedAt.IsZero() {
			t.Errorf("record %d: %+v", i, r)
		}
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_tables WHERE schemaname = $1`, schema).Scan(&n); err != nil || n != 2 {
		t.Errorf("tables in %q: %d, %v; want outbox and outbox_head", schema, n, err)
	}
}

// A transaction that commits late is delivered. With positions taken at INSERT time it would
// be lost: a reader passes the later position first.
func TestLateCommit(t *testing.T) {
	t.Parallel()
	const schema = "trade"
	pool, url := setup(t, schema)
	ctx := t.Context()

	t.Run("insert-time positions lose it", func(t *testing.T) {
		if _, err := pool.Exec(ctx, `CREATE TABLE naive (position bigserial PRIMARY KEY, v text)`); err != nil {
			t.Fatal(err)
		}
		late, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = late.Rollback(context.Background()) }()
		if _, err := late.Exec(ctx, `INSERT INTO naive (v) VALUES ('late')`); err != nil { // position 1
			t.Fatal(err)
		}
		if _, err := pool.Exec(ctx, `INSERT INTO naive (v) VALUES ('early')`); err != nil { // position 2
			t.Fatal(err)
		}
		var cursor int64
		if err := pool.QueryRow(ctx, `SELECT max(position) FROM naive WHERE position > 0`).Scan(&cursor); err != nil {
			t.Fatal(err)
		}
		if err := late.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := outbox.Wake(ctx, pool, schema); err != nil {
			t.Fatal(err)
		}
		var after int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM naive WHERE position > $1`, cursor).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if cursor != 2 || after != 0 {
			t.Fatalf("cursor %d, %d rows after it; expected the reader at 2 with 'late' (1) behind it", cursor, after)
		}
	})

	t.Run("outbox delivers it", func(t *testing.T) {
		startSequencer(t, url, schema)
		late, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = late.Rollback(context.Background()) }()
		if err := outbox.Append(ctx, late, schema, ev("late")); err != nil {
			t.Fatal(err)
		}
		if err := appendTx(ctx, pool, schema, ev("early")); err != nil {
			t.Fatal(err)
		}
		recs := readUntil(t, pool, schema, 0, 1)
		if got := payloads(recs); !slices.Equal(got, []string{"early"}) {
			t.Fatalf("first read %q, want early only", got)
		}
		cursor := recs[0].Position
		if err := late.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := outbox.Wake(ctx, pool, schema); err != nil {
			t.Fatal(err)
		}
		recs = readUntil(t, pool, schema, cursor, 1)
		if got := payloads(recs); !slices.Equal(got, []string{"late"}) || recs[0].Position != cursor+1 {
			t.Fatalf("after cursor %d: %q at %+v, want late at %d", cursor, got, recs, cursor+1)
		}
	})
}

// Prune cuts a prefix; a Read from a cursor inside it fails with ErrCursorPruned.
func TestPrune(t *testing.T) {
	t.Parallel()
	const schema = "stock"
	pool, url := setup(t, schema)
	ctx := t.Context()
	startSequencer(t, url, schema)
	for i := range 10 {
		if err := appendTx(ctx, pool, schema, ev(fmt.Sprint(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	readUntil(t, pool, schema, 0, 10)
	if n, err := outbox.Prune(ctx, pool, schema, outbox.Retention{MaxAge: time.Hour}); err != nil || n != 0 {
		t.Fatalf("Prune(MaxAge 1h) = %d, %v; want 0 (all are younger)", n, err)
	}
	if n, err := outbox.Prune(ctx, pool, schema, outbox.Retention{Before: 6}); err != nil || n != 5 {
		t.Fatalf("Prune(Before 6) = %d, %v; want 5", n, err)
	}
	if o, err := outbox.Oldest(ctx, pool, schema); err != nil || o != 6 {
		t.Fatalf("Oldest = %d, %v; want 6", o, err)
	}
	for _, after := range []int64{0, 4} {
		if _, err := outbox.Read(ctx, pool, schema, after, nil, 10); !errors.Is(err, outbox.ErrCursorPruned) {
			t.Errorf("Read(after %d) error %v, want ErrCursorPruned", after, err)
		}
	}
	recs, err := outbox.Read(ctx, pool, schema, 5, nil, 10)
	if err != nil || !slices.Equal(payloads(recs), []string{"6", "7", "8", "9", "10"}) {
		t.Errorf("Read(after 5) = %q, %v; want 6..10", payloads(recs), err)
	}
	// A types filter that matches nothing still reports a pruned cursor.
	if _, err := outbox.Read(ctx, pool, schema, 1, []string{"Nothing"}, 10); !errors.Is(err, outbox.ErrCursorPruned) {
		t.Errorf("Read(after 1, types) error %v, want ErrCursorPruned", err)
	}
	// Pruning by age cuts everything older, never past the last position.
	if _, err := pool.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "outbox"}.Sanitize()+` SET created_at = now() - interval '2 hours' WHERE position <= 8`); err != nil {
		t.Fatal(err)
	}
	if n, err := outbox.Prune(ctx, pool, schema, outbox.Retention{MaxAge: time.Hour}); err != nil || n != 3 {
		t.Fatalf("Prune(MaxAge 1h) = %d, %v; want 3 (6, 7, 8)", n, err)
	}
	if n, err := outbox.Prune(ctx, pool, schema, outbox.Retention{Before: 1000}); err != nil || n != 2 {
		t.Fatalf("Prune(Before 1000) = %d, %v; want 2", n, err)
	}
	if o, err := outbox.Oldest(ctx, pool, schema); err != nil || o != 11 {
		t.Fatalf("Oldest = %d, %v; want 11 (not past the last position)", o, err)
	}
	if err := appendTx(ctx, pool, schema, ev("11")); err != nil {
		t.Fatal(err)
	}
	if recs := readUntil(t, pool, schema, 10, 1); recs[0].Position != 11 {
		t.Errorf("after pruning all: %+v, want position 11", recs)
	}
}

// Types filters events; the cursor still moves over positions.
func TestRead_types(t *testing.T) {
	t.Parallel()
	const schema = "interview"
	pool, url := setup(t, schema)
	startSequencer(t, url, schema)
	a := outbox.Event{AggregateType: "session", AggregateID: "s", Type: "AnswerEvaluated", Payload: []byte("a")}
	c := outbox.Event{AggregateType: "session", AggregateID: "s", Type: "SessionCompleted", Payload: []byte("c")}
	if err := appendTx(t.Context(), pool, schema, a, c, a); err != nil {
		t.Fatal(err)
	}
	readUntil(t, pool, schema, 0, 3)
	recs, err := outbox.Read(t.Context(), pool, schema, 0, []string{"SessionCompleted"}, 10)
	if err != nil || len(recs) != 1 || recs[0].Position != 2 {
		t.Fatalf("Read(types) = %+v, %v; want the one at 2", recs, err)
	}
}

// leaderPID is the backend holding a sequencer's advisory lock in the test's database.
func leaderPID(t *testing.T, pool *pgxpool.Pool) int32 {
	t.Helper()
	var pid int32
	pgtest.Poll(t, "a sequencer holds the lock", func() bool {
		err := pool.QueryRow(t.Context(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid)
		return err == nil
	})
	return pid
}

// Concurrent writers, some rolling back; two sequencers, the leader's session killed mid-way
// and one of them stopped later; a reader following from 0 sees every committed event exactly
// once, in gapless increasing positions, and none of a rolled-back transaction.
func TestConcurrent(t *testing.T) {
	t.Parallel()
	const (
		schema  = "portfolio"
		writers = 16
		txs     = 200
	)
	pool, url := setup(t, schema)
	ctx := t.Context()
	s1, stop1 := startSequencer(t, url, schema)
	s2, _ := startSequencer(t, url, schema)
	sequenced := func() int64 { return s1.Sequenced() + s2.Sequenced() }

	var (
		mu        sync.Mutex
		committed = map[string]time.Time{} // payload -> when its commit returned
		seen      = map[string]int{}
		seenAt    = map[string]time.Time{} // payload -> when the reader first read it
		readErr   error
		writing   atomic.Bool
		cursor    atomic.Int64
	)
	writing.Store(true)

	// Reader: its own connection (not one of the writers' pool) for reads and wake-ups, with a
	// poll fallback.
	readerDone, readerReady := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readerDone)
		listen, err := pgx.Connect(ctx, url)
		if err != nil {
			readErr = err
			close(readerReady)
			return
		}
		defer func() { _ = listen.Close(context.Background()) }()
		_, err = listen.Exec(ctx, "LISTEN "+pgx.Identifier{outbox.SequencedChannel(schema)}.Sanitize())
		close(readerReady)
		if err != nil {
			readErr = err
			return
		}
		var after int64
		for {
			recs, err := outbox.Read(ctx, listen, schema, after, nil, 500)
			if err != nil {
				readErr = err
				return
			}
			now := time.Now()
			mu.Lock()
			for _, r := range recs {
				if r.Position != after+1 {
					readErr = fmt.Errorf("position %d after %d: not the next one", r.Position, after)
				}
				after = r.Position
				p := string(r.Payload)
				if seen[p]++; seen[p] == 1 {
					seenAt[p] = now
				}
			}
			mu.Unlock()
			cursor.Store(after)
			if readErr != nil {
				return
			}
			if len(recs) > 0 {
				continue
			}
			if !writing.Load() {
				last, err := outbox.Last(ctx, listen, schema)
				if err != nil {
					readErr = err
					return
				}
				if last == after && sequenced() > 0 {
					var pending int
					if err := listen.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{schema, "outbox"}.Sanitize()+` WHERE position IS NULL`).Scan(&pending); err != nil {
						readErr = err
						return
					}
					if pending == 0 {
						return
					}
				}
			}
			wait, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, _ = listen.WaitForNotification(wait)
			cancel()
		}
	}()

	// Writers start once a sequencer leads and the reader listens: the figures leave out starts.
	leaderPID(t, pool)
	<-readerReady
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range txs {
				rollback := i%5 == 4
				k := 1 + i%3
				events := make([]outbox.Event, k)
				for j := range events {
					p := fmt.Sprintf("w%d-t%d-e%d", w, i, j)
					if rollback {
						p = "rb-" + p
					}
					events[j] = ev(p)
				}
				tx, err := pool.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := outbox.Append(ctx, tx, schema, events...); err != nil {
					_ = tx.Rollback(ctx)
					errs <- err
					return
				}
				if rollback {
					if err := tx.Rollback(ctx); err != nil {
						errs <- err
						return
					}
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
				at := time.Now()
				if err := outbox.Wake(ctx, pool, schema); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, e := range events {
					committed[string(e.Payload)] = at
				}
				mu.Unlock()
			}
		})
	}

	// Kill the leader's session mid-way; later stop the first sequencer.
	var total int64 // events to commit
	for i := range txs {
		if i%5 != 4 {
			total += int64(writers * (1 + i%3))
		}
	}
	pgtest.Poll(t, "a fifth of the events sequenced", func() bool { return sequenced() >= total/5 })
	pid := leaderPID(t, pool)
	killedAt := time.Now()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "a new leader", func() bool { return leaderPID(t, pool) != pid })
	pgtest.Poll(t, "half of the events sequenced", func() bool { return sequenced() >= total/2 })
	stop1()

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("writer: %v", err)
	}
	writing.Store(false)
	<-readerDone
	elapsed := time.Since(start)
	if readErr != nil {
		t.Fatalf("reader: %v", readErr)
	}

	mu.Lock()
	defer mu.Unlock()
	for p, n := range seen {
		if _, ok := committed[p]; !ok {
			t.Errorf("event %q seen %d times, never committed (rolled back?)", p, n)
		} else if n != 1 {
			t.Errorf("event %q seen %d times", p, n)
		}
	}
	var latencies, steady []time.Duration
	for p, at := range committed {
		if seen[p] == 0 {
			t.Errorf("committed event %q never seen", p)
		}
		// The reader may read an event before its writer has noted the commit's return: 0.
		d := max(0, seenAt[p].Sub(at))
		latencies = append(latencies, d)
		if at.Before(killedAt) {
			steady = append(steady, d)
		}
	}
	if t.Failed() {
		return
	}
	pct := func(ds []time.Duration, q float64) time.Duration {
		slices.Sort(ds)
		return ds[int(q*float64(len(ds)-1))].Round(10 * time.Microsecond)
	}
	t.Logf("%d events of %d writers x %d transactions (1 in 5 rolled back), a leader killed and a sequencer stopped: "+
		"%.0f events/s end to end; commit to visible with a position: all p50 %v, p99 %v, max %v; "+
		"before the kill (%d events) p50 %v, p99 %v; sequencers %d + %d",
		len(committed), writers, txs, float64(len(committed))/elapsed.Seconds(),
		pct(latencies, 0.5), pct(latencies, 0.99), pct(latencies, 1), len(steady), pct(steady, 0.5), pct(steady, 0.99),
		s1.Sequenced(), s2.Sequenced())
}

// Sequencing speed on its own: a backlog appended with no sequencer running, then one starts.
func TestSequencer_backlog(t *testing.T) {
	t.Parallel()
	const (
		schema = "bulk"
		n      = 20000
	)
	pool, url := setup(t, schema)
	events := make([]outbox.Event, 1000)
	for i := range events {
		events[i] = ev(fmt.Sprint(i))
	}
	for range n / len(events) {
		if err := appendTx(t.Context(), pool, schema, events...); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	startSequencer(t, url, schema)
	pgtest.Poll(t, "backlog sequenced", func() bool {
		last, err := outbox.Last(t.Context(), pool, schema)
		if err != nil {
			t.Fatal(err)
		}
		return last == n
	})
	elapsed := time.Since(start)
	t.Logf("backlog of %d events sequenced in %v (batches of 500): %.0f events/s (includes connect and the 20 ms poll of the check)",
		n, elapsed.Round(time.Millisecond), n/elapsed.Seconds())
}
