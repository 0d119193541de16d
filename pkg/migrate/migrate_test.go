package migrate_test

import (
	"context"
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// orders has no IF NOT EXISTS anywhere, so applying it twice fails.
var orders = migrate.Set{Schema: "orders", FS: fstest.MapFS{
	"0001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE orders.orders (id bigint PRIMARY KEY, total numeric NOT NULL);
-- +goose Down
DROP TABLE orders.orders;
`)},
	"0002_index.sql": {Data: []byte(`-- +goose Up
CREATE INDEX orders_total ON orders.orders (total);
INSERT INTO orders.orders VALUES (1, 9.99);
-- +goose Down
DROP INDEX orders.orders_total;
`)},
}}

var users = migrate.Set{Schema: "users", FS: fstest.MapFS{
	"0001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE users.users (id bigint PRIMARY KEY);
-- +goose Down
DROP TABLE users.users;
`)},
}}

// versions lists the applied migration versions recorded in schema's goose table.
func versions(t *testing.T, pool *pgxpool.Pool, schema string) []int64 {
	t.Helper()
	rows, _ := pool.Query(t.Context(),
		"SELECT version_id FROM "+pgx.Identifier{schema, "goose_db_version"}.Sanitize()+" WHERE is_applied ORDER BY id")
	got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatalf("read %s versions: %v", schema, err)
	}
	return got
}

func TestUp(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t) // no migrations: Up starts from nothing
	if err := migrate.Up(t.Context(), pool, orders, users); err != nil {
		t.Fatalf("Up() = %v", err)
	}
	var total string
	if err := pool.QueryRow(t.Context(), "SELECT total::text FROM orders.orders WHERE id = 1").Scan(&total); err != nil {
		t.Fatalf("read seeded order: %v", err)
	}
	if total != "9.99" {
		t.Errorf("total = %q, want 9.99", total)
	}
	// Each schema keeps its own history, so services sharing a database don't mix versions.
	if diff := cmp.Diff([]int64{0, 1, 2}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("orders versions mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{0, 1}, versions(t, pool, "users")); diff != "" {
		t.Errorf("users versions mismatch (-want +got):\n%s", diff)
	}
}

func TestUp_idempotent(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, orders) // already migrated by the template
	for range 2 {
		if err := migrate.Up(t.Context(), pool, orders); err != nil {
			t.Fatalf("Up() on a migrated database = %v", err)
		}
	}
	if diff := cmp.Diff([]int64{0, 1, 2}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("versions mismatch (-want +got):\n%s", diff)
	}
}

func TestUp_newMigration(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, orders)
	more := migrate.Set{Schema: "orders", FS: fstest.MapFS{
		"0003_note.sql": {Data: []byte("-- +goose Up\nALTER TABLE orders.orders ADD COLUMN note text;\n" +
			"-- +goose Down\nALTER TABLE orders.orders DROP COLUMN note;\n")},
	}}
	for name, f := range orders.FS.(fstest.MapFS) {
		more.FS.(fstest.MapFS)[name] = f
	}
	if err := migrate.Up(t.Context(), pool, more); err != nil {
		t.Fatalf("Up() = %v", err)
	}
	if diff := cmp.Diff([]int64{0, 1, 2, 3}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("versions mismatch (-want +got):\n%s", diff)
	}
}

func TestUp_concurrent(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDBURL(t)
	// Separate pools stand for replicas starting together.
	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		pool, err := pgxpool.New(t.Context(), url)
		if err != nil {
			t.Fatalf("pool %d: %v", i, err)
		}
		defer pool.Close()
		wg.Go(func() { errs[i] = migrate.Up(t.Context(), pool, orders, users) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Up() in replica %d = %v", i, err)
		}
	}
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	defer pool.Close()
	if diff := cmp.Diff([]int64{0, 1, 2}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("orders versions mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{0, 1}, versions(t, pool, "users")); diff != "" {
		t.Errorf("users versions mismatch (-want +got):\n%s", diff)
	}
}

func TestUp_schemaNeedsAdministrator(t *testing.T) {
	t.Parallel()
	adminURL := pgtest.NewDBURL(t)
	admin, err := pgxpool.New(t.Context(), adminURL)
	if err != nil {
		t.Fatalf("admin pool: %v", err)
	}
	t.Cleanup(admin.Close)
	// Roles belong to the whole cluster, which other tests share: a unique name, dropped after.
	role := "svc_" + strings.ToLower(rand.Text()[:10])
	if _, err := admin.Exec(t.Context(), "CREATE ROLE "+role+" LOGIN PASSWORD 'pw'"); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), "DROP ROLE "+role); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	u, err := url.Parse(adminURL)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	u.User = url.UserPassword(role, "pw")
	pool, err := pgxpool.New(t.Context(), u.String())
	if err != nil {
		t.Fatalf("service pool: %v", err)
	}
	defer pool.Close()

	err = migrate.Up(t.Context(), pool, orders)
	if err == nil || !strings.Contains(err.Error(), "administrator must run CREATE SCHEMA orders AUTHORIZATION") {
		t.Fatalf("Up() as a role without CREATE = %v, want an error asking an administrator to create the schema", err)
	}

	// With the schema created for it, as deploy does, the same role migrates.
	if _, err := admin.Exec(t.Context(), "CREATE SCHEMA orders AUTHORIZATION "+role); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	if err := migrate.Up(t.Context(), pool, orders); err != nil {
		t.Fatalf("Up() into a schema the role owns = %v", err)
	}
	pool.Close() // DROP ROLE waits for no session, but the role's objects must go first
	if _, err := admin.Exec(t.Context(), "DROP SCHEMA orders CASCADE"); err != nil {
		t.Fatalf("drop schema: %v", err)
	}
}

