package retry_test

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// exec runs sql, which may hold several statements, or fails the test.
func exec(t *testing.T, pool *pgxpool.Pool, sql string) {
	t.Helper()
	if _, err := pool.Exec(t.Context(), sql); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

// begin starts a transaction that is rolled back when the test ends, unless committed.
func begin(t *testing.T, pool *pgxpool.Pool, opts pgx.TxOptions) pgx.Tx {
	t.Helper()
	tx, err := pool.BeginTx(t.Context(), opts)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

// raise returns SQL that fails with a real server error of the given SQLSTATE.
func raise(code string) string {
	return "DO $$ BEGIN RAISE EXCEPTION 'test error' USING ERRCODE = '" + code + "'; END $$"
}

// closedPortURL returns a URL on which nothing listens, so connecting is refused.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("close listener: %v", err)
	}
	return "postgres://nobody@" + addr + "/none?connect_timeout=5&sslmode=disable"
}
