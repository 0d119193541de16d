package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	// Each produce gets its own database: several hold two connections at once, and a
	// shared pool of four could starve.
	tests := []struct {
		name     string
		produce  func(t *testing.T, pool *pgxpool.Pool) error
		want     retry.Class
		wantCode string // "" when the error need not carry a SQLSTATE
	}{
		{
			name: "unique_violation",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				exec(t, pool, "CREATE TABLE u (id int PRIMARY KEY); INSERT INTO u VALUES (1)")
				_, err := pool.Exec(t.Context(), "INSERT INTO u VALUES (1)")
				return err
			},
			want:     retry.Permanent,
			wantCode: "23505",
		},
		{
			name: "syntax_error",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				_, err := pool.Exec(t.Context(), "SELEC 1")
				return err
			},
			want:     retry.Permanent,
			wantCode: "42601",
		},
		{
			name: "division_by_zero",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				_, err := pool.Exec(t.Context(), "SELECT 1/0")
				return err
			},
			want:     retry.Permanent,
			wantCode: "22012",
		},
		{
			name:     "serialization_failure",
			produce:  serializationFailure,
			want:     retry.Retryable,
			wantCode: "40001",
		},
		{
			name:     "deadlock",
			produce:  deadlock,
			want:     retry.Retryable,
			wantCode: "40P01",
		},
		{
			name: "lock_timeout",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				exec(t, pool, "CREATE TABLE l (id int PRIMARY KEY); INSERT INTO l VALUES (1)")
				holder := begin(t, pool, pgx.TxOptions{})
				if _, err := holder.Exec(t.Context(), "SELECT id FROM l WHERE id = 1 FOR UPDATE"); err != nil {
					t.Fatalf("lock row: %v", err)
				}
				waiter := begin(t, pool, pgx.TxOptions{})
				_, err := waiter.Exec(t.Context(), "SET LOCAL lock_timeout = '50ms'; SELECT id FROM l WHERE id = 1 FOR UPDATE")
				return err
			},
			want:     retry.Retryable,
			wantCode: "55P03",
		},
		{
			name: "terminated_backend",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				conn, err := pool.Acquire(t.Context())
				if err != nil {
					t.Fatalf("acquire: %v", err)
				}
				defer conn.Release()
				var pid int32
				if err := conn.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
					t.Fatalf("backend pid: %v", err)
				}
				terminate(t, pool, pid)
				_, err = conn.Exec(t.Context(), "SELECT 1")
				return err
			},
			want: retry.Retryable,
		},
		{
			name: "connection_refused",
			produce: func(t *testing.T, _ *pgxpool.Pool) error {
				conn, err := pgx.Connect(t.Context(), closedPortURL(t))
				if err == nil {
					_ = conn.Close(t.Context())
				}
				return err
			},
			want: retry.Retryable,
		},
		{
			name: "context_canceled",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				ctx, cancel := context.WithCancel(t.Context())
				cancel()
				_, err := pool.Exec(ctx, "SELECT 1")
				return err
			},
			want: retry.Permanent,
		},
		{
			name: "context_deadline_in_query",
			produce: func(t *testing.T, pool *pgxpool.Pool) error {
				ctx, cancel := context.WithTimeout(t.Context(), 0)
				defer cancel()
				_, err := pool.Exec(ctx, "SELECT pg_sleep(10)")
				return err
			},
			want: retry.Permanent,
		},
		{
			name:    "nil",
			produce: func(*testing.T, *pgxpool.Pool) error { return nil },
			want:    retry.Permanent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.produce(t, pgtest.NewDB(t))
			if tt.name != "nil" && err == nil {
				t.Fatal("produce returned no error")
			}
			wrapped := fmt.Errorf("store: %w", err)
			if got := retry.Classify(wrapped); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", err, got, tt.want)
			}
			if tt.wantCode == "" {
				return
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.wantCode {
				t.Errorf("error %v: want SQLSTATE %s", err, tt.wantCode)
			}
		})
	}
}

// terminate ends backend pid and waits until it has exited.
func terminate(t *testing.T, pool *pgxpool.Pool, pid int32) {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(t.Context(), "SELECT pg_terminate_backend($1, 10000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
	}
}

