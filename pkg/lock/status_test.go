package lock_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestLocker_Status(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	l := lock.New(lock.Config{Wait: 30 * time.Second}, nil)
	holder, waiter, reader := begin(t, pool), begin(t, pool), begin(t, pool)
	holderPID, waiterPID, readerPID := backendPID(t, holder), backendPID(t, waiter), backendPID(t, reader)
	if err := l.Acquire(t.Context(), holder, "stock:MSFT", lock.Write); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	if err := l.Acquire(t.Context(), reader, "portfolio:7/position:MSFT", lock.Read); err != nil {
		t.Fatalf("reader Acquire: %v", err)
	}
	done := acquireAsync(t, l, waiter, "stock:MSFT", lock.Write)

	got := waitForWaiter(t, l, pool)
	want := []lock.Info{
		{Resource: "stock:MSFT", Mode: lock.Write, Granted: true, PID: holderPID},
		{Resource: "portfolio:7/position:MSFT", Mode: lock.Read, Granted: true, PID: readerPID},
		{Resource: "stock:MSFT", Mode: lock.Write, Granted: false, PID: waiterPID},
	}
	byGrantedPID := cmpopts.SortSlices(func(a, b lock.Info) bool {
		if a.Granted != b.Granted {
			return a.Granted
		}
		return a.PID < b.PID
	})
	ignoreTimes := cmpopts.IgnoreFields(lock.Info{}, "WaitStart", "XactStart", "ApplicationName")
	if diff := cmp.Diff(want, got, byGrantedPID, ignoreTimes); diff != "" {
		t.Errorf("Status mismatch (-want +got):\n%s", diff)
	}
	for _, in := range got {
		if in.XactStart.IsZero() {
			t.Errorf("%+v: want XactStart", in)
		}
		if in.Granted != in.WaitStart.IsZero() {
			t.Errorf("%+v: want WaitStart set exactly for the waiter", in)
		}
	}
	if last := got[len(got)-1]; last.Granted {
		t.Errorf("Status lists holders after waiters: %+v", got)
	}

	// A Locker that never took these locks (another replica) shows keys, not names.
	others, err := lock.New(lock.Config{}, nil).Status(t.Context(), pool)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(others) != len(got) {
		t.Fatalf("other Locker's Status has %d entries, want %d", len(others), len(got))
	}
	for _, in := range others {
		if !strings.HasPrefix(in.Resource, "0x70") {
			t.Errorf("unknown lock shown as %q, want its key in hex", in.Resource)
		}
	}

	if err := holder.Commit(t.Context()); err != nil {
		t.Fatalf("holder commit: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("waiter Acquire: %v", err)
	}
}

// TestLocker_Status_ignoresOtherAdvisoryLocks checks that advisory locks taken outside
// this package (migrations, say) stay out of the list.
func TestLocker_Status_ignoresOtherAdvisoryLocks(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	tx := begin(t, pool)
	if _, err := tx.Exec(t.Context(), "SELECT pg_advisory_xact_lock(12345), pg_advisory_xact_lock(1, 2)"); err != nil {
		t.Fatalf("take foreign advisory locks: %v", err)
	}
	got, err := lock.New(lock.Config{}, nil).Status(t.Context(), pool)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("Status = %+v, want no entries", got)
	}
}
