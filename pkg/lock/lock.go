// Package lock takes named, hierarchical resource locks ("stock:AAPL", "portfolio:42",
// "portfolio:42/position:AAPL") as PostgreSQL advisory locks scoped to the caller's
// transaction, so they hold across every replica of a service and cannot outlive the
// transaction on a pooled connection.
//
// Read locks on a resource share it; Write excludes readers and writers of that resource
// but not of its children; Exclusive excludes every lock on the resource and on all
// resources below it. Waits are bounded by lock_timeout (ErrTimeout); deadlocks are
// detected by PostgreSQL and surface as SQLSTATE 40P01, which retry.RunTx reruns.
package lock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// ErrTimeout means a lock was not granted within Config.Wait. The *pgconn.PgError
// (SQLSTATE 55P03) is wrapped too; the transaction is aborted and must be rolled back.
var ErrTimeout = errors.New("lock wait timeout")

// Mode is how a lock shares its resource.
type Mode int

const (
	// Read shares the resource with other readers.
	Read Mode = iota
	// Write excludes readers and writers of the resource, not locks on its children.
	Write
	// Exclusive excludes every lock on the resource and on its descendants.
	Exclusive
)

// String returns "read", "write" or "exclusive".
func (m Mode) String() string {
	switch m {
	case Read:
		return "read"
	case Write:
		return "write"
	case Exclusive:
		return "exclusive"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Config bounds lock waits.
type Config struct {
	// Wait bounds each wait for a lock; 0 waits until the context ends.
	Wait time.Duration `env:"LOCK_WAIT_TIMEOUT, default=5s" help:"longest wait for a resource lock (ABORTED LOCK_TIMEOUT past it); 0: until the call's deadline"`
	// Namespace separates this Locker's keys from those of Lockers with another namespace
	// on the same database (see key.go): app.Start sets it to the service's name. It is
	// not read from the environment.
	Namespace string
}

// Locker takes locks with one wait bound and remembers the names it has locked, for
// Status. It is safe for concurrent use.
type Locker struct {
	wait  time.Duration
	space space
	names *names
	waits *prometheus.HistogramVec // pgfleet_lock_wait_seconds, see metrics.go
}

// New returns a Locker. Its pgfleet_lock_wait_seconds is registered on reg unless reg is
// nil; a registry takes one Locker.
func New(cfg Config, reg prometheus.Registerer) *Locker {
	l := &Locker{wait: cfg.Wait, space: newSpace(cfg.Namespace), names: newNames(4096), waits: newWaitMetric()}
	if reg != nil {
		reg.MustRegister(l.waits)
	}
	return l
}

// Acquire locks name in mode until tx ends. Locks on the ancestors of name are taken
// first, top down. Taking a lock twice, or a weaker one than held, returns at once.
func (l *Locker) Acquire(ctx context.Context, tx pgx.Tx, name string, mode Mode) error {
	return l.AcquireAll(ctx, tx, []string{name}, mode)
}

// AcquireAll locks every name in mode until tx ends. It takes them in one canonical
// order (parents before children, then by name), so concurrent AcquireAll calls cannot
// deadlock each other, whatever order their names come in.
//
// Under REPEATABLE READ or SERIALIZABLE, a transaction's snapshot is taken by its first
// statement, which may be this lock's: a transaction that waited here then reads data older
// than what the previous holder committed, and fails to serialize. Take such locks with Hold,
// before the transaction begins.
func (l *Locker) AcquireAll(ctx context.Context, tx pgx.Tx, names []string, mode Mode) error {
	return l.timedLock(ctx, tx, names, mode, false)
}

// Hold locks name in mode at session level on conn, which must not be in a transaction, so
// that a transaction begun on conn afterwards takes its snapshot after the lock is granted
// and sees everything the previous holder committed. Call release when done, whatever
// happened: it unlocks, or closes conn if it cannot (a closed session holds no locks). conn
// must hold no other session-level advisory locks, as connections from a pool do not.
func (l *Locker) Hold(ctx context.Context, conn *pgx.Conn, name string, mode Mode) (release func(), err error) {
	release = func() {
		// Not ctx: the lock must go even when the caller's context has ended.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock_all()"); err != nil {
			conn.Close(uctx) //nolint:errcheck // closing is the fallback: the session's end releases its locks
		}
	}
	if err := l.timedLock(ctx, conn, []string{name}, mode, true); err != nil {
		release() // a failed batch may have taken some of the keys
		return nil, err
	}
	return release, nil
}

// batcher sends a batch; pgx.Tx and *pgx.Conn have it.
type batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// check refuses a mode or a name that lock cannot take.
func check(names []string, mode Mode) error {
	if mode < Read || mode > Exclusive {
		return fmt.Errorf("lock: invalid mode %d", int(mode))
	}
	for _, n := range names {
		if err := validate(n); err != nil {
			return err
		}
	}
	return nil
}

// lock takes every name in mode, transaction-scoped or at session level; check has passed.
func (l *Locker) lock(ctx context.Context, db batcher, names []string, mode Mode, session bool) error {
	sorted := slices.Clone(names)
	slices.SortFunc(sorted, compareNames)
	sorted = slices.Compact(sorted)
	if len(sorted) == 0 {
		return nil
	}
	exclusiveFn, sharedFn, local := "pg_advisory_xact_lock", "pg_advisory_xact_lock_shared", "true"
	if session {
		// Outside a transaction the batch runs in an implicit one: a failure rolls the
		// settings back, and set_config(..., false) outlives it only on success.
		exclusiveFn, sharedFn, local = "pg_advisory_lock", "pg_advisory_lock_shared", "false"
	}

	// One round trip: save lock_timeout in a custom setting, bound the waits, lock,
	// restore it. The statements run in order and stop at the first error.
	b := &pgx.Batch{}
	var owner []string // the resource each queued statement locks, "" for settings
	queue := func(resource, sql string, args ...any) {
		b.Queue(sql, args...)
		owner = append(owner, resource)
	}
	if l.wait > 0 {
		queue("", "SELECT set_config('pgfleet.lock_saved_timeout', current_setting('lock_timeout'), "+local+")")
		queue("", "SELECT set_config('lock_timeout', $1, "+local+")", timeoutSetting(l.wait))
	}
	for _, n := range sorted {
		for _, s := range l.space.steps(n, mode) {
			l.names.add(uint64(s.key)&^1, s.resource)
			if s.exclusive {
				queue(n, "SELECT "+exclusiveFn+"($1)", s.key)
			} else {
				queue(n, "SELECT "+sharedFn+"($1)", s.key)
			}
		}
	}
	if l.wait > 0 {
		queue("", "SELECT set_config('lock_timeout', current_setting('pgfleet.lock_saved_timeout'), "+local+")")
	}
	start := time.Now()
	br := db.SendBatch(ctx, b)
	failed := -1
	for i := range owner {
		if _, err := br.Exec(); err != nil {
			failed = i
			break
		}
	}
	err := br.Close()
	if telemetry.IsRecording(ctx) {
		lockEvent(ctx, sorted, mode, time.Since(start), err)
	}
	if err == nil {
		return nil
	}
	resource := sorted
	if failed >= 0 && owner[failed] != "" {
		resource = []string{owner[failed]}
	}
	what := fmt.Sprintf("%s lock on %q", mode, resource[0])
	if len(resource) > 1 {
		what = fmt.Sprintf("%s locks on %q", mode, resource)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable {
		return fmt.Errorf("%w: %s not granted within %s: %w", ErrTimeout, what, l.wait, err)
	}
	return fmt.Errorf("acquire %s: %w", what, err)
}

// timeoutSetting renders d (> 0) for lock_timeout in whole milliseconds, rounded up
// because "0" would mean no bound.
func timeoutSetting(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Millisecond-1)/time.Millisecond), 10) + "ms"
}

// lockEvent notes on the call's span how long the locks took (the wait, if any, plus a round
// trip) and whether they were granted.
func lockEvent(ctx context.Context, names []string, mode Mode, took time.Duration, err error) {
	var pgErr *pgconn.PgError
	name := "lock acquired"
	switch {
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.LockNotAvailable:
		name = "lock timed out"
	case err != nil:
		name = "lock failed"
	}
	telemetry.Event(ctx, name, attribute.StringSlice("lock.names", names), attribute.String("lock.mode", mode.String()),
		attribute.Float64("lock.wait_ms", float64(took.Microseconds())/1000))
}
