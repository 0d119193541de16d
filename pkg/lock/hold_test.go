package lock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// With Hold, SERIALIZABLE transactions queued on one lock each see the previous one's
// commit, so none fails to serialize; taken inside the transaction, the lock would come
// after the waiter's snapshot and every waiter would fail.
func TestLocker_Hold_serializable(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	if _, err := pool.Exec(t.Context(), `CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0)`); err != nil {
		t.Fatal(err)
	}
	l := lock.New(lock.Config{Wait: 10 * time.Second}, nil)
	const workers = 8
	errs := make(chan error, workers)
	barrier := pgtest.NewBarrier(workers)
	for i := range workers {
		go func() {
			errs <- func() error {
				conn, err := pool.Acquire(t.Context())
				if err != nil {
					return err
				}
				defer conn.Release()
				if err := barrier.Arrive(t.Context(), i); err != nil {
					return err
				}
				release, err := l.Hold(t.Context(), conn.Conn(), "counter", lock.Exclusive)
				if err != nil {
					return err
				}
				defer release()
				return pgx.BeginTxFunc(t.Context(), conn, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
					var n int
					if err := tx.QueryRow(t.Context(), `SELECT n FROM counter`).Scan(&n); err != nil {
						return err
					}
					time.Sleep(5 * time.Millisecond) // widen the window a missing lock would leave
					_, err := tx.Exec(t.Context(), `UPDATE counter SET n = $1`, n+1)
					return err
				})
			}()
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Errorf("worker: %v", err) // a 40001 here means the snapshot predates the lock
		}
	}
	var n int
	if err := pool.QueryRow(t.Context(), `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != workers {
		t.Errorf("counter = %d, want %d", n, workers)
	}
	var held int
	if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
		WHERE l.locktype = 'advisory' AND d.datname = current_database()`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != 0 {
		t.Errorf("%d advisory locks still held after release, want 0", held)
	}
}

func TestLocker_Hold_timeout(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := lock.New(lock.Config{Wait: 200 * time.Millisecond}, nil)
	holder, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	release, err := l.Hold(t.Context(), holder.Conn(), "portfolio:7", lock.Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	waiter, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.Release()
	_, err = l.Hold(t.Context(), waiter.Conn(), "portfolio:7/position:AAPL", lock.Write)
	if !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Hold of a child of an exclusively held lock = %v, want ErrTimeout", err)
	}
	// The failed Hold left nothing behind and restored lock_timeout.
	var held int
	var timeout string
	if err := waiter.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if err := waiter.QueryRow(context.Background(), `SHOW lock_timeout`).Scan(&timeout); err != nil {
		t.Fatal(err)
	}
	if held != 0 || timeout != "0" {
		t.Errorf("after a timed-out Hold: %d locks held, lock_timeout %q; want 0 and \"0\"", held, timeout)
	}
}
