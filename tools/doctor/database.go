package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
)

type addFunc func(check string, st Status, format string, args ...any)

// checkDatabase connects with the service's own URL and returns the pool, or nil after
// reporting why it could not.
func checkDatabase(ctx context.Context, name, url string, timeout time.Duration, add addFunc) *pgxpool.Pool {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		add("database", Fail, "database_url does not parse: %v", errors.Unwrap(err))
		return nil
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.ConnectTimeout = timeout
	cfg.ConnConfig.RuntimeParams["application_name"] = "pgfleet doctor"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		add("database", Fail, "%v", err)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var version, user, db string
	err = pool.QueryRow(ctx, "SELECT current_setting('server_version'), current_user, current_database()").Scan(&version, &user, &db)
	if err != nil {
		pool.Close()
		add("database", Fail, "%s as %s: %s", serverOf(url), cfg.ConnConfig.User, pgMessage(err))
		return nil
	}
	add("database", OK, "PostgreSQL %s at %s, database %s, role %s", version, serverOf(url), db, user)
	return pool
}

// pgMessage is err in one line without pgx's connection preamble.
func pgMessage(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pgErr.Message, pgErr.Code)
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	if i := strings.LastIndex(msg, "dial error: "); i >= 0 { // after pgx's "failed to connect to ..."
		msg = msg[i:]
	}
	return msg
}

// checkIsolation checks that the service's role is a plain role that cannot read the tables
// of the other services' schemas in its database.
func checkIsolation(ctx context.Context, db *pgxpool.Pool, name string, f *Fleet, timeout time.Duration, add addFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var problems []string
	var super, createRole, bypassRLS bool
	err := db.QueryRow(ctx, "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user").
		Scan(&super, &createRole, &bypassRLS)
	if err != nil {
		add("isolation", Warn, "read the role's attributes: %s", pgMessage(err))
		return
	}
	for attr, has := range map[string]bool{"SUPERUSER": super, "CREATEROLE": createRole, "BYPASSRLS": bypassRLS} {
		if has {
			problems = append(problems, "role has "+attr)
		}
	}
	if len(problems) > 1 { // map order: sort for a stable line
		slices.Sort(problems)
	}
	own := schemaOf(name)
	var others []string
	for _, other := range unionNames(f) {
		if s := schemaOf(other); s != own {
			others = append(others, s)
		}
	}
	var refused []string
	for _, schema := range others {
		// A table the role may read comes first, so a grant on one table is not missed.
		var table string
		err := db.QueryRow(ctx, `
			SELECT format('%I.%I', n.nspname, c.relname)
			FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm')
			ORDER BY has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT') DESC, c.relname
			LIMIT 1`, schema).Scan(&table)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // not in this database: nothing to read
		}
		if err != nil {
			add("isolation", Warn, "list the tables of schema %s: %s", schema, pgMessage(err))
			return
		}
		_, err = db.Exec(ctx, "SELECT FROM "+table+" LIMIT 0")
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			problems = append(problems, "can read "+table)
		case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege:
			refused = append(refused, schema)
		default:
			add("isolation", Warn, "read %s: %s", table, pgMessage(err))
			return
		}
	}
	switch {
	case len(problems) > 0:
		add("isolation", Fail, "%s", strings.Join(problems, "; "))
	case len(refused) == 0:
		add("isolation", OK, "plain role; no other service's schema in this database")
	default:
		add("isolation", OK, "plain role; reading %s is refused", strings.Join(refused, ", "))
	}
}

// schemaOf is the schema a service owns: its migration set's, else its name.
func schemaOf(name string) string {
	if s, ok := migrationSets[name]; ok {
		return s.Schema
	}
	return name
}

