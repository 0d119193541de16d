package breaker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
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

// TestConfig_env: one type, read under each owner's prefix; MinRequests and OpenTimeout come
// from the owner's Defaults unless set, an explicit 0 included.
func TestConfig_env(t *testing.T) {
	t.Parallel()
	var got struct {
		DB        breaker.Config `env:", prefix=DB_BREAKER_"`
		Evaluator breaker.Config `env:", prefix=EVALUATOR_BREAKER_"`
	}
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{
		Target: &got,
		Lookuper: envconfig.MapLookuper(map[string]string{
			"DB_BREAKER_MIN_REQUESTS":        "0",
			"DB_BREAKER_WINDOW":              "0s",
			"EVALUATOR_BREAKER_OPEN_TIMEOUT": "1m",
			"MIN_REQUESTS":                   "9", // read by neither
		}),
	}); err != nil {
		t.Fatalf("process: %v", err)
	}
	defaults := breaker.Defaults{MinRequests: 3, OpenTimeout: 10 * time.Second}
	want := []breaker.Config{
		{MinRequests: new(uint32(0)), FailureRatio: 0.5, OpenTimeout: new(10 * time.Second)},
		{MinRequests: new(uint32(3)), FailureRatio: 0.5, OpenTimeout: new(time.Minute), Window: 30 * time.Second},
	}
	if diff := cmp.Diff(want, []breaker.Config{got.DB.With(defaults), got.Evaluator.With(defaults)}); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}
