// Package breaker builds the circuit breakers pgfleet puts in front of what it depends on
// (the database in pkg/retry, peer services in pkg/client, the remote answer evaluator), so
// all of them trip, count and half-open by one rule and are configured by one type.
package breaker

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"
)

// Config is when a breaker opens: among at least MinRequests calls within Window (0: counts
// never expire), the share of failures reaches FailureRatio. After OpenTimeout it lets one
// probe through; a success closes it.
//
// Each owner embeds it under its env prefix: `env:", prefix=DB_BREAKER_"` reads
// DB_BREAKER_MIN_REQUESTS, DB_BREAKER_FAILURE_RATIO, DB_BREAKER_OPEN_TIMEOUT and
// DB_BREAKER_WINDOW. MinRequests and OpenTimeout default to what the breaker guards (20
// attempts on the database, 3 calls and 10s for the evaluator), and go-envconfig's defaults
// belong to a struct type, not to the place it is embedded: so those two stay nil until set,
// and the owner fills them with its Defaults (With). FailureRatio and Window default alike
// everywhere.
type Config struct {
	MinRequests  *uint32        `env:"MIN_REQUESTS, noinit" help:"calls within the window before the circuit breaker may open"`
	FailureRatio float64        `env:"FAILURE_RATIO, default=0.5" help:"share of failed calls within the window that opens the circuit breaker"`
	OpenTimeout  *time.Duration `env:"OPEN_TIMEOUT, noinit" help:"time the circuit breaker stays open before it lets a probe through"`
	Window       time.Duration  `env:"WINDOW, default=30s" help:"rolling window of the circuit breaker's counts; 0: counts never expire"` // 0: counts never expire
}

// Defaults are an owner's MinRequests and OpenTimeout, for a Config that leaves them unset.
type Defaults struct {
	MinRequests uint32
	OpenTimeout time.Duration
}

// Env names d as settings of a breaker embedded under prefix (e.g. "DB_BREAKER_"), for an
// owner's EnvDefaults: --help shows them as the defaults of MIN_REQUESTS and OPEN_TIMEOUT.
func (d Defaults) Env(prefix string) map[string]string {
	return map[string]string{
		prefix + "MIN_REQUESTS": strconv.FormatUint(uint64(d.MinRequests), 10),
		prefix + "OPEN_TIMEOUT": d.OpenTimeout.String(),
	}
}

// With returns c with its unset MinRequests and OpenTimeout taken from d.
func (c Config) With(d Defaults) Config {
	if c.MinRequests == nil {
		c.MinRequests = &d.MinRequests
	}
	if c.OpenTimeout == nil {
		c.OpenTimeout = &d.OpenTimeout
	}
	return c
}

// Validate reports settings gobreaker would silently replace or misread, and unset ones.
func (c Config) Validate() error {
	switch {
	case c.MinRequests == nil || c.OpenTimeout == nil:
		return errors.New("breaker MinRequests or OpenTimeout unset: fill them with Config.With")
	case c.FailureRatio <= 0 || c.FailureRatio > 1:
		return fmt.Errorf("want BreakerFailureRatio in (0, 1], got %v", c.FailureRatio)
	case *c.OpenTimeout <= 0: // gobreaker would silently make it 60s
		return fmt.Errorf("want BreakerOpenTimeout > 0, got %v", *c.OpenTimeout)
	case c.Window < 0:
		return fmt.Errorf("want BreakerWindow >= 0, got %v", c.Window)
	}
	return nil
}

// New returns a breaker named name, for c filled by With (an unset field counts as 0).
// isSuccessful (nil: err == nil) decides which errors count as failures; isExcluded (nil:
// none) which are not counted at all.
func New(name string, c Config, isSuccessful, isExcluded func(error) bool) *gobreaker.CircuitBreaker[struct{}] {
	c = c.With(Defaults{})
	minRequests := *c.MinRequests
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  1,
		Interval:     c.Window,
		BucketPeriod: c.Window / 10,
		Timeout:      *c.OpenTimeout,
		ReadyToTrip: func(n gobreaker.Counts) bool {
			total := n.TotalSuccesses + n.TotalFailures
			return total > 0 && total >= minRequests &&
				float64(n.TotalFailures)/float64(total) >= c.FailureRatio
		},
		IsSuccessful: isSuccessful,
		IsExcluded:   isExcluded,
	})
}