func TestUp_badSet(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	tests := []struct {
		name string
		set  migrate.Set
	}{
		{"quoted_schema", migrate.Set{Schema: `Orders"; DROP`, FS: orders.FS}},
		{"empty_schema", migrate.Set{Schema: "", FS: orders.FS}},
		{"no_files", migrate.Set{Schema: "orders"}},
		{"bad_sql", migrate.Set{Schema: "broken", FS: fstest.MapFS{
			"0001_init.sql": {Data: []byte("-- +goose Up\nCREATE TABLE broken.t (;\n")},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := migrate.Up(t.Context(), pool, tt.set); err == nil {
				t.Errorf("Up(%+v) = nil, want an error", tt.set.Schema)
			}
		})
	}
}

func TestUp_canceled(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := migrate.Up(ctx, pool, orders); !errors.Is(err, context.Canceled) {
		t.Errorf("Up(canceled) = %v, want context.Canceled", err)
	}
}

func TestLockID(t *testing.T) {
	t.Parallel()
	if migrate.LockID("stock") == migrate.LockID("portfolio") {
		t.Error("LockID(stock) == LockID(portfolio), want keys that differ per schema")
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx := t.Context()
	// Before any Up: nothing applied, the version table absent, and Status creates nothing.
	got, err := migrate.Status(ctx, pool, orders)
	if err != nil {
		t.Fatalf("Status() before Up = %v", err)
	}
	want := migrate.Version{Schema: "orders", Latest: 2, Pending: []int64{1, 2}}
	if diff := cmp.Diff(want, got); diff != "" || got.Current() {
		t.Errorf("Status() before Up mismatch (-want +got):\n%s", diff)
	}
	var schemas int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = 'orders'").Scan(&schemas); err != nil || schemas != 0 {
		t.Errorf("Status() created schema orders (count %d, err %v): it must only read", schemas, err)
	}

	// The binary's first migration only: one pending in the full set.
	first := migrate.Set{Schema: "orders", FS: fstest.MapFS{"0001_init.sql": orders.FS.(fstest.MapFS)["0001_init.sql"]}}
	if err := migrate.Up(ctx, pool, first); err != nil {
		t.Fatalf("Up(first) = %v", err)
	}
	got, err = migrate.Status(ctx, pool, orders)
	if err != nil {
		t.Fatalf("Status() = %v", err)
	}
	want = migrate.Version{Schema: "orders", Applied: 1, Latest: 2, Pending: []int64{2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() after first mismatch (-want +got):\n%s", diff)
	}

	// All applied: current. Then an older binary (first only) sees an unknown version.
	if err := migrate.Up(ctx, pool, orders); err != nil {
		t.Fatalf("Up() = %v", err)
	}
	if got, err = migrate.Status(ctx, pool, orders); err != nil || !got.Current() || got.Applied != 2 {
		t.Errorf("Status() after Up = %+v, %v; want current at 2", got, err)
	}
	got, err = migrate.Status(ctx, pool, first)
	want = migrate.Version{Schema: "orders", Applied: 2, Latest: 1, Unknown: []int64{2}}
	if diff := cmp.Diff(want, got); err != nil || diff != "" {
		t.Errorf("Status(older binary) = %v, mismatch (-want +got):\n%s", err, diff)
	}
}

// TestUp_steps: migrations given as code (outbox.Migration) run in version order among the
// files, each in a transaction, and count in Status.
func TestUp_steps(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	ctx := t.Context()
	withStep := orders
	withStep.Steps = []migrate.Step{{Version: 3,
		Up:   "ALTER TABLE orders.orders ADD COLUMN note text; UPDATE orders.orders SET note = 'step';",
		Down: "ALTER TABLE orders.orders DROP COLUMN note;"}}
	if err := migrate.Up(ctx, pool, withStep); err != nil {
		t.Fatalf("Up() = %v", err)
	}
	var note string
	if err := pool.QueryRow(ctx, "SELECT note FROM orders.orders WHERE id = 1").Scan(&note); err != nil || note != "step" {
		t.Fatalf("note = %q, %v; want the step's update, after the files' insert", note, err)
	}
	if diff := cmp.Diff([]int64{0, 1, 2, 3}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("versions mismatch (-want +got):\n%s", diff)
	}
	if got, err := migrate.Status(ctx, pool, withStep); err != nil || !got.Current() || got.Latest != 3 {
		t.Errorf("Status() = %+v, %v; want current at 3", got, err)
	}

	// A failing step rolls back whole: its first statement's change is gone, its version unrecorded.
	bad := withStep
	bad.Steps = append(bad.Steps, migrate.Step{Version: 4,
		Up: "ALTER TABLE orders.orders ADD COLUMN half text; SELECT * FROM orders.missing;"})
	if err := migrate.Up(ctx, pool, bad); err == nil {
		t.Fatal("Up() with a failing step succeeded")
	}
	var half bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
		WHERE table_schema = 'orders' AND column_name = 'half')`).Scan(&half); err != nil || half {
		t.Errorf("column half exists = %v (%v): the failed step was not rolled back", half, err)
	}
	if diff := cmp.Diff([]int64{0, 1, 2, 3}, versions(t, pool, "orders")); diff != "" {
		t.Errorf("versions after the failed step mismatch (-want +got):\n%s", diff)
	}

	// A step may not reuse a file's version.
	clash := orders
	clash.Steps = []migrate.Step{{Version: 2, Up: "SELECT 1"}}
	if err := migrate.Up(ctx, pgtest.NewDB(t), clash); err == nil {
		t.Error("Up() with a step reusing version 2 of a file succeeded")
	}
}
