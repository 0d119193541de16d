// Package breaker builds the circuit breakers pgfleet puts in front of what it depends on
// (the database in pkg/retry, peer services in pkg/client, the remote answer evaluator), so
// all of them trip, count and half-open by one rule.
package breaker

import (
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Config is when a breaker opens: among at least MinRequests calls within Window (0: counts
// never expire), the share of failures reaches FailureRatio. After OpenTimeout it lets one
// probe through; a success closes it.
type Config struct {
	MinRequests  uint32
	FailureRatio float64
	OpenTimeout  time.Duration
	Window       time.Duration
}

// Validate reports settings gobreaker would silently replace or misread.
func (c Config) Validate() error {
	switch {
	case c.FailureRatio <= 0 || c.FailureRatio > 1:
		return fmt.Errorf("want BreakerFailureRatio in (0, 1], got %v", c.FailureRatio)
	case c.OpenTimeout <= 0: // gobreaker would silently make it 60s
		return fmt.Errorf("want BreakerOpenTimeout > 0, got %v", c.OpenTimeout)
	case c.Window < 0:
		return fmt.Errorf("want BreakerWindow >= 0, got %v", c.Window)
	}
	return nil
}

// New returns a breaker named name. isSuccessful (nil: err == nil) decides which errors
// count as failures; isExcluded (nil: none) which are not counted at all.
func New(name string, c Config, isSuccessful, isExcluded func(error) bool) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  1,
		Interval:     c.Window,
		BucketPeriod: c.Window / 10,
		Timeout:      c.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			total := n.TotalSuccesses + n.TotalFailures
			return total > 0 && total >= c.MinRequests &&
				float64(n.TotalFailures)/float64(total) >= c.FailureRatio
		},
		IsSuccessful: isSuccessful,
		IsExcluded:   isExcluded,
	})
}
