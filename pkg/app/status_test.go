package app_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"field violation", fmt.Errorf("wrapped: %w", validate.Field("symbol", "bad")), codes.InvalidArgument},
		{"peer status", status.Error(codes.NotFound, "no such stock"), codes.NotFound},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), codes.Canceled},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"lock wait", fmt.Errorf("%w: write lock on %q", lock.ErrTimeout, "stock:AAPL"), codes.Aborted},
		{"retries exhausted", fmt.Errorf("%w after 5 attempts", retry.ErrExhausted), codes.Aborted},
		{"breaker open", retry.ErrCircuitOpen, codes.Unavailable},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, codes.Unavailable},
		{"unique violation", &pgconn.PgError{Code: "23505", Message: "secret detail"}, codes.Internal},
		{"anything else", errors.New("boom"), codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := app.Status(t.Context(), slog.New(slog.DiscardHandler), tt.err)
			if got := status.Code(err); got != tt.want {
				t.Errorf("Status(%v) = %v, want %v", tt.err, err, tt.want)
			}
			if tt.want == codes.Internal && status.Convert(err).Message() != "internal error" {
				t.Errorf("Status(%v) leaks %q, want \"internal error\"", tt.err, status.Convert(err).Message())
			}
		})
	}
}
