package retry

import (
	"testing"
	"time"
)

func TestRetrier_backoff(t *testing.T) {
	t.Parallel()
	r := New(Config{BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}, nil)
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{attempt: 1, ceil: 10 * time.Millisecond},
		{attempt: 2, ceil: 20 * time.Millisecond},
		{attempt: 4, ceil: 80 * time.Millisecond},
		{attempt: 5, ceil: 100 * time.Millisecond},   // capped at MaxDelay
		{attempt: 200, ceil: 100 * time.Millisecond}, // no overflow
	}
	for _, tt := range tests {
		var maxSeen time.Duration
		for range 2000 {
			d := r.backoff(tt.attempt)
			if d < 0 || d >= tt.ceil {
				t.Fatalf("backoff(%d) = %v, want in [0, %v)", tt.attempt, d, tt.ceil)
			}
			maxSeen = max(maxSeen, d)
		}
		// Full jitter spreads over the whole range; 2000 draws all in the lower half
		// would happen with probability 2^-2000.
		if maxSeen < tt.ceil/2 {
			t.Errorf("backoff(%d) never exceeded %v in 2000 draws, want full jitter up to %v", tt.attempt, maxSeen, tt.ceil)
		}
	}
}

func TestRetrier_backoffZero(t *testing.T) {
	t.Parallel()
	r := New(Config{}, nil)
	if d := r.backoff(3); d != 0 {
		t.Errorf("backoff with zero delays = %v, want 0", d)
	}
}
