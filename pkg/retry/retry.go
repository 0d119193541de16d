// Package retry reruns PostgreSQL work that failed for reasons that go away on their own:
// serialization failures and deadlocks under SERIALIZABLE or advisory locks, lock wait
// timeouts, and lost or refused connections. A whole transaction is the unit of retry,
// because after any error PostgreSQL has rolled it back. Attempts pass through a circuit
// breaker so that, while the database is down, callers fail fast instead of queueing.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// ErrExhausted means a retryable error persisted past the attempt or time bound. The last
// attempt's error is wrapped too, so errors.As still finds its *pgconn.PgError.
var ErrExhausted = errors.New("retries exhausted")

// ErrCircuitOpen means the breaker rejected the attempt because recent attempts found
// the database unavailable.
var ErrCircuitOpen = errors.New("circuit breaker open: database unavailable")

// Config bounds retries and tunes the circuit breaker.
type Config struct {
	MaxAttempts int           `env:"DB_RETRY_MAX_ATTEMPTS, default=5" help:"attempts per retried transaction (serialization failures, deadlocks, lost connections)"`
	BaseDelay   time.Duration `env:"DB_RETRY_BASE_DELAY, default=20ms" help:"first backoff bound between attempts (full jitter, doubling)"`
	MaxDelay    time.Duration `env:"DB_RETRY_MAX_DELAY, default=1s" help:"largest backoff between attempts"`
	MaxElapsed  time.Duration `env:"DB_RETRY_MAX_ELAPSED, default=15s" help:"time budget of one retried transaction; 0: bounded by attempts only"` // 0: no bound but MaxAttempts

	// Breaker opens on the share of attempts that found the database unavailable; unset,
	// MinRequests and OpenTimeout are BreakerDefaults.
	Breaker breaker.Config `env:", prefix=DB_BREAKER_"`
}

// BreakerDefaults are the database breaker's DB_BREAKER_MIN_REQUESTS (20) and
// DB_BREAKER_OPEN_TIMEOUT (5s) when unset.
var BreakerDefaults = breaker.Defaults{MinRequests: 20, OpenTimeout: 5 * time.Second}

// EnvDefaults are BreakerDefaults as settings, for --help (see app.Settings).
func (Config) EnvDefaults() map[string]string { return BreakerDefaults.Env("DB_BREAKER_") }

// Beginner starts transactions; *pgxpool.Pool and *pgx.Conn have it.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Stats are the Retrier's counters since New, for the ops API.
type Stats struct {
	Operations            int64  // RunTx and Do calls finished
	Retries               int64  // attempts after the first
	Exhausted             int64  // operations that gave up on a retryable error
	SerializationFailures int64  // attempts failed with 40001
	Deadlocks             int64  // attempts failed with 40P01
	LockTimeouts          int64  // attempts failed with 55P03
	ConnectionErrors      int64  // attempts that could not reach the database
	BreakerRejections     int64  // attempts refused by the open breaker
	BreakerState          string // "closed", "half-open" or "open"
}

// Retrier runs operations with retries behind one circuit breaker. It is safe for
// concurrent use; a service keeps one per database.
type Retrier struct {
	cfg     Config
	breaker *gobreaker.CircuitBreaker[struct{}]
	m       *metrics

	operations, retries, exhausted                   atomic.Int64
	serialization, deadlocks, lockTimeouts, connErrs atomic.Int64
	rejections                                       atomic.Int64
}

// New returns a Retrier. Its metrics are registered on reg unless reg is nil; a registry
// takes one Retrier (wrap reg with prometheus.WrapRegistererWith to add more).
func New(cfg Config, reg prometheus.Registerer) *Retrier {
	r := &Retrier{cfg: cfg}
	r.breaker = breaker.New("postgres", cfg.Breaker.With(BreakerDefaults),
		func(err error) bool { return !unavailable(err) }, excluded)
	r.m = newMetrics(r.breakerState)
	if reg != nil {
		r.m.register(reg)
	}
	return r
}

// RunTx runs fn in a transaction started with opts and commits it. When fn, BEGIN or
// COMMIT fails with a Retryable error (see Classify), RunTx rolls back and reruns the
// whole transaction, after a random backoff that doubles up to MaxDelay, until it
// succeeds, fails otherwise, or the attempt, elapsed-time or ctx bound runs out (then the
// error wraps ErrExhausted and the last error).
//
// So fn may run several times. It must have no effects outside the transaction (no
// calls to other services, no messages sent, no in-memory state kept from a failed
// attempt) and must return errors wrapped with %w, so the cause stays visible to
// Classify. An error from an interrupted COMMIT is Ambiguous and returned as is, since
// the transaction may have committed; a read-only transaction (opts.AccessMode ==
// pgx.ReadOnly) changes nothing, so it is rerun on Ambiguous errors too.
func (r *Retrier) RunTx(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	readOnly := opts.AccessMode == pgx.ReadOnly
	return r.run(ctx, readOnly, func(ctx context.Context) error {
		return runTx(ctx, db, opts, fn)
	})
}

