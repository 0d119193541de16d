package breaker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/pgfleet/pgfleet/pkg/breaker"
)

var errDown = errors.New("down")

func TestNew_tripsAndProbes(t *testing.T) {
	t.Parallel()
	cb := breaker.New("test", breaker.Config{MinRequests: 4, FailureRatio: 0.5, OpenTimeout: 50 * time.Millisecond, Window: time.Minute}, nil, nil)
	call := func(err error) error {
		_, e := cb.Execute(func() (struct{}, error) { return struct{}{}, err })
		return e
	}
	for _, err := range []error{nil, nil, errDown} {
		_ = call(err)
	}
	if cb.State() != gobreaker.StateClosed {
		t.Fatalf("state after 3 calls = %v, want closed (fewer than MinRequests)", cb.State())
	}
	_ = call(errDown) // 2 of 4 failed: ratio 0.5 reached
	if cb.State() != gobreaker.StateOpen {
		t.Fatalf("state = %v, want open", cb.State())
	}
	if err := call(nil); !errors.Is(err, gobreaker.ErrOpenState) {
		t.Errorf("call while open = %v, want ErrOpenState", err)
	}
	time.Sleep(60 * time.Millisecond) // the open timeout, then one probe closes it
	if err := call(nil); err != nil || cb.State() != gobreaker.StateClosed {
		t.Errorf("probe = %v, state %v; want success and closed", err, cb.State())
	}
}

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	ok := breaker.Config{MinRequests: 1, FailureRatio: 0.5, OpenTimeout: time.Second}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v, want nil", ok, err)
	}
	for _, bad := range []breaker.Config{
		{FailureRatio: 0, OpenTimeout: time.Second},
		{FailureRatio: 1.5, OpenTimeout: time.Second},
		{FailureRatio: 0.5},
		{FailureRatio: 0.5, OpenTimeout: time.Second, Window: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}