// serializationFailure makes a REPEATABLE READ transaction update a row that another
// transaction changed after its snapshot.
func serializationFailure(t *testing.T, pool *pgxpool.Pool) error {
	exec(t, pool, "CREATE TABLE s (id int PRIMARY KEY, v int); INSERT INTO s VALUES (1, 0)")
	tx := begin(t, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
	if _, err := tx.Exec(t.Context(), "SELECT v FROM s WHERE id = 1"); err != nil {
		t.Fatalf("take snapshot: %v", err)
	}
	exec(t, pool, "UPDATE s SET v = 1 WHERE id = 1")
	_, err := tx.Exec(t.Context(), "UPDATE s SET v = 2 WHERE id = 1")
	return err
}

// deadlock makes two transactions lock two rows in opposite orders; PostgreSQL aborts
// one of them.
func deadlock(t *testing.T, pool *pgxpool.Pool) error {
	exec(t, pool, "CREATE TABLE d (id int PRIMARY KEY); INSERT INTO d VALUES (1), (2)")
	b := pgtest.NewBarrier(2)
	errs := make(chan error, 2)
	for i, order := range [][2]int{{1, 2}, {2, 1}} {
		tx := begin(t, pool, pgx.TxOptions{})
		go func() {
			if _, err := tx.Exec(t.Context(), "UPDATE d SET id = id WHERE id = $1", order[0]); err != nil {
				errs <- fmt.Errorf("first update: %w", err)
				return
			}
			if err := b.Arrive(t.Context(), i); err != nil {
				errs <- err
				return
			}
			_, err := tx.Exec(t.Context(), "UPDATE d SET id = id WHERE id = $1", order[1])
			errs <- err
		}()
	}
	var failed []error
	for range 2 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) != 1 {
		t.Fatalf("want exactly one transaction to fail, got %v", failed)
	}
	return failed[0]
}

// TestUnavailable checks that retries exhausted against a database that cannot be reached
// are an outage, while retries exhausted on conflicts, and callers giving up, are not.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	cfg := retry.Config{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond,
		Breaker: breaker.Config{MinRequests: new(uint32(1000)), FailureRatio: 0.5, OpenTimeout: new(time.Second)}}
	tests := []struct {
		name    string
		produce func(t *testing.T) error
		want    bool
	}{
		{
			name: "exhausted_on_refused_connections",
			produce: func(t *testing.T) error {
				dead, err := pgxpool.New(t.Context(), closedPortURL(t))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(dead.Close)
				err = retry.New(cfg, nil).Do(t.Context(), func(ctx context.Context) error {
					_, err := dead.Exec(ctx, "SELECT 1")
					return err
				})
				if !errors.Is(err, retry.ErrExhausted) {
					t.Fatalf("Do on a closed port = %v, want ErrExhausted", err)
				}
				return err
			},
			want: true,
		},
		{
			name: "exhausted_on_serialization_failures",
			produce: func(t *testing.T) error {
				pool := pgtest.NewDB(t)
				err := retry.New(cfg, nil).RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
					_, err := tx.Exec(t.Context(), raise("40001"))
					return err
				})
				if !errors.Is(err, retry.ErrExhausted) {
					t.Fatalf("RunTx = %v, want ErrExhausted", err)
				}
				return err
			},
			want: false,
		},
		{
			name:    "circuit_open",
			produce: func(*testing.T) error { return fmt.Errorf("get stock: %w", retry.ErrCircuitOpen) },
			want:    true,
		},
		{
			name:    "admin_shutdown",
			produce: func(*testing.T) error { return &pgconn.PgError{Code: "57P01"} },
			want:    true,
		},
		{
			name:    "unique_violation",
			produce: func(*testing.T) error { return &pgconn.PgError{Code: "23505"} },
			want:    false,
		},
		{
			name: "caller_canceled_while_retrying",
			produce: func(*testing.T) error {
				return fmt.Errorf("%w after 2 attempts: %w", context.Canceled, &pgconn.PgError{Code: "57P01"})
			},
			want: false,
		},
		{
			name:    "nil",
			produce: func(*testing.T) error { return nil },
			want:    false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.produce(t)
			if got := retry.Unavailable(err); got != tt.want {
				t.Errorf("Unavailable(%v) = %v, want %v", err, got, tt.want)
			}
		})
	}
}
