package pgtest

import (
	"testing"
	"time"
)

// Poll calls cond every 20 ms until it holds and fails tb if it does not within a minute: tests
// wait for a condition, never for a fixed time, and a busy machine gets a generous bound.
func Poll(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within a minute", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
