package pgtest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestReplicatedCluster: the standby shows what the primary committed once replayed, nothing
// committed while its replay is paused, refuses writes, and streams under its name. The
// subtests share one pair and run in order (pausing replay is the pair's state).
func TestReplicatedCluster(t *testing.T) {
	t.Parallel()
	began := time.Now()
	r := pgtest.NewReplicatedCluster(t)
	t.Logf("primary and standby started in %v", time.Since(began).Round(time.Millisecond))
	pool := r.NewDB(t, widgets)
	db := pool.Config().ConnConfig.Database
	standby := pgtest.Connect(t, r.StandbyURL(db))

	t.Run("database and migrations replayed", func(t *testing.T) {
		if got := names(t, standby); len(got) != 1 || got[0] != "seed" {
			t.Errorf("widgets on the standby = %q, want [seed]", got)
		}
	})
	t.Run("row written on the primary is read on the standby", func(t *testing.T) {
		exec(t, pool, "INSERT INTO widget.widgets VALUES (2, 'replicated')")
		r.WaitReplayed(t, r.PrimaryLSN(t))
		if got := names(t, standby); len(got) != 2 || got[1] != "replicated" {
			t.Errorf("widgets on the standby = %q, want [seed replicated]", got)
		}
	})
	t.Run("paused replay hides a write until resumed", func(t *testing.T) {
		r.PauseReplay(t)
		exec(t, pool, "INSERT INTO widget.widgets VALUES (3, 'held back')")
		lsn := r.PrimaryLSN(t)
		// The standby has the write's WAL in hand, and still does not show it.
		pgtest.Poll(t, "the standby receives the write's WAL", func() bool {
			var got bool
			err := standby.QueryRow(t.Context(), "SELECT pg_last_wal_receive_lsn() >= $1::text::pg_lsn", lsn.String()).Scan(&got)
			return err == nil && got
		})
		if got := names(t, standby); len(got) != 2 {
			t.Errorf("widgets on the paused standby = %q, want 2 (the third held back)", got)
		}
		r.ResumeReplay(t)
		r.WaitReplayed(t, lsn)
		if got := names(t, standby); len(got) != 3 {
			t.Errorf("widgets on the resumed standby = %q, want 3", got)
		}
	})
	t.Run("standby refuses writes", func(t *testing.T) {
		_, err := standby.Exec(t.Context(), "INSERT INTO widget.widgets VALUES (4, 'refused')")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.ReadOnlySQLTransaction {
			t.Errorf("insert on the standby: %v, want SQLSTATE %s", err, pgerrcode.ReadOnlySQLTransaction)
		}
	})
	t.Run("pg_stat_replication names the standby", func(t *testing.T) {
		pgtest.Poll(t, "the standby streams", func() bool {
			var n int
			err := pool.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'",
				pgtest.StandbyName).Scan(&n)
			return err == nil && n == 1
		})
	})
}

// After the primary's crash and the standby's promotion, the standby accepts writes and holds
// what was replayed before.
func TestReplicatedCluster_promote(t *testing.T) {
	t.Parallel()
	r := pgtest.NewReplicatedCluster(t)
	primaryURL, standbyURL := r.NewDBURLs(t, widgets)
	primary := pgtest.Connect(t, primaryURL)
	exec(t, primary, "INSERT INTO widget.widgets VALUES (2, 'before the crash')")
	r.WaitReplayed(t, r.PrimaryLSN(t))

	r.StopPrimary(t)
	began := time.Now()
	r.Promote(t)
	t.Logf("promoted in %v", time.Since(began).Round(time.Millisecond))
	promoted := pgtest.Connect(t, standbyURL)
	exec(t, promoted, "INSERT INTO widget.widgets VALUES (3, 'after the promotion')")
	if got := names(t, promoted); len(got) != 3 {
		t.Errorf("widgets on the new primary = %q, want 3", got)
	}
}

