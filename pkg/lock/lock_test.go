package lock_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

func TestConfig_defaults(t *testing.T) {
	t.Parallel()
	var got lock.Config
	if err := envconfig.Process(t.Context(), &envconfig.Config{
		Target: &got, Lookuper: envconfig.MapLookuper(nil),
	}); err != nil {
		t.Fatalf("process: %v", err)
	}
	if diff := cmp.Diff(lock.Config{Wait: 5 * time.Second}, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestMode_String(t *testing.T) {
	t.Parallel()
	for m, want := range map[lock.Mode]string{lock.Read: "read", lock.Write: "write", lock.Exclusive: "exclusive", 7: "Mode(7)"} {
		if got := m.String(); got != want {
			t.Errorf("Mode(%d).String() = %q, want %q", int(m), got, want)
		}
	}
}

// TestLocker_Acquire_compatible takes two locks that must not block each other, each in
// its own transaction. A short Wait turns any blocking into a failure.
func TestLocker_Acquire_compatible(t *testing.T) {
	t.Parallel()
	type held struct {
		name string
		mode lock.Mode
	}
	tests := []struct {
		name          string
		first, second held
	}{
		{"read_read", held{"stock:AAPL", lock.Read}, held{"stock:AAPL", lock.Read}},
		{"write_parent_read_child", held{"portfolio:42", lock.Write}, held{"portfolio:42/position:AAPL", lock.Read}},
		{"write_parent_write_child", held{"portfolio:42", lock.Write}, held{"portfolio:42/position:AAPL", lock.Write}},
		{"read_child_write_parent", held{"portfolio:42/position:AAPL", lock.Read}, held{"portfolio:42", lock.Write}},
		{"exclusive_siblings", held{"portfolio:42/position:AAPL", lock.Exclusive}, held{"portfolio:42/position:MSFT", lock.Exclusive}},
		{"exclusive_string_prefix_not_parent", held{"portfolio:4", lock.Exclusive}, held{"portfolio:42", lock.Exclusive}},
		{"different_resources", held{"stock:AAPL", lock.Write}, held{"stock:MSFT", lock.Write}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := lock.New(lock.Config{Wait: 200 * time.Millisecond}, nil)
			tx1, tx2 := begin(t, pool), begin(t, pool)
			if err := l.Acquire(t.Context(), tx1, tt.first.name, tt.first.mode); err != nil {
				t.Fatalf("first Acquire(%q, %v): %v", tt.first.name, tt.first.mode, err)
			}
			if err := l.Acquire(t.Context(), tx2, tt.second.name, tt.second.mode); err != nil {
				t.Fatalf("second Acquire(%q, %v) while the first is held: %v", tt.second.name, tt.second.mode, err)
			}
			infos, err := l.Status(t.Context(), pool)
			if err != nil {
				t.Fatalf("Status: %v", err)
			}
			for _, in := range infos {
				if !in.Granted {
					t.Errorf("Status shows a waiter: %+v", in)
				}
			}
		})
	}
}

// TestLocker_Acquire_conflict holds one lock and checks that a conflicting one, in
// another transaction, waits in PostgreSQL and is granted only after the holder commits.
func TestLocker_Acquire_conflict(t *testing.T) {
	t.Parallel()
	type held struct {
		name string
		mode lock.Mode
	}
	tests := []struct {
		name             string
		holder, waiter   held
		wantWaiterIntent bool
	}{
		{name: "read_then_write", holder: held{"stock:AAPL", lock.Read}, waiter: held{"stock:AAPL", lock.Write}},
		{name: "write_then_read", holder: held{"stock:AAPL", lock.Write}, waiter: held{"stock:AAPL", lock.Read}},
		{name: "write_then_write", holder: held{"stock:AAPL", lock.Write}, waiter: held{"stock:AAPL", lock.Write}},
		{name: "exclusive_then_read", holder: held{"portfolio:42", lock.Exclusive}, waiter: held{"portfolio:42", lock.Read}, wantWaiterIntent: true},
		{
			name:             "exclusive_parent_then_child",
			holder:           held{"portfolio:42", lock.Exclusive},
			waiter:           held{"portfolio:42/position:AAPL", lock.Read},
			wantWaiterIntent: true,
		},
		{
			name:             "exclusive_grandparent_then_grandchild",
			holder:           held{"portfolio:42", lock.Exclusive},
			waiter:           held{"portfolio:42/position:AAPL/lot:7", lock.Write},
			wantWaiterIntent: true,
		},
		{
			name:   "child_then_exclusive_parent",
			holder: held{"portfolio:42/position:AAPL", lock.Read},
			waiter: held{"portfolio:42", lock.Exclusive},
		},
		{
			name:   "write_parent_then_exclusive_parent",
			holder: held{"portfolio:42", lock.Write},
			waiter: held{"portfolio:42", lock.Exclusive},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := lock.New(lock.Config{Wait: 30 * time.Second}, nil)
			holder, waiter := begin(t, pool), begin(t, pool)
			if err := l.Acquire(t.Context(), holder, tt.holder.name, tt.holder.mode); err != nil {
				t.Fatalf("holder Acquire: %v", err)
			}
			events := make(chan string, 2)
			done := make(chan error, 1)
			go func() {
				err := l.Acquire(t.Context(), waiter, tt.waiter.name, tt.waiter.mode)
				events <- "waiter acquired"
				done <- err
			}()

			infos := waitForWaiter(t, l, pool)
			var waiting []lock.Info
			for _, in := range infos {
				if !in.Granted {
					waiting = append(waiting, in)
				}
			}
			if len(waiting) != 1 || waiting[0].Intent != tt.wantWaiterIntent || waiting[0].WaitStart.IsZero() {
				t.Errorf("waiters %+v: want one, intent %v, with WaitStart", waiting, tt.wantWaiterIntent)
			}

			events <- "holder commits"
			if err := holder.Commit(t.Context()); err != nil {
				t.Fatalf("holder commit: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("waiter Acquire: %v", err)
			}
			got := []string{<-events, <-events}
			if diff := cmp.Diff([]string{"holder commits", "waiter acquired"}, got); diff != "" {
				t.Errorf("order mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLocker_Acquire_timeout(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := lock.New(lock.Config{Wait: 200 * time.Millisecond}, nil)
	holder, waiter := begin(t, pool), begin(t, pool)
	if err := l.Acquire(t.Context(), holder, "stock:AAPL", lock.Write); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	err := l.Acquire(t.Context(), waiter, "stock:AAPL", lock.Write)
	if !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("Acquire = %v, want ErrTimeout", err)
	}
	for _, want := range []string{`"stock:AAPL"`, "200ms", "write"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "55P03" {
		t.Errorf("Acquire = %v, want it to wrap SQLSTATE 55P03", err)
	}
	if got := retry.Classify(err); got != retry.Retryable {
		t.Errorf("Classify(%v) = %v, want retryable", err, got)
	}
}

// TestLocker_Acquire_restoresLockTimeout checks that the bound applies to the lock wait
// only: the transaction's own lock_timeout is back once the lock is held.
func TestLocker_Acquire_restoresLockTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, setup, want string
	}{
		{name: "default", want: "0"},
		{name: "set_local", setup: "SET LOCAL lock_timeout = '7s'", want: "7s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewDB(t)
			l := lock.New(lock.Config{Wait: 250 * time.Millisecond}, nil)
			tx := begin(t, pool)
			if tt.setup != "" {
				if _, err := tx.Exec(t.Context(), tt.setup); err != nil {
					t.Fatalf("%s: %v", tt.setup, err)
				}
			}
			if err := l.AcquireAll(t.Context(), tx, []string{"stock:A", "stock:B"}, lock.Write); err != nil {
				t.Fatalf("AcquireAll: %v", err)
			}
			var got string
			if err := tx.QueryRow(t.Context(), "SHOW lock_timeout").Scan(&got); err != nil {
				t.Fatalf("show lock_timeout: %v", err)
			}
			if got != tt.want {
				t.Errorf("lock_timeout after Acquire = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLocker_Acquire_invalid(t *testing.T) {
	t.Parallel()
	l := lock.New(lock.Config{Wait: time.Second}, nil)
	tests := []struct {
		name     string
		resource string
		mode     lock.Mode
	}{
		{"empty", "", lock.Read},
		{"empty_segment", "portfolio:42//position:AAPL", lock.Read},
		{"leading_slash", "/portfolio:42", lock.Write},
		{"trailing_slash", "portfolio:42/", lock.Exclusive},
		{"too_long", strings.Repeat("x", lock.MaxNameLen+1), lock.Read},
		{"bad_mode", "stock:AAPL", lock.Mode(9)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Rejected before the transaction is touched, so none is needed.
			if err := l.Acquire(t.Context(), nil, tt.resource, tt.mode); err == nil {
				t.Errorf("Acquire(%q, %v) = nil, want an error", tt.resource, tt.mode)
			}
		})
	}
}

// TestLocker_Acquire_deadlockRetried makes two transactions take two locks in opposite
// orders. PostgreSQL detects the deadlock and aborts one; retry.RunTx reruns it, and both
// transactions' rows land.
func TestLocker_Acquire_deadlockRetried(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	if _, err := pool.Exec(t.Context(), "CREATE TABLE effects (who text PRIMARY KEY)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	l := lock.New(lock.Config{Wait: 30 * time.Second}, nil)
	r := retry.New(retry.Config{MaxAttempts: 5, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond,
		Breaker: breaker.Config{MinRequests: new(uint32(100)), FailureRatio: 0.5, OpenTimeout: new(time.Second)}}, nil)
	b := pgtest.NewBarrier(2)
	var deadlocks = make(chan error, 2)
	errs := make(chan error, 2)
	for i, order := range [][2]string{{"stock:X", "stock:Y"}, {"stock:Y", "stock:X"}} {
		go func() {
			errs <- r.RunTx(t.Context(), pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
				if err := l.Acquire(t.Context(), tx, order[0], lock.Write); err != nil {
					return err
				}
				if err := b.Arrive(t.Context(), i); err != nil {
					return err
				}
				if err := l.Acquire(t.Context(), tx, order[1], lock.Write); err != nil {
					deadlocks <- err
					return err
				}
				_, err := tx.Exec(t.Context(), "INSERT INTO effects VALUES ($1)", fmt.Sprint(i))
				return err
			})
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("RunTx: %v", err)
		}
	}
	rows, _ := pool.Query(t.Context(), "SELECT who FROM effects ORDER BY who")
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("read effects: %v", err)
	}
	if diff := cmp.Diff([]string{"0", "1"}, got); diff != "" {
		t.Errorf("effects mismatch (-want +got):\n%s", diff)
	}
	if st := r.Stats(); st.Deadlocks != 1 || st.Retries != 1 {
		t.Errorf("stats %+v: want one deadlock, retried once", st)
	}
	close(deadlocks)
	for err := range deadlocks {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "40P01" || !strings.Contains(err.Error(), "stock:") {
			t.Errorf("lock error %v: want a deadlock naming the resource", err)
		}
	}
}

// TestLocker_AcquireAll_noDeadlock has several transactions write-lock the same names,
// each listing them in its own random order. Taken as listed they would deadlock;
// AcquireAll's canonical order must not.
func TestLocker_AcquireAll_noDeadlock(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := lock.New(lock.Config{Wait: 30 * time.Second}, nil)
	names := []string{"stock:C", "portfolio:1/position:B", "stock:A", "portfolio:1", "stock:B"}
	const workers, rounds = 3, 15
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range rounds {
				own := append([]string(nil), names...)
				rand.Shuffle(len(own), func(i, j int) { own[i], own[j] = own[j], own[i] })
				errs <- func() error {
					tx, err := pool.Begin(t.Context())
					if err != nil {
						return err
					}
					defer func() { _ = tx.Rollback(context.Background()) }()
					if err := l.AcquireAll(t.Context(), tx, own, lock.Write); err != nil {
						return err
					}
					return tx.Commit(t.Context())
				}()
			}
		}()
	}
	for range workers * rounds {
		if err := <-errs; err != nil {
			t.Fatalf("AcquireAll: %v", err)
		}
	}
}
