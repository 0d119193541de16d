package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// begin starts a transaction on its own connection, rolled back when the test ends
// unless committed first.
func begin(t *testing.T, pool *pgxpool.Pool) pgx.Tx {
	t.Helper()
	tx, err := pool.Begin(t.Context())
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return tx
}

func backendPID(t *testing.T, tx pgx.Tx) int32 {
	t.Helper()
	var pid int32
	if err := tx.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatalf("backend pid: %v", err)
	}
	return pid
}

// acquireAsync runs Acquire in a goroutine; the error arrives on the returned channel.
func acquireAsync(t *testing.T, l *lock.Locker, tx pgx.Tx, name string, mode lock.Mode) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Acquire(t.Context(), tx, name, mode) }()
	return done
}

// waitForWaiter polls Status until some session waits for a lock of this package.
func waitForWaiter(t *testing.T, l *lock.Locker, pool *pgxpool.Pool) []lock.Info {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		infos, err := l.Status(ctx, pool)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		for _, in := range infos {
			if !in.Granted {
				return infos
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no lock waiter appeared; status %+v", infos)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
