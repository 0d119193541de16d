package main

import (
	"testing"
	"time"
)

// backAfter counts a return to SERVING only after the server left it after the death;
// leftAfter sees a NOT_SERVING after the death only.
func TestHealthLog(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name     string
		changes  []healthChange
		wantLeft bool
		wantBack time.Duration
	}{
		{"never_left", []healthChange{{at(-5), true}}, false, 0},
		{"left_and_back", []healthChange{{at(-5), true}, {at(0.2), false}, {at(2.5), true}}, true, 2500 * time.Millisecond},
		{"left_not_back", []healthChange{{at(-5), true}, {at(0.2), false}}, true, 0},
		{"left_before_the_death", []healthChange{{at(-5), true}, {at(-1), false}, {at(1), true}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := &healthLog{changes: tt.changes}
			if got := h.leftAfter(t0); got != tt.wantLeft {
				t.Errorf("leftAfter = %t, want %t", got, tt.wantLeft)
			}
			if got := h.backAfter(t0); got != tt.wantBack {
				t.Errorf("backAfter = %v, want %v", got, tt.wantBack)
			}
		})
	}
}
