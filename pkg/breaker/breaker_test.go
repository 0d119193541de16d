package breaker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sony/gobreaker/v2"

	"github.com/pgfleet/pgfleet/pkg/breaker"
)

var errDown = errors.New("down")

func TestNew_tripsAndProbes(t *testing.T) {
	t.Parallel()
	cb := breaker.New("test", breaker.Config{MinRequests: new(uint32(4)), FailureRatio: 0.5, OpenTimeout: new(50 * time.Millisecond), Window: time.Minute}, nil, nil)
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
	ok := breaker.Config{MinRequests: new(uint32(1)), FailureRatio: 0.5, OpenTimeout: new(time.Second)}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v, want nil", ok, err)
	}
	one := new(uint32(1))
	for _, bad := range []breaker.Config{
		{MinRequests: one, FailureRatio: 0, OpenTimeout: new(time.Second)},
		{MinRequests: one, FailureRatio: 1.5, OpenTimeout: new(time.Second)},
		{MinRequests: one, FailureRatio: 0.5, OpenTimeout: new(time.Duration(0))},
		{MinRequests: one, FailureRatio: 0.5, OpenTimeout: new(time.Second), Window: -1},
		{MinRequests: one, FailureRatio: 0.5},              // OpenTimeout unset: With was not called
		{FailureRatio: 0.5, OpenTimeout: new(time.Second)}, // MinRequests unset
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}

// TestConfig_With: the owner's Defaults fill MinRequests and OpenTimeout left unset, and only
// those: an explicit 0 stays (for OpenTimeout, for Validate to refuse).
func TestConfig_With(t *testing.T) {
	t.Parallel()
	d := breaker.Defaults{MinRequests: 3, OpenTimeout: 10 * time.Second}
	tests := []struct {
		name     string
		in, want breaker.Config
	}{
		{"unset", breaker.Config{FailureRatio: 0.5},
			breaker.Config{MinRequests: new(uint32(3)), FailureRatio: 0.5, OpenTimeout: new(10 * time.Second)}},
		{"set", breaker.Config{MinRequests: new(uint32(7)), OpenTimeout: new(time.Minute)},
			breaker.Config{MinRequests: new(uint32(7)), OpenTimeout: new(time.Minute)}},
		{"zero_kept", breaker.Config{MinRequests: new(uint32(0)), OpenTimeout: new(time.Duration(0))},
			breaker.Config{MinRequests: new(uint32(0)), OpenTimeout: new(time.Duration(0))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, tt.in.With(d)); diff != "" {
				t.Errorf("With mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
