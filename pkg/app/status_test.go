package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name       string
		err        error
		want       codes.Code
		wantReason apierr.Reason
	}{
		{"field violation", fmt.Errorf("wrapped: %w", validate.Field("symbol", "bad")), codes.InvalidArgument, apierr.InvalidField},
		{"api error", fmt.Errorf("in tx: %w", apierr.New(apierr.Oversell, "cannot sell", nil)), codes.FailedPrecondition, apierr.Oversell},
		{"peer status", status.Error(codes.NotFound, "no such stock"), codes.NotFound, ""},
		{"stream canceled", status.Error(codes.Canceled, "context canceled"), codes.Canceled, apierr.Cancelled},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), codes.Canceled, apierr.Cancelled},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded, apierr.DeadlineExceeded},
		{"lock wait", fmt.Errorf("%w: write lock on %q", lock.ErrTimeout, "stock:AAPL"), codes.Aborted, apierr.LockTimeout},
		{"lock_not_available outside RunTx", &pgconn.PgError{Code: "55P03"}, codes.Aborted, apierr.LockTimeout},
		{"retries exhausted", fmt.Errorf("%w after 5 attempts", retry.ErrExhausted), codes.Aborted, apierr.ConcurrencyConflict},
		{"retries exhausted on conflicts", fmt.Errorf("%w after 5 attempts: %w", retry.ErrExhausted, &pgconn.PgError{Code: "40001"}),
			codes.Aborted, apierr.ConcurrencyConflict},
		// The outage before the breaker opens: issue 11 saw ABORTED here.
		{"retries exhausted on refused connections", fmt.Errorf("%w after 5 attempts: %w", retry.ErrExhausted, refused),
			codes.Unavailable, apierr.DatabaseUnavailable},
		{"retries exhausted on admin shutdown", fmt.Errorf("%w after 5 attempts: %w", retry.ErrExhausted, &pgconn.PgError{Code: "57P01"}),
			codes.Unavailable, apierr.DatabaseUnavailable},
		{"breaker open", retry.ErrCircuitOpen, codes.Unavailable, apierr.DatabaseUnavailable},
		{"breaker open after attempts", fmt.Errorf("%w after 2 attempts: %w", retry.ErrCircuitOpen, refused), codes.Unavailable, apierr.DatabaseUnavailable},
		{"refused outside the retrier", fmt.Errorf("acquire connection: %w", refused), codes.Unavailable, apierr.DatabaseUnavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, codes.Unavailable, apierr.DatabaseUnavailable},
		{"canceled while retrying an outage", fmt.Errorf("%w after 2 attempts: %w", context.Canceled, refused), codes.Canceled, apierr.Cancelled},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "secret detail"}, codes.Internal, apierr.Internal},
		{"anything else", errors.New("boom"), codes.Internal, apierr.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := app.Status(t.Context(), slog.New(slog.DiscardHandler), tt.err)
			if got := status.Code(err); got != tt.want {
				t.Errorf("Status(%v) = %v, want %v", tt.err, err, tt.want)
			}
			if got := apierr.ReasonOf(err); got != tt.wantReason {
				t.Errorf("Status(%v) reason = %q, want %q", tt.err, got, tt.wantReason)
			}
			if tt.want == codes.Internal && status.Convert(err).Message() != "internal error" {
				t.Errorf("Status(%v) leaks %q, want \"internal error\"", tt.err, status.Convert(err).Message())
			}
		})
	}
}
