// Package migrate applies a service's SQL migrations with goose v3, under a PostgreSQL advisory
// lock so replicas starting together migrate once.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"regexp"
	"slices"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
)

// Set is one service's migrations: goose .sql files (0001_init.sql, ...) at the root of FS, each
// with "-- +goose Up" and "-- +goose Down" sections. The files must schema-qualify every name
// they create, since they run with the server's default search_path.
type Set struct {
	// Schema is the schema the migrations fill; its goose_db_version table lives there too,
	// because several services share one database. A plain lowercase identifier.
	Schema string
	// FS holds the migration files at its root (an embed.FS narrowed with fs.Sub, say).
	FS fs.FS
	// Steps are migrations written by code rather than in a file (outbox.Migration: DDL that
	// a package shares between services), applied in version order among the files. A
	// version may not be both a file and a step.
	Steps []Step
}

// Step is a migration given as SQL text: Up applies it, Down reverts it, each in one
// transaction.
type Step struct {
	Version  int64
	Up, Down string
}

// goMigrations turns steps into goose migrations that run their SQL in goose's transaction.
func goMigrations(steps []Step) []*goose.Migration {
	out := make([]*goose.Migration, 0, len(steps))
	for _, st := range steps {
		run := func(sqlText string) *goose.GoFunc {
			return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
				_, err := tx.ExecContext(ctx, sqlText)
				return err
			}}
		}
		out = append(out, goose.NewGoMigration(st.Version, run(st.Up), run(st.Down)))
	}
	return out
}

// schemaName is what Schema may hold: goose writes the version table's name into its SQL
// unquoted, so only names that need no quoting are safe.
var schemaName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Up creates each set's schema if it is missing, then applies the set's pending migrations, one
// set after another. Concurrent calls on one database (replicas starting together) are
// serialized per schema by a session advisory lock: one migrates, the others wait for it and
// then find nothing left to do. A role that may not create the schema gets an error saying an
// administrator must create it.
func Up(ctx context.Context, pool *pgxpool.Pool, sets ...Set) error {
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // leaves pool open: the connector only borrows its connections
	for _, s := range sets {
		if !schemaName.MatchString(s.Schema) {
			return fmt.Errorf("migrate: schema name %q is not a plain lowercase identifier", s.Schema)
		}
		if s.FS == nil {
			return fmt.Errorf("migrate %s: no migration files", s.Schema)
		}
		if err := ensureSchema(ctx, pool, s.Schema); err != nil {
			return err
		}
		store, err := database.NewStore(database.DialectPostgres, s.Schema+"."+goose.DefaultTablename)
		if err != nil {
			return fmt.Errorf("migrate %s: version store: %w", s.Schema, err)
		}
		// Polls once a second for up to 10 minutes: long enough for another replica's slow
		// migration, short enough that a stuck lock holder shows up as an error.
		locker, err := lock.NewPostgresSessionLocker(
			lock.WithLockID(LockID(s.Schema)),
			lock.WithLockTimeout(1, 600),
			lock.WithUnlockTimeout(1, 60),
		)
		if err != nil {
			return fmt.Errorf("migrate %s: locker: %w", s.Schema, err)
		}
		p, err := goose.NewProvider(database.DialectCustom, db, s.FS,
			goose.WithStore(store),
			goose.WithSessionLocker(locker),
			goose.WithDisableGlobalRegistry(true), // only this set's files, never Go migrations registered elsewhere
			goose.WithLogger(goose.NopLogger()),
			goose.WithGoMigrations(goMigrations(s.Steps)...),
		)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", s.Schema, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("migrate %s: %w", s.Schema, err)
		}
	}
	return nil
}

// LockID is the advisory lock key Up holds while migrating schema, exported so operators can
// find it in pg_locks. It differs per schema, so services sharing a database do not wait for
// each other.
func LockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("pgfleet/migrate:" + schema))
	return int64(h.Sum64()) //nolint:gosec // a hash; wrapping to negative is fine for a lock key
}

