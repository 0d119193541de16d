package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// defaultMaxReplicaLag is the services' MAX_REPLICA_LAG when the fleet file names none.
const defaultMaxReplicaLag = 10 * time.Second

// checkReadReplicas checks each replica of the service's DATABASE_READ_URL as the service's
// router sees it: reachable with the service's role, in recovery (a promoted or primary
// server is not read from), and its replay lag, in time and WAL bytes behind the primary
// (db, the service's primary pool; nil when unreachable). A replica the service cannot use
// fails; one lagging beyond maxLag, whose reads the service then sends to the primary, warns.
func checkReadReplicas(ctx context.Context, readURL string, maxLag time.Duration, db *pgxpool.Pool, timeout time.Duration, add addFunc) {
	for _, u := range replica.SplitURLs(readURL) {
		checkReadReplica(ctx, u, maxLag, db, timeout, add)
	}
}

func checkReadReplica(ctx context.Context, url string, maxLag time.Duration, db *pgxpool.Pool, timeout time.Duration, add addFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		add("read-replica", Fail, "database_read_url does not parse: %v", err)
		return
	}
	where := serverOf(url)
	cfg.ConnectTimeout = timeout
	cfg.RuntimeParams["application_name"] = "pgfleet doctor"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		add("read-replica", Fail, "%s as %s: %s", where, cfg.User, pgMessage(err))
		return
	}
	defer conn.Close(context.Background())
	var (
		inRecovery bool
		user       string
		replay     *string
		lagSecs    *float64
	)
	err = conn.QueryRow(ctx, `SELECT pg_is_in_recovery(), current_user, pg_last_wal_replay_lsn()::text,
		extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`).Scan(&inRecovery, &user, &replay, &lagSecs)
	switch {
	case err != nil:
		add("read-replica", Fail, "%s as %s: %s", where, cfg.User, pgMessage(err))
		return
	case !inRecovery || replay == nil:
		add("read-replica", Fail, "%s, role %s: not in recovery (a primary, or promoted): the service reads on the primary instead", where, user)
		return
	}
	replayed, err := pgserver.ParseLSN(*replay)
	if err != nil {
		add("read-replica", Fail, "%s: replay position %q: %v", where, *replay, err)
		return
	}
	// As the service's router measures it: no lag once the primary's position is replayed,
	// else the age of the last commit replayed.
	behind, known := "", false
	var primary *string
	if db != nil && db.QueryRow(ctx, "SELECT pg_current_wal_insert_lsn()::text").Scan(&primary) == nil && primary != nil {
		if p, err := pgserver.ParseLSN(*primary); err == nil {
			known = true
			behind = fmt.Sprintf(", %d WAL bytes behind", max(int64(p)-int64(replayed), 0))
			if replayed >= p {
				lagSecs = new(float64)
			}
		}
	}
	if !known {
		behind = ", WAL position of the primary unknown"
	}
	if lagSecs == nil {
		add("read-replica", Warn, "%s, role %s, in recovery, replayed %s%s; replay lag unknown (no commit replayed since it started): the service reads on the primary until one is",
			where, user, replayed, behind)
		return
	}
	lag := time.Duration(max(*lagSecs, 0) * float64(time.Second))
	if lag > maxLag {
		add("read-replica", Warn, "%s, role %s, in recovery, replay lag %s%s: beyond MAX_REPLICA_LAG %s, so the service reads on the primary",
			where, user, lag.Round(time.Millisecond), behind, maxLag)
		return
	}
	add("read-replica", OK, "%s, role %s, in recovery, replay lag %s%s (MAX_REPLICA_LAG %s)", where, user, lag.Round(time.Millisecond), behind, maxLag)
}
