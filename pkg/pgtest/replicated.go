package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

// StandbyName is the application_name of a ReplicatedCluster's standby, as pg_stat_replication
// on the primary shows it.
const StandbyName = "pgtest_standby"

// replicationWait bounds every wait for the standby (replay, promotion): generous, for a busy
// machine; the waits poll and end as soon as the condition holds.
const replicationWait = time.Minute

// ReplicatedCluster is a private throwaway primary with one hot standby of its own, streaming
// from it (pkg/pgserver's Replication settings), for tests that need both: reads on a replica,
// replay lag, failover. Databases are made on the primary; the other tests' shared cluster is
// not replicated.
type ReplicatedCluster struct {
	primary *Cluster
	standby *pgserver.Server
}

// ReplicatedOption changes how NewReplicatedCluster sets the pair up.
type ReplicatedOption func(*replicatedOptions)

type replicatedOptions struct {
	synchronous bool
}

// Synchronous makes the standby synchronous: the primary runs with synchronous_commit=on (a
// throwaway server's is off, which acknowledges a commit before even its local WAL flush) and
// synchronous_standby_names naming StandbyName, so a commit returns only once the standby has
// received and flushed its WAL, and a failover to it loses no acknowledged commit. The
// standby does not carry the setting: once promoted, it commits alone. While the standby is
// stopped, commits on the primary wait for it.
func Synchronous() ReplicatedOption {
	return func(o *replicatedOptions) { o.synchronous = true }
}