// ensureSchema creates schema unless it exists. Deployments create it beforehand, owned by the
// service's role; creating it here serves local runs and tests as a superuser.
func ensureSchema(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	exists, err := schemaExists(ctx, pool, schema)
	if err != nil || exists {
		return err
	}
	_, err = pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+pgx.Identifier{schema}.Sanitize())
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.InsufficientPrivilege:
		return fmt.Errorf("migrate: schema %q does not exist and this role may not create it; "+
			"an administrator must run CREATE SCHEMA %s AUTHORIZATION <service role>: %w", schema, schema, err)
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation:
		// IF NOT EXISTS still races: a replica created it between our check and our insert.
		if exists, _ := schemaExists(ctx, pool, schema); exists {
			return nil
		}
	}
	return fmt.Errorf("migrate: create schema %q: %w", schema, err)
}

func schemaExists(ctx context.Context, pool *pgxpool.Pool, schema string) (bool, error) {
	var exists bool
	err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists)
	if err != nil {
		return false, fmt.Errorf("migrate: look up schema %q: %w", schema, err)
	}
	return exists, nil
}

// Version is a set's migration state in one database: what the binary carries beside what
// the database has applied.
type Version struct {
	Schema  string
	Applied int64   // highest version applied; 0 when none (or no version table yet)
	Latest  int64   // highest version in the set: the binary's
	Pending []int64 // versions of the set not applied, ascending: Up would apply them
	// Unknown are applied versions the set lacks, ascending: a newer binary migrated this
	// database, so this one may not understand its schema.
	Unknown []int64
}

// Current says whether the database is exactly at the set's version.
func (v Version) Current() bool { return len(v.Pending) == 0 && len(v.Unknown) == 0 }

// Status reads set's migration state without changing anything (Up and goose's own status
// create the version table; Status only reads it), so operators may run it with a read-only
// role against a live database.
func Status(ctx context.Context, pool *pgxpool.Pool, set Set) (Version, error) {
	v := Version{Schema: set.Schema}
	if !schemaName.MatchString(set.Schema) {
		return v, fmt.Errorf("migrate: schema name %q is not a plain lowercase identifier", set.Schema)
	}
	files, err := fs.Glob(set.FS, "*.sql")
	if err != nil || len(files) == 0 {
		return v, fmt.Errorf("migrate %s: no migration files", set.Schema)
	}
	inSet := map[int64]bool{}
	for _, f := range files {
		n, err := goose.NumericComponent(f)
		if err != nil {
			return v, fmt.Errorf("migrate %s: %w", set.Schema, err)
		}
		inSet[n] = true
		v.Latest = max(v.Latest, n)
	}
	for _, st := range set.Steps {
		inSet[st.Version] = true
		v.Latest = max(v.Latest, st.Version)
	}
	table := pgx.Identifier{set.Schema, goose.DefaultTablename}.Sanitize()
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", table).Scan(&exists); err != nil {
		return v, fmt.Errorf("migrate %s: look up version table: %w", set.Schema, err)
	}
	applied := map[int64]bool{}
	if exists {
		// The last row of a version says whether it stands (goose marks a down with a new row).
		rows, _ := pool.Query(ctx, "SELECT DISTINCT ON (version_id) version_id, is_applied FROM "+table+
			" WHERE version_id > 0 ORDER BY version_id, id DESC")
		var id int64
		var ok bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &ok}, func() error {
			applied[id] = ok
			return nil
		}); err != nil {
			return v, fmt.Errorf("migrate %s: read versions: %w", set.Schema, err)
		}
	}
	for id, ok := range applied {
		if !ok {
			continue
		}
		v.Applied = max(v.Applied, id)
		if !inSet[id] {
			v.Unknown = append(v.Unknown, id)
		}
	}
	for id := range inSet {
		if !applied[id] {
			v.Pending = append(v.Pending, id)
		}
	}
	slices.Sort(v.Pending)
	slices.Sort(v.Unknown)
	return v, nil
}