func runTx(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(pgx.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return &phaseError{phase: "begin", err: err}
	}
	defer func() {
		if err != nil {
			// The transaction is dead either way; a failed rollback closes the connection.
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return &phaseError{phase: "commit", err: err}
	}
	return nil
}

// Do runs fn, which must be idempotent (a single read, a call that is safe to repeat),
// and reruns it on Retryable errors with the same backoff, bounds and breaker as RunTx.
func (r *Retrier) Do(ctx context.Context, fn func(context.Context) error) error {
	return r.run(ctx, false, fn)
}

func (r *Retrier) run(ctx context.Context, retryAmbiguous bool, op func(context.Context) error) error {
	start := time.Now()
	defer r.operations.Add(1)
	var err error
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			r.retries.Add(1)
		}
		var ran bool
		_, err = r.breaker.Execute(func() (struct{}, error) {
			ran = true
			return struct{}{}, op(ctx)
		})
		if !ran {
			if telemetry.IsRecording(ctx) {
				telemetry.Event(ctx, "breaker rejected", attribute.String("breaker", "postgres"),
					attribute.Int("attempt", attempt), attribute.String("breaker.state", r.breaker.State().String()))
			}
			r.rejections.Add(1)
			r.m.rejections.Inc()
			r.m.operations.WithLabelValues("circuit_open").Inc()
			if attempt == 1 {
				return ErrCircuitOpen
			}
			return fmt.Errorf("%w after %d attempts: %w", ErrCircuitOpen, attempt-1, err)
		}
		if err == nil {
			r.m.attempts.WithLabelValues("ok").Inc()
			r.m.operations.WithLabelValues("success").Inc()
			return nil
		}
		class := Classify(err)
		r.record(err, class)
		if class == Ambiguous && retryAmbiguous {
			class = Retryable
		}
		if class != Retryable {
			r.m.operations.WithLabelValues("permanent").Inc()
			return err
		}
		delay := r.backoff(attempt)
		exhausted := attempt >= r.cfg.MaxAttempts || (r.cfg.MaxElapsed > 0 && time.Since(start)+delay > r.cfg.MaxElapsed)
		if telemetry.IsRecording(ctx) {
			telemetry.Event(ctx, "retryable error", attribute.Int("attempt", attempt),
				attribute.String("db.response.status_code", sqlState(err)), attribute.Bool("exhausted", exhausted),
				attribute.Float64("backoff_ms", float64(delay.Microseconds())/1000))
		}
		if exhausted {
			r.exhausted.Add(1)
			r.m.operations.WithLabelValues("exhausted").Inc()
			return fmt.Errorf("%w after %d attempts: %w", ErrExhausted, attempt, err)
		}
		r.m.backoff.Observe(delay.Seconds())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			r.m.operations.WithLabelValues("permanent").Inc()
			return fmt.Errorf("%w after %d attempts: %w", context.Cause(ctx), attempt, err)
		case <-t.C:
		}
	}
}

// backoff returns the full-jitter delay before attempt+1 (see Backoff).
func (r *Retrier) backoff(attempt int) time.Duration {
	return Backoff(r.cfg.BaseDelay, r.cfg.MaxDelay, attempt)
}

// Backoff returns the full-jitter delay before attempt+1: uniform in
// [0, min(maxDelay, base*2^(attempt-1))), which spreads competing retriers apart. The
// Retrier waits it between a statement's attempts; the stock service's ingestion runs wait it
// between a run's attempts.
func Backoff(base, maxDelay time.Duration, attempt int) time.Duration {
	ceil := base
	for i := 1; i < attempt && ceil < maxDelay && ceil <= math.MaxInt64/2; i++ {
		ceil *= 2
	}
	ceil = min(ceil, maxDelay)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil)
}

func (r *Retrier) record(err error, class Class) {
	r.m.attempts.WithLabelValues(class.String()).Inc()
	r.m.errors.WithLabelValues(sqlState(err)).Inc()
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgerrcode.SerializationFailure:
			r.serialization.Add(1)
		case pgerrcode.DeadlockDetected:
			r.deadlocks.Add(1)
		case pgerrcode.LockNotAvailable:
			r.lockTimeouts.Add(1)
		}
	}
	if isConnError(err) {
		r.connErrs.Add(1)
	}
}

func (r *Retrier) breakerState() gobreaker.State { return r.breaker.State() }

// Stats returns the counters and the breaker's current state.
func (r *Retrier) Stats() Stats {
	return Stats{
		Operations:            r.operations.Load(),
		Retries:               r.retries.Load(),
		Exhausted:             r.exhausted.Load(),
		SerializationFailures: r.serialization.Load(),
		Deadlocks:             r.deadlocks.Load(),
		LockTimeouts:          r.lockTimeouts.Load(),
		ConnectionErrors:      r.connErrs.Load(),
		BreakerRejections:     r.rejections.Load(),
		BreakerState:          r.breaker.State().String(),
	}
}
