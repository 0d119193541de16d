// Package pgtest gives each test its own PostgreSQL database, migrated and empty.
//
// Databases live on one cluster per test binary: the server named by PGFLEET_TEST_DATABASE_URL
// (a superuser URL; `make test` starts one server for all packages), or else a throwaway
// cluster that pgtest starts from the system's PostgreSQL binaries on first use. A package that
// uses pgtest stops that cluster by running its tests through Main:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Each set of migrations is applied once, to a template database named by a hash of the files;
// every test then gets a clone of it, dropped when the test ends.
//
// NewCluster gives a test a private cluster it may stop and start; NewReplicatedCluster a
// private primary with a streaming hot standby of its own (replica reads, replay lag, failover).
package pgtest

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/migrate"
)

// EnvURL names the environment variable holding a superuser URL of a running server to use
// instead of starting a cluster.
const EnvURL = "PGFLEET_TEST_DATABASE_URL"

var (
	inMain     atomic.Bool // set by Main: without it a started cluster would outlive the tests
	sharedOnce sync.Once
	shared     *Cluster
	sharedErr  error
)

// Main runs the tests, stops the cluster this binary started (if it did), and exits with the
// tests' exit code. Call it from TestMain.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain with its own clean-up to do after the tests: it runs them,
// stops the cluster and returns the exit code instead of exiting.
func Run(m *testing.M) int {
	inMain.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.close(); err != nil {
			os.Stderr.WriteString("pgtest: " + err.Error() + "\n")
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// sharedCluster returns the binary's cluster, starting it on first use.
func sharedCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if !inMain.Load() {
		tb.Fatal("pgtest: the package's TestMain must call pgtest.Main(m), which stops the test cluster")
	}
	sharedOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			shared, sharedErr = connectCluster(context.Background(), u)
			return
		}
		shared, sharedErr = startCluster(context.Background(), false)
	})
	if sharedErr != nil {
		tb.Fatalf("pgtest: %v", sharedErr)
	}
	return shared
}

// NewDB returns a pool on a new database cloned from a template that holds the migrations in
// sets. The pool is closed and the database dropped when tb finishes.
func NewDB(tb testing.TB, sets ...migrate.Set) *pgxpool.Pool {
	tb.Helper()
	return sharedCluster(tb).NewDB(tb, sets...)
}

// NewDBURL is NewDB for code that builds its own pool (pgpool.New, a server under test): it
// returns the new database's superuser URL. The database is dropped when tb finishes, ending any
// sessions still open on it.
func NewDBURL(tb testing.TB, sets ...migrate.Set) string {
	tb.Helper()
	return sharedCluster(tb).NewDBURL(tb, sets...)
}

// Connect opens one connection to url, closed when tb finishes: for tests that look at a
// server directly (a standby, a promoted one) rather than through a pool.
func Connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
