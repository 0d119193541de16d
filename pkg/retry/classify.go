package retry

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
)

// Class says what a failed attempt allows the caller to do next.
type Class int

const (
	// Permanent errors fail the same way when rerun: constraint violations, bad input,
	// syntax and privilege errors, a caller's canceled context.
	Permanent Class = iota
	// Retryable errors left nothing committed: the whole transaction may be rerun.
	Retryable
	// Ambiguous errors cut the connection while COMMIT was in flight: the work may or may
	// not have committed, so only work that is safe to repeat may be rerun.
	Ambiguous
)

// String returns "permanent", "retryable" or "ambiguous".
func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Retryable:
		return "retryable"
	case Ambiguous:
		return "ambiguous"
	}
	return "unknown"
}

// phaseError marks an error from BEGIN or COMMIT, which Classify and the breaker need to
// tell apart from errors inside the transaction body.
type phaseError struct {
	phase string // "begin" or "commit"
	err   error
}

func (e *phaseError) Error() string { return e.phase + ": " + e.err.Error() }
func (e *phaseError) Unwrap() error { return e.err }

func inPhase(err error, phase string) bool {
	var pe *phaseError
	return errors.As(err, &pe) && pe.phase == phase
}

// Classify reports whether err, returned by one attempt, may be retried.
//
// SQLSTATE 40001 (serialization_failure), 40P01 (deadlock_detected) and 55P03
// (lock_not_available) are Retryable: the server answered with an error, so nothing
// committed. Lost connections, admin or crash shutdown (57P01, 57P02, 57P03) and
// too_many_connections (53300) are Retryable when nothing had been sent
// (pgconn.SafeToRetry) or when they happened before COMMIT, and Ambiguous when they
// interrupted a COMMIT issued by RunTx. Everything else, including context cancellation
// and a nil error, is Permanent.
func Classify(err error) Class {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return Permanent
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == pgerrcode.SerializationFailure,
			pgErr.Code == pgerrcode.DeadlockDetected,
			pgErr.Code == pgerrcode.LockNotAvailable:
			return Retryable
		case isConnCode(pgErr.Code):
			return connFailure(err)
		}
		return Permanent
	}
	if isConnError(err) {
		return connFailure(err)
	}
	return Permanent
}

func connFailure(err error) Class {
	if !pgconn.SafeToRetry(err) && inPhase(err, "commit") {
		return Ambiguous
	}
	return Retryable
}

// Unavailable reports whether err means the database could not be reached, so the
// caller should hear "unavailable", not "conflict": the breaker refused the attempt, or err
// is a refused, lost or shut-down connection. That holds for ErrExhausted too, which wraps
// the last attempt's error: retries that ran out against a down database are an outage. A
// caller's cancelled or expired context is not: it is the caller's to report.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return errors.Is(err, ErrCircuitOpen) || isConnError(err)
}

// isConnCode reports the SQLSTATEs that mean the server could not or would no longer
// serve this session.
func isConnCode(code string) bool {
	switch code {
	case pgerrcode.AdminShutdown, pgerrcode.CrashShutdown, pgerrcode.CannotConnectNow,
		pgerrcode.TooManyConnections:
		return true
	}
	return pgerrcode.IsConnectionException(code)
}

// isConnError reports whether err means the database could not be reached or the
// connection broke, as opposed to the database answering with an error.
func isConnError(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return isConnCode(pgErr.Code)
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr),
		errors.Is(err, pgconn.ErrConnClosed), errors.Is(err, net.ErrClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err):
		return true
	}
	return false
}

// unavailable reports whether err counts against the database's availability in the
// circuit breaker: connection failures, and deadlines that ran out while waiting for a
// connection or for BEGIN. Answers from a working server never count.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return inPhase(err, "begin")
	}
	return isConnError(err)
}

// excluded reports the errors the breaker should neither count as success nor failure:
// the caller gave up, which says nothing about the database.
func excluded(err error) bool {
	if err == nil || unavailable(err) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// sqlState names err for the errors metric: its SQLSTATE, "network" for a connection
// failure without one, else "other".
func sqlState(err error) string {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		return pgErr.Code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case isConnError(err):
		return "network"
	}
	return "other"
}