// unionNames are the fleet's services and those pgfleet knows, sorted: a schema of a service
// missing from the fleet file is still one to keep out of.
func unionNames(f *Fleet) []string {
	names := f.names()
	for n := range migrationSets {
		if _, ok := f.Services[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// checkMigrations compares the database's migration version with this build's.
func checkMigrations(ctx context.Context, db *pgxpool.Pool, name string, timeout time.Duration, add addFunc) {
	set, ok := migrationSets[name]
	if !ok {
		add("migrations", Warn, "pgfleet has no migrations for a service named %q", name)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := migrate.Status(ctx, db, set)
	switch {
	case err != nil:
		add("migrations", Fail, "%s", pgMessage(err))
	case len(v.Pending) > 0:
		add("migrations", Fail, "schema %s at version %d, pgfleet's latest %d: pending %s (run migrate up)",
			v.Schema, v.Applied, v.Latest, joinInts(v.Pending))
	case len(v.Unknown) > 0:
		add("migrations", Warn, "schema %s at version %d, newer than this pgfleet's %d: unknown %s",
			v.Schema, v.Applied, v.Latest, joinInts(v.Unknown))
	default:
		add("migrations", OK, "schema %s at version %d, pgfleet's latest", v.Schema, v.Applied)
	}
}

func joinInts(vs []int64) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = strconv.FormatInt(v, 10)
	}
	return strings.Join(s, ", ")
}

// pool is one service's share of a server's connections.
type pool struct {
	name          string
	max, replicas int // max 0: unknown
}

// checkServer checks a database server through url: the connection budget of pools, replica
// lag, and its clock.
func checkServer(ctx context.Context, url, via string, pools []pool, timeout time.Duration, add addFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		add("server", Fail, "%v", err)
		return
	}
	cfg.ConnectTimeout = timeout
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		add("server", Fail, "connect as %s: %s", via, pgMessage(err))
		return
	}
	defer conn.Close(context.Background())

	checkPasswords(ctx, cfg, add)

	var maxConns, suReserved, reserved int
	err = conn.QueryRow(ctx, `SELECT current_setting('max_connections')::int,
		current_setting('superuser_reserved_connections')::int,
		coalesce(current_setting('reserved_connections', true)::int, 0)`).Scan(&maxConns, &suReserved, &reserved)
	if err != nil {
		add("connections", Warn, "read max_connections: %s", pgMessage(err))
	} else {
		checkBudget(pools, maxConns, suReserved+reserved, add)
	}

	var replicas, visible int
	var lag *float64
	err = conn.QueryRow(ctx, `SELECT count(*), count(replay_lag), max(extract(epoch FROM replay_lag))::float8
		FROM pg_stat_replication`).Scan(&replicas, &visible, &lag)
	switch {
	case err != nil:
		add("replication", Warn, "read pg_stat_replication as %s: %s", via, pgMessage(err))
	case replicas == 0:
		add("replication", OK, "no replicas")
	case visible == 0 || lag == nil:
		add("replication", Warn, "%d replica(s), lag not visible to role %s (grant it pg_read_all_stats)", replicas, cfg.User)
	default:
		d := time.Duration(*lag * float64(time.Second))
		st := OK
		if d > lagFail {
			st = Fail
		} else if d > lagWarn {
			st = Warn
		}
		add("replication", st, "%d replica(s), replay lag up to %s", replicas, d.Round(time.Millisecond))
	}

	t0 := time.Now()
	var now time.Time
	if err := conn.QueryRow(ctx, "SELECT clock_timestamp()").Scan(&now); err != nil {
		add("clock", Warn, "read the server's clock: %s", pgMessage(err))
		return
	}
	rtt := time.Since(t0)
	skew := now.Sub(t0.Add(rtt / 2))
	add("clock", skewStatus(skew), "%s this machine (clock_timestamp(), round trip %s)", skewText(skew, time.Millisecond), rtt.Round(time.Microsecond))
}

// checkBudget compares the sum of the pools (each max × replicas) with what the server lets
// ordinary roles open.
func checkBudget(pools []pool, maxConns, reserved int, add addFunc) {
	allowed := maxConns - reserved
	sum := 0
	var parts, unknown []string
	for _, p := range pools {
		if p.max == 0 {
			unknown = append(unknown, p.name)
			continue
		}
		sum += p.max * p.replicas
		parts = append(parts, fmt.Sprintf("%s %d×%d", p.name, p.max, p.replicas))
	}
	share := float64(sum) / float64(max(allowed, 1))
	detail := fmt.Sprintf("pools %d (%s) of %d allowed (max_connections %d - %d reserved): %d%%",
		sum, strings.Join(parts, " + "), allowed, maxConns, reserved, int(math.Round(share*100)))
	switch {
	case sum > allowed:
		add("connections", Fail, "%s", detail)
	case len(unknown) > 0:
		add("connections", Warn, "%s; pool size unknown for %s (DatabaseMonitor did not answer)", detail, strings.Join(unknown, ", "))
	case share > budgetWarn:
		add("connections", Warn, "%s", detail)
	default:
		add("connections", OK, "%s", detail)
	}
}

func skewStatus(skew time.Duration) Status {
	switch skew = skew.Abs(); {
	case skew > skewFail:
		return Fail
	case skew > skewWarn:
		return Warn
	}
	return OK
}

// skewText says how far a clock is from this machine's.
// Below resolution, the clocks read alike.
func skewText(skew, resolution time.Duration) string {
	switch {
	case skew.Abs() < resolution:
		return "within " + resolution.String() + " of"
	case skew > 0:
		return skew.Round(time.Millisecond).String() + " ahead of"
	}
	return (-skew).Round(time.Millisecond).String() + " behind"
}

// checkPasswords logs in with a wrong password: a server that lets the role in anyway does not
// check passwords (trust in pg_hba.conf), so anyone who reaches it is any role.
func checkPasswords(ctx context.Context, cfg *pgx.ConnConfig, add addFunc) {
	if cfg.Password == "" {
		return // no password in the URL: certificates, peer or a .pgpass, which this cannot probe
	}
	wrong := cfg.Copy()
	wrong.Password += "-pgfleet-doctor-wrong"
	conn, err := pgx.ConnectConfig(ctx, wrong)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		conn.Close(context.Background())
		add("passwords", Warn, "role %s logs in with a wrong password: the server does not check passwords (trust in pg_hba.conf)", cfg.User)
	case errors.As(err, &pgErr) && (pgErr.Code == pgerrcode.InvalidPassword || pgErr.Code == pgerrcode.InvalidAuthorizationSpecification):
		add("passwords", OK, "a wrong password for role %s is refused", cfg.User)
	default:
		add("passwords", Warn, "log in with a wrong password: %s", pgMessage(err))
	}
}