// FailoverURL lists both servers with target_session_attrs=read-write: it reaches the primary
// while the standby is in recovery, and the standby once the primary is gone and it is promoted.
func TestReplicatedCluster_failoverURL(t *testing.T) {
	t.Parallel()
	r := pgtest.NewReplicatedCluster(t)
	db := r.NewDB(t, widgets).Config().ConnConfig.Database
	writable := func(t *testing.T) *pgx.Conn {
		t.Helper()
		conn := pgtest.Connect(t, r.FailoverURL(db))
		var inRecovery bool
		if err := conn.QueryRow(t.Context(), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
			t.Fatalf("FailoverURL reached a server in recovery %v (err %v), want the read-write one", inRecovery, err)
		}
		return conn
	}
	exec(t, writable(t), "INSERT INTO widget.widgets VALUES (2, 'on the primary')")
	r.WaitReplayed(t, r.PrimaryLSN(t))
	r.StopPrimary(t)
	r.Promote(t)
	conn := writable(t)
	exec(t, conn, "INSERT INTO widget.widgets VALUES (3, 'on the promoted standby')")
	if got := names(t, conn); len(got) != 3 {
		t.Errorf("widgets through FailoverURL after the promotion = %q, want 3", got)
	}
}

// With the standby stopped, the primary takes writes as before.
func TestReplicatedCluster_stopStandby(t *testing.T) {
	t.Parallel()
	r := pgtest.NewReplicatedCluster(t)
	pool := r.NewDB(t, widgets)
	r.StopStandby(t)
	exec(t, pool, "INSERT INTO widget.widgets VALUES (2, 'no standby')")
	if got := names(t, pool); len(got) != 2 {
		t.Errorf("widgets on the primary = %q, want 2", got)
	}
}

type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func exec(t *testing.T, q querier, sql string) {
	t.Helper()
	if _, err := q.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func names(t *testing.T, q querier) []string {
	t.Helper()
	rows, _ := q.Query(t.Context(), "SELECT name FROM widget.widgets ORDER BY id")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select widgets: %v", err)
	}
	return got
}

// With Synchronous, every commit on the primary returns only once the standby has received
// and flushed the commit's WAL: its receive position is past the WAL the transaction wrote
// before committing, read before the commit returned. Once promoted, the standby commits
// alone (its configuration names no synchronous standby of its own).
func TestReplicatedCluster_synchronous(t *testing.T) {
	t.Parallel()
	r := pgtest.NewReplicatedCluster(t, pgtest.Synchronous())
	primaryURL, standbyURL := r.NewDBURLs(t, widgets)
	primary := pgtest.Connect(t, primaryURL)
	standby := pgtest.Connect(t, standbyURL)
	var level, standbys string
	if err := primary.QueryRow(t.Context(), "SELECT current_setting('synchronous_commit'), current_setting('synchronous_standby_names')").
		Scan(&level, &standbys); err != nil {
		t.Fatal(err)
	}
	if level != "on" || standbys != `"`+pgtest.StandbyName+`"` {
		t.Errorf("primary's synchronous_commit = %q, synchronous_standby_names = %q, want on and %q", level, standbys, pgtest.StandbyName)
	}
	for i := range 20 {
		tx, err := primary.Begin(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var before string
		err = tx.QueryRow(t.Context(), "INSERT INTO widget.widgets VALUES ($1, 'synchronous') RETURNING pg_current_wal_insert_lsn()::text",
			100+i).Scan(&before)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
		var flushed bool
		// The commit record lies after the insert's WAL: received and flushed means strictly past it.
		if err := standby.QueryRow(t.Context(), "SELECT pg_last_wal_receive_lsn() > $1::pg_lsn", before).Scan(&flushed); err != nil {
			t.Fatal(err)
		}
		if !flushed {
			t.Fatalf("commit %d returned before the standby flushed its WAL (insert at %s)", i, before)
		}
	}
	r.WaitReplayed(t, r.PrimaryLSN(t))
	if got := names(t, standby); len(got) != 21 {
		t.Errorf("widgets on the standby = %d, want 21", len(got))
	}

	r.StopPrimary(t)
	r.Promote(t)
	promoted := pgtest.Connect(t, standbyURL)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := promoted.Exec(ctx, "INSERT INTO widget.widgets VALUES (200, 'after the promotion')"); err != nil {
		t.Fatalf("insert on the promoted standby: %v", err)
	}
}
