// Package api serves pgfleet.stock.v1.StockService over the store. It checks requests,
// converts between protobuf and store types, runs transactions and maps errors to codes.
package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// Server implements stockv1.StockServiceServer.
type Server struct {
	stockv1.UnimplementedStockServiceServer

	pool  *pgxpool.Pool
	store *store.Store
	retry *retry.Retrier
	locks *lock.Locker
	log   *slog.Logger
	lists lists
}

// New returns a Server. tokenKey signs page tokens (every replica must share it).
func New(pool *pgxpool.Pool, r *retry.Retrier, l *lock.Locker, tokenKey string, log *slog.Logger) *Server {
	return &Server{
		pool:  pool,
		store: store.New(pool),
		retry: r,
		locks: l,
		log:   log,
		lists: newLists(tokenKey),
	}
}

// stockLock names the lock that guards a stock's prices.
func stockLock(symbol string) string { return "stock:" + symbol }

// grpcError turns a store, lock or retry error into a status. Causes are logged, not returned.
func (s *Server) grpcError(ctx context.Context, err error) error {
	var withStatus interface{ GRPCStatus() *status.Status } // *validate.Error, or a stream's own status
	var unknown *store.UnknownStocksError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &withStatus):
		return withStatus.GRPCStatus().Err()
	case errors.As(err, &unknown):
		var v validate.Violations
		for _, sym := range unknown.Symbols {
			v.Add("symbol", "unknown stock %q", sym)
		}
		return v.Err().(*validate.Error).GRPCStatus().Err()
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation:
		// A stock deleted between the existence check and the write.
		return status.Error(codes.FailedPrecondition, "a referenced stock no longer exists")
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error()) // `stock "ZZZZ": not found`
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, lock.ErrTimeout), errors.Is(err, retry.ErrExhausted):
		s.log.WarnContext(ctx, "concurrency conflict", "err", err)
		return status.Error(codes.Aborted, "concurrent update conflict, retry the request")
	case errors.Is(err, retry.ErrCircuitOpen):
		return status.Error(codes.Unavailable, "database unavailable, retry later")
	case retry.Classify(err) != retry.Permanent:
		s.log.WarnContext(ctx, "database unavailable", "err", err)
		return status.Error(codes.Unavailable, "database unavailable, retry later")
	}
	s.log.ErrorContext(ctx, "internal error", "err", err)
	return status.Error(codes.Internal, "internal error")
}
