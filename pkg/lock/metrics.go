package lock

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/latency"
)

// Outcomes of a lock wait, the outcome label of pgfleet_lock_wait_seconds.
const (
	outcomeAcquired = "acquired"
	outcomeTimeout  = "timeout"  // ErrTimeout: not granted within Config.Wait
	outcomeCanceled = "canceled" // the caller's context ended first
	outcomeDeadlock = "deadlock" // PostgreSQL chose this waiter to break a deadlock
	outcomeError    = "error"    // anything else, such as a lost connection
)

func newWaitMetric() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pgfleet_lock_wait_seconds",
		Help: "Time to take advisory resource locks, by kind of resource (the type before ':' of " +
			"the name's last segment, e.g. stock, portfolio, position), mode (read, write, " +
			"exclusive) and outcome (acquired, timeout, canceled, deadlock, error).",
		Buckets: latency.Buckets,
	}, []string{"kind", "mode", "outcome"})
}

// timedLock checks names and mode, then runs lock, timed: the batch that takes the locks
// returns when the last is granted, so its duration is the wait (plus one round trip when
// nothing is held). Refused calls are not recorded: they never wait.
func (l *Locker) timedLock(ctx context.Context, db batcher, names []string, mode Mode, session bool) error {
	if err := check(names, mode); err != nil || len(names) == 0 {
		return err
	}
	start := time.Now()
	err := l.lock(ctx, db, names, mode, session)
	l.waits.WithLabelValues(kind(names), mode.String(), outcome(ctx, err)).Observe(time.Since(start).Seconds())
	return err
}

// kind is the resource type of names: "portfolio:42/position:AAPL" is a "position". A
// call for names of several kinds is labelled with all of them, sorted and joined by "+".
func kind(names []string) string {
	kinds := make([]string, 0, 1)
	for _, n := range names {
		leaf := n[strings.LastIndexByte(n, '/')+1:]
		k, _, _ := strings.Cut(leaf, ":")
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	return strings.Join(kinds, "+")
}

func outcome(ctx context.Context, err error) string {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return outcomeAcquired
	case errors.Is(err, ErrTimeout):
		return outcomeTimeout
	case ctx.Err() != nil:
		return outcomeCanceled
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.DeadlockDetected:
		return outcomeDeadlock
	}
	return outcomeError
}
