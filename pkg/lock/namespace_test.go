package lock_test

import (
	"errors"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestLocker_namespaces: two services on one database (advisory locks are per database, not
// per schema or role) never take each other's keys, even for the same resource name, and
// each one's Status lists its own locks only; within a namespace, locks still conflict.
func TestLocker_namespaces(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	stock := lock.New(lock.Config{Wait: 200 * time.Millisecond, Namespace: "stock"}, nil)
	portfolio := lock.New(lock.Config{Wait: 200 * time.Millisecond, Namespace: "portfolio"}, nil)
	portfolio2 := lock.New(lock.Config{Wait: 200 * time.Millisecond, Namespace: "portfolio"}, nil) // another replica

	held := begin(t, pool)
	for _, name := range []string{"portfolio:42", "stock:AAPL"} {
		if err := stock.Acquire(t.Context(), held, name, lock.Exclusive); err != nil {
			t.Fatalf("stock Acquire %s: %v", name, err)
		}
	}
	// The portfolio service locks the same names at once: other keys.
	other := begin(t, pool)
	for _, name := range []string{"portfolio:42", "stock:AAPL", "portfolio:42/position:AAPL"} {
		if err := portfolio.Acquire(t.Context(), other, name, lock.Write); err != nil {
			t.Errorf("portfolio Acquire %s while the stock service holds it: %v, want granted", name, err)
		}
	}
	// Its session-level locks too.
	conn, err := pool.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if release, err := portfolio.Hold(t.Context(), conn.Conn(), "portfolio:43", lock.Exclusive); err != nil {
		t.Errorf("portfolio Hold: %v, want granted", err)
	} else {
		release()
	}

	// Another replica of the portfolio service waits for the first.
	if err := portfolio2.Acquire(t.Context(), begin(t, pool), "portfolio:42", lock.Write); !errors.Is(err, lock.ErrTimeout) {
		t.Errorf("second portfolio replica's Acquire = %v, want ErrTimeout", err)
	}

	// Each Status shows its own namespace's locks.
	for name, tt := range map[string]struct {
		l    *lock.Locker
		want int
	}{"stock": {stock, 2}, "portfolio": {portfolio, 3}} {
		infos, err := tt.l.Status(t.Context(), pool)
		if err != nil {
			t.Fatalf("%s Status: %v", name, err)
		}
		if len(infos) != tt.want {
			t.Errorf("%s Status = %+v, want its %d locks", name, infos, tt.want)
		}
	}
}
