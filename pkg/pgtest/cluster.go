package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

// Cluster is a PostgreSQL server that tests create databases on. The package's own NewDB and
// NewDBURL use one shared by the test binary; NewCluster gives a test a private one it may stop
// and start.
type Cluster struct {
	base     url.URL       // superuser URL; its path is swapped for each database's name
	strategy string        // CREATE DATABASE option, or ""
	admin    *pgxpool.Pool // on base's database: CREATE and DROP DATABASE, template locks
	srv      *server       // nil when the server is PGFLEET_TEST_DATABASE_URL's, not ours

	cloneMu sync.Mutex // PostgreSQL refuses two CREATE DATABASE ... TEMPLATE of one template at once

	tmplMu sync.Mutex
	tmpls  map[string]*template // by hash of the migration sets

	// gone is set when the server was stopped for good (a replicated pair's failover): the
	// databases' drops are then skipped, the files go with the cluster.
	gone atomic.Bool
}

// NewCluster starts a private throwaway cluster for tests that stop and start the server. It is
// stopped and its files removed when tb finishes.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := startCluster(tb.Context(), false)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if err := c.close(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return c
}

// startCluster runs initdb and postgres in a new temporary directory, with settings after the
// package's own.
func startCluster(ctx context.Context, replication bool, settings ...pgserver.Setting) (*Cluster, error) {
	srv, err := newServer(ctx, replication, settings)
	if err != nil {
		return nil, err
	}
	c, err := connectCluster(ctx, srv.URL("postgres"))
	if err != nil {
		return nil, errors.Join(err, srv.remove())
	}
	c.srv = srv
	return c, nil
}

// connectCluster opens the admin pool on a running server, given a superuser URL.
func connectCluster(ctx context.Context, rawURL string) (*Cluster, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s must be a postgres:// URL of a superuser (e.g. postgres://postgres@127.0.0.1:5432/postgres)", EnvURL)
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse admin URL: %w", err)
	}
	cfg.MaxConns = 8
	// Private clusters restart under the admin pool; a ping per use (few, slow statements)
	// keeps a dead connection from failing the next CREATE or DROP DATABASE.
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return true }
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("admin pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := admin.Ping(pingCtx); err != nil {
		admin.Close()
		return nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	c := &Cluster{base: *u, admin: admin, tmpls: make(map[string]*template)}
	var version int
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		admin.Close()
		return nil, fmt.Errorf("read server version: %w", err)
	}
	if version >= 150000 {
		// PostgreSQL 15's default, WAL_LOG, pushes the template through the buffer cache and
		// the WAL; copying the files took 80-170 ms a clone here against 200-300 ms.
		c.strategy = " STRATEGY FILE_COPY"
	}
	return c, nil
}

// close ends the admin pool and, for a cluster pgtest started, stops the server and removes its
// files.
func (c *Cluster) close() error {
	c.admin.Close()
	if c.srv == nil {
		return nil
	}
	return errors.Join(c.srv.Stop(), c.srv.remove())
}

// URL returns a superuser URL of database db on the cluster.
func (c *Cluster) URL(db string) string {
	u := c.base
	u.Path = "/" + db
	u.RawPath = ""
	return u.String()
}

// Stop shuts the server down (fast shutdown: sessions are ended). Only for clusters from
// NewCluster.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	if c.srv == nil {
		tb.Fatal("pgtest: Stop on a cluster pgtest did not start; use NewCluster")
	}
	if err := c.srv.Stop(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Start starts a stopped server again on the same port and data directory, so pools opened
// before Stop reconnect to it. Only for clusters from NewCluster.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	if c.srv == nil {
		tb.Fatal("pgtest: Start on a cluster pgtest did not start; use NewCluster")
	}
	// Not tb.Context(): a Cleanup may restart the server, and by then that context is done.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.srv.Start(ctx); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// StopUntilCleanup stops the server for the rest of tb (an outage) and starts it again when
// tb ends, so that services under test drain and their databases drop cleanly. Only for
// clusters from NewCluster.
func (c *Cluster) StopUntilCleanup(tb testing.TB) {
	tb.Helper()
	c.Stop(tb)
	tb.Cleanup(func() { c.Start(tb) })
}

// NewDB returns a pool on a new database of c cloned from a template that holds the migrations
// in sets. The pool is closed and the database dropped when tb finishes.
func (c *Cluster) NewDB(tb testing.TB, sets ...migrate.Set) *pgxpool.Pool {
	tb.Helper()
	name := c.newDatabase(tb, sets)
	cfg, err := pgxpool.ParseConfig(c.URL(name))
	if err != nil {
		tb.Fatalf("pgtest: parse URL of %s: %v", name, err)
	}
	// Above the default of 4, so a test that holds a few transactions open (locks, conflicts)
	// does not starve its own pool.
	cfg.MaxConns = 10
	pool, err := pgxpool.NewWithConfig(tb.Context(), cfg)
	if err != nil {
		tb.Fatalf("pgtest: connect to %s: %v", name, err)
	}
	tb.Cleanup(pool.Close) // runs before the drop: cleanups run last-registered first
	return pool
}

// NewDBURL is NewDB returning the new database's URL instead of a pool. The database is dropped
// when tb finishes, ending any sessions still open on it.
func (c *Cluster) NewDBURL(tb testing.TB, sets ...migrate.Set) string {
	tb.Helper()
	return c.URL(c.newDatabase(tb, sets))
}

// newDatabase clones the template of sets into a new database, dropped when tb finishes.
func (c *Cluster) newDatabase(tb testing.TB, sets []migrate.Set) string {
	tb.Helper()
	tmpl, err := c.template(sets)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	name := "t_" + strings.ToLower(rand.Text()[:12])
	if err := c.clone(tb.Context(), tmpl, name); err != nil {
		tb.Fatalf("pgtest: clone %s: %v", tmpl, err)
	}
	tb.Cleanup(func() {
		if c.gone.Load() {
			return
		}
		// Not tb.Context(): it is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drop := "DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"
		if _, err := c.admin.Exec(ctx, drop); err != nil {
			tb.Errorf("pgtest: drop %s: %v", name, err)
		}
	})
	return name
}

// clone creates database name from template tmpl. Besides cloneMu within this binary, it retries
// while another session is on the template: another test binary cloning it, or the backend of
// the template's own build still exiting.
func (c *Cluster) clone(ctx context.Context, tmpl, name string) error {
	c.cloneMu.Lock()
	defer c.cloneMu.Unlock()
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{tmpl}.Sanitize() + c.strategy
	backoff := 5 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		_, err := c.admin.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != pgerrcode.ObjectInUse || time.Now().After(deadline) {
			return err
		}
		t := time.NewTimer(backoff + mrand.N(backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}