// NewReplicatedCluster starts a primary and a standby of it (pg_basebackup -R) in a new temporary
// directory and returns once the standby answers reads (and, with Synchronous, once the primary
// counts it as its synchronous standby). Both are stopped and their files removed when tb
// finishes.
func NewReplicatedCluster(tb testing.TB, opts ...ReplicatedOption) *ReplicatedCluster {
	tb.Helper()
	var o replicatedOptions
	for _, opt := range opts {
		opt(&o)
	}
	var settings []pgserver.Setting
	if o.synchronous {
		settings = append(settings, pgserver.Setting{Name: "synchronous_commit", Value: "on"})
	}
	primary, err := startCluster(tb.Context(), true, settings...)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	r := &ReplicatedCluster{primary: primary}
	tb.Cleanup(func() {
		var errs []error
		if r.standby != nil {
			errs = append(errs, r.standby.Stop())
		}
		if err := errors.Join(append(errs, primary.close())...); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	r.standby, err = primary.srv.StartStandby(tb.Context(), pgserver.StandbyOptions{
		DataDir: filepath.Join(primary.srv.dir, "standby"), Log: filepath.Join(primary.srv.dir, "standby.log"),
		Name: StandbyName})
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if o.synchronous {
		r.makeSynchronous(tb)
	}
	return r
}

// makeSynchronous names the standby in the primary's synchronous_standby_names and waits until
// the primary counts it so. ALTER SYSTEM, after the base backup: the standby's copy of the
// configuration must not name a standby, or its commits would wait for one after a promotion.
func (r *ReplicatedCluster) makeSynchronous(tb testing.TB) {
	tb.Helper()
	ctx := tb.Context()
	name := pgx.Identifier{StandbyName}.Sanitize()
	for _, sql := range []string{"ALTER SYSTEM SET synchronous_standby_names = '" + name + "'", "SELECT pg_reload_conf()"} {
		if _, err := r.primary.admin.Exec(ctx, sql); err != nil {
			tb.Fatalf("pgtest: %s: %v", sql, err)
		}
	}
	deadline := time.Now().Add(replicationWait)
	for {
		var state string
		err := r.primary.admin.QueryRow(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
			StandbyName).Scan(&state)
		if err == nil && state == "sync" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgtest: the standby's sync_state is %q (err %v), not sync, after %v", state, err, replicationWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PrimaryURL returns a superuser URL of database db on the primary.
func (r *ReplicatedCluster) PrimaryURL(db string) string { return r.primary.URL(db) }

// StandbyURL returns a superuser URL of database db on the standby (read-only until Promote).
func (r *ReplicatedCluster) StandbyURL(db string) string { return r.standby.URL(db) }

// FailoverURL returns a superuser URL of database db that lists both servers, the primary
// first, with target_session_attrs=read-write: as libpq does, pgx tries the hosts in order and
// keeps the first that accepts writes, so a pool on it reaches the standby once promoted.
func (r *ReplicatedCluster) FailoverURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write",
		r.primary.srv.Port, r.standby.Port, url.PathEscape(db))
}

// NewDB returns a pool on a new database of the primary, cloned from a template that holds the
// migrations in sets, once the standby has replayed its creation (so replay must not be
// paused). Use StandbyURL(pool.Config().ConnConfig.Database) to read it on the standby. The pool
// is closed and the database dropped when tb finishes.
func (r *ReplicatedCluster) NewDB(tb testing.TB, sets ...migrate.Set) *pgxpool.Pool {
	tb.Helper()
	pool := r.primary.NewDB(tb, sets...)
	r.WaitReplayed(tb, r.PrimaryLSN(tb))
	return pool
}

// NewDBURLs is NewDB returning the new database's superuser URLs on the primary and on the
// standby instead of a pool.
func (r *ReplicatedCluster) NewDBURLs(tb testing.TB, sets ...migrate.Set) (primary, standby string) {
	tb.Helper()
	name := r.primary.newDatabase(tb, sets)
	r.WaitReplayed(tb, r.PrimaryLSN(tb))
	return r.PrimaryURL(name), r.StandbyURL(name)
}

// PrimaryLSN returns the primary's current WAL position: once the standby has replayed it
// (WaitReplayed), it sees every transaction committed before this call.
func (r *ReplicatedCluster) PrimaryLSN(tb testing.TB) pgserver.LSN {
	tb.Helper()
	lsn, err := r.primary.srv.CurrentLSN(tb.Context())
	if err != nil {
		tb.Fatalf("pgtest: primary's WAL position: %v", err)
	}
	return lsn
}

// ReplayLSN returns how far the standby has replayed the primary's WAL.
func (r *ReplicatedCluster) ReplayLSN(tb testing.TB) pgserver.LSN {
	tb.Helper()
	lsn, err := r.standby.ReplayLSN(tb.Context())
	if err != nil {
		tb.Fatalf("pgtest: standby's replay position: %v", err)
	}
	return lsn
}

// WaitReplayed waits until the standby has replayed the WAL up to lsn; the test fails if that
// takes more than a minute.
func (r *ReplicatedCluster) WaitReplayed(tb testing.TB, lsn pgserver.LSN) {
	tb.Helper()
	deadline := time.Now().Add(replicationWait)
	for {
		got, err := r.standby.ReplayLSN(tb.Context())
		if err == nil && got >= lsn {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pgtest: standby replayed %v (err %v), not %v, within %v", got, err, lsn, replicationWait)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PauseReplay stops the standby's replay (pg_wal_replay_pause): it still receives the primary's
// WAL but shows none of the transactions committed after the call, until ResumeReplay.
func (r *ReplicatedCluster) PauseReplay(tb testing.TB) {
	tb.Helper()
	r.execStandby(tb, "SELECT pg_wal_replay_pause()")
}

// ResumeReplay resumes the standby's replay (pg_wal_replay_resume).
func (r *ReplicatedCluster) ResumeReplay(tb testing.TB) {
	tb.Helper()
	r.execStandby(tb, "SELECT pg_wal_replay_resume()")
}

func (r *ReplicatedCluster) execStandby(tb testing.TB, sql string) {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), r.StandbyURL("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connect to the standby: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(tb.Context(), sql); err != nil {
		tb.Fatalf("pgtest: %s on the standby: %v", sql, err)
	}
}

// StopPrimary ends the primary at once (immediate shutdown, as a crash would), for good: the
// databases made on it are not dropped when the test ends, they go with the cluster's files.
func (r *ReplicatedCluster) StopPrimary(tb testing.TB) {
	tb.Helper()
	r.primary.gone.Store(true)
	if err := r.primary.srv.StopImmediate(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Promote makes the standby the new primary and returns once it accepts writes
// (pg_is_in_recovery() is false). StandbyURL then names the new primary.
func (r *ReplicatedCluster) Promote(tb testing.TB) {
	tb.Helper()
	if err := r.standby.Promote(tb.Context(), replicationWait); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if in, err := r.standby.InRecovery(tb.Context()); err != nil || in {
		tb.Fatalf("pgtest: promoted standby: in recovery %v, err %v", in, err)
	}
}

// StopStandby shuts the standby down (fast shutdown); the primary runs on (with Synchronous,
// its commits then wait for the standby).
func (r *ReplicatedCluster) StopStandby(tb testing.TB) {
	tb.Helper()
	if err := r.standby.Stop(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}
