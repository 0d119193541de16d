package pgtest_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var widgets = migrate.Set{Schema: "widget", FS: fstest.MapFS{
	"0001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE widget.widgets (id bigint PRIMARY KEY, name text NOT NULL);
-- +goose Down
DROP TABLE widget.widgets;
`)},
	"0002_seed.sql": {Data: []byte(`-- +goose Up
INSERT INTO widget.widgets VALUES (1, 'seed');
-- +goose Down
DELETE FROM widget.widgets WHERE id = 1;
`)},
}}

func TestNewDB_migrated(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, widgets)
	rows, _ := pool.Query(t.Context(), "SELECT name FROM widget.widgets ORDER BY id")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select widgets: %v", err)
	}
	if diff := cmp.Diff([]string{"seed"}, got); diff != "" {
		t.Errorf("widgets mismatch (-want +got):\n%s", diff)
	}
	var version int64
	if err := pool.QueryRow(t.Context(), "SELECT max(version_id) FROM widget.goose_db_version").Scan(&version); err != nil {
		t.Fatalf("read goose version: %v", err)
	}
	if version != 2 {
		t.Errorf("goose version = %d, want 2", version)
	}
}

func TestNewDB_isolated(t *testing.T) {
	t.Parallel()
	a, b := pgtest.NewDB(t, widgets), pgtest.NewDB(t, widgets)
	if _, err := a.Exec(t.Context(), "INSERT INTO widget.widgets VALUES (2, 'only in a')"); err != nil {
		t.Fatalf("insert into a: %v", err)
	}
	for _, tt := range []struct {
		name string
		pool *pgxpool.Pool
		want int
	}{{"a", a, 2}, {"b", b, 1}} {
		var n int
		if err := tt.pool.QueryRow(t.Context(), "SELECT count(*) FROM widget.widgets").Scan(&n); err != nil {
			t.Fatalf("count in %s: %v", tt.name, err)
		}
		if n != tt.want {
			t.Errorf("rows in %s = %d, want %d", tt.name, n, tt.want)
		}
	}
	var nameA, nameB string
	_ = a.QueryRow(t.Context(), "SELECT current_database()").Scan(&nameA)
	_ = b.QueryRow(t.Context(), "SELECT current_database()").Scan(&nameB)
	if nameA == nameB {
		t.Errorf("both pools are on database %q", nameA)
	}
}

func TestNewDB_concurrentClones(t *testing.T) {
	t.Parallel()
	other := migrate.Set{Schema: "gadget", FS: fstest.MapFS{"0001_init.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE gadget.gadgets (id int);\n-- +goose Down\nDROP TABLE gadget.gadgets;\n")}}}
	for _, name := range []string{"one", "two", "three", "four", "five", "six"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t, widgets, other)
			if _, err := pool.Exec(t.Context(), "INSERT INTO gadget.gadgets SELECT id FROM widget.widgets"); err != nil {
				t.Errorf("use both schemas: %v", err)
			}
		})
	}
}

func TestNewDB_empty(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	var n int
	err := pool.QueryRow(t.Context(),
		"SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')").Scan(&n)
	if err != nil {
		t.Fatalf("count schemas: %v", err)
	}
	if n != 0 {
		t.Errorf("database without migrations has %d extra schemas, want 0", n)
	}
}

func TestNewDBURL(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDBURL(t, widgets)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM widget.widgets").Scan(&n); err != nil {
		t.Fatalf("count widgets: %v", err)
	}
	if n != 1 {
		t.Errorf("widgets = %d, want 1", n)
	}
}

func TestNewDBURL_droppedWithOpenSessions(t *testing.T) {
	t.Parallel()
	var url string
	// Not parallel: a sequential subtest's cleanup has run when t.Run returns, so the drop can
	// be observed here.
	t.Run("leaves_a_session_open", func(t *testing.T) {
		url = pgtest.NewDBURL(t)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		_ = conn // left open on purpose: the drop must end it
	})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Errorf("connect to %s after cleanup succeeded, want the database dropped", url)
	}
}

func TestCluster_stopStart(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	pool := c.NewDB(t, widgets)
	count := func(ctx context.Context) (int, error) {
		var n int
		err := pool.QueryRow(ctx, "SELECT count(*) FROM widget.widgets").Scan(&n)
		return n, err
	}
	if n, err := count(t.Context()); err != nil || n != 1 {
		t.Fatalf("before stop: count = %d, %v; want 1, nil", n, err)
	}

	c.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := count(ctx); err == nil {
		t.Fatal("query on a stopped cluster succeeded")
	}

	c.Start(t)
	// The pool may still hold a connection it had not yet found dead; one failure is allowed.
	var n int
	var err error
	for range 3 {
		if n, err = count(t.Context()); err == nil {
			break
		}
	}
	if err != nil || n != 1 {
		t.Fatalf("after restart: count = %d, %v; want 1, nil", n, err)
	}
}

func TestCluster_URL(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	conn, err := pgx.Connect(t.Context(), c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var settings []string
	rows, _ := conn.Query(t.Context(),
		"SELECT name || '=' || setting FROM pg_settings WHERE name IN ('fsync', 'max_connections', 'deadlock_timeout') ORDER BY name")
	settings, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read settings: %v", err)
	}
	want := []string{"deadlock_timeout=100", "fsync=off", "max_connections=400"}
	if diff := cmp.Diff(want, settings); diff != "" {
		t.Errorf("settings mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkNewDB(b *testing.B) {
	pgtest.NewDB(b, widgets) // the template, built once
	for b.Loop() {
		pgtest.NewDBURL(b, widgets)
	}
}
