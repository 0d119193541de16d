package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// Status turns the errors every service shares into a gRPC status carrying an
// apierr.Reason: errors that carry a status (*validate.Error, *apierr.Error, a peer's
// answer) as they are, context ends, an unreachable database (DATABASE_UNAVAILABLE), lock
// and retry bounds (LOCK_TIMEOUT, CONCURRENCY_CONFLICT: the caller may retry). Anything
// else is logged and answered INTERNAL, without its text. Services map their own sentinels
// (not found, conflicts) first and hand the rest here.
//
// The database's reachability is judged before conflicts: retries that ran out against a
// refused connection are an outage, not a conflict, however many attempts the breaker let
// through before it opened.
func Status(ctx context.Context, log *slog.Logger, err error) error {
	var withStatus interface{ GRPCStatus() *status.Status }
	switch {
	case errors.As(err, &withStatus):
		st := withStatus.GRPCStatus()
		if c := st.Code(); apierr.Count(st) == 0 && (c == codes.Canceled || c == codes.DeadlineExceeded) {
			st, _ = apierr.Ensure(st) // grpc's own, from a stream's Recv: CANCELLED, DEADLINE_EXCEEDED
		}
		return st.Err()
	case errors.Is(err, context.Canceled):
		return apierr.New(apierr.Cancelled, status.FromContextError(err).Message(), nil)
	case errors.Is(err, context.DeadlineExceeded):
		return apierr.New(apierr.DeadlineExceeded, status.FromContextError(err).Message(), nil)
	case retry.Unavailable(err):
		log.WarnContext(ctx, "database unavailable", "err", err)
		var md map[string]string
		if errors.Is(err, retry.ErrCircuitOpen) {
			md = map[string]string{"breaker": "open"}
		}
		return apierr.New(apierr.DatabaseUnavailable, "database unavailable, retry later", md)
	case errors.Is(err, lock.ErrTimeout), isCode(err, pgerrcode.LockNotAvailable):
		log.WarnContext(ctx, "lock wait timeout", "err", err)
		return apierr.New(apierr.LockTimeout, "lock wait timed out, retry the request", nil)
	case errors.Is(err, retry.ErrExhausted), retry.Classify(err) == retry.Retryable:
		// Retryable here is a serialization failure or deadlock outside RunTx: a conflict too.
		log.WarnContext(ctx, "concurrency conflict", "err", err)
		return apierr.New(apierr.ConcurrencyConflict, "concurrent update conflict, retry the request", sqlState(err))
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return apierr.New(apierr.Internal, "internal error", nil)
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// sqlState is the metadata of a conflict: the SQLSTATE that ended the last attempt.
func sqlState(err error) map[string]string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return map[string]string{"sqlstate": pgErr.Code}
	}
	return nil
}
