package app

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// Status turns the errors every service shares into a gRPC status: errors that carry one
// (*validate.Error, a peer's answer), context ends, lock and retry bounds (ABORTED: the
// caller may retry), an unreachable database (UNAVAILABLE). Anything else is logged and
// answered INTERNAL, without its text. Services map their own sentinels (not found,
// conflicts) first and hand the rest here.
func Status(ctx context.Context, log *slog.Logger, err error) error {
	var withStatus interface{ GRPCStatus() *status.Status }
	switch {
	case errors.As(err, &withStatus):
		return withStatus.GRPCStatus().Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, lock.ErrTimeout), errors.Is(err, retry.ErrExhausted):
		log.WarnContext(ctx, "concurrency conflict", "err", err)
		return status.Error(codes.Aborted, "concurrent update conflict, retry the request")
	case errors.Is(err, retry.ErrCircuitOpen):
		return status.Error(codes.Unavailable, "database unavailable, retry later")
	case retry.Classify(err) != retry.Permanent:
		log.WarnContext(ctx, "database unavailable", "err", err)
		return status.Error(codes.Unavailable, "database unavailable, retry later")
	}
	log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}
