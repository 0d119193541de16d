// Package api serves pgfleet.portfolio.v1.PortfolioService over the store. Every write that
// moves cash or shares runs SERIALIZABLE through pkg/retry, holding the portfolio's exclusive
// lock, and is idempotent by request_id.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// Server implements portfoliov1.PortfolioServiceServer.
type Server struct {
	portfoliov1.UnimplementedPortfolioServiceServer

	pool   *pgxpool.Pool
	store  *store.Store
	retry  *retry.Retrier
	locks  *lock.Locker
	stock  stockv1.StockServiceClient
	log    *slog.Logger
	lists  lists
	safety safety
}

// safety is how writes protect themselves. Only tests weaken it, to prove that the
// invariant checker catches what isolation and locking prevent.
type safety struct {
	tx   pgx.TxOptions
	lock bool
}

var safe = safety{tx: pgx.TxOptions{IsoLevel: pgx.Serializable}, lock: true}

// readOnly reads several tables from one snapshot.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Deps are what a Server runs on.
type Deps struct {
	Pool     *pgxpool.Pool
	Retry    *retry.Retrier
	Locks    *lock.Locker
	Stock    stockv1.StockServiceClient // latest prices
	TokenKey string                     // signs page tokens; replicas must share it
	Log      *slog.Logger
}

// New returns a Server.
func New(d Deps) *Server {
	return &Server{
		pool: d.Pool, store: store.New(d.Pool), retry: d.Retry, locks: d.Locks, stock: d.Stock, log: d.Log,
		lists: newLists(d.TokenKey), safety: safe,
	}
}

// NewFrom is New as a portfoliov1.PortfolioServiceServer, for code that picks a constructor.
func NewFrom(d Deps) portfoliov1.PortfolioServiceServer { return New(d) }

// portfolioLock names the lock that serializes every change to a portfolio.
func portfolioLock(id int64) string { return "portfolio:" + strconv.FormatInt(id, 10) }

// write runs fn as one portfolio-changing transaction: SERIALIZABLE, retried on
// serialization failures and deadlocks, while holding the portfolio's exclusive lock.
//
// The lock is taken at session level before the transaction begins, not inside it: a
// SERIALIZABLE transaction's snapshot comes from its first statement, so a transaction that
// waited for the lock inside itself would read the state before the previous holder's commit
// and fail to serialize, again and again under contention. Holding it across retries keeps
// them from queueing behind other writers.
func (s *Server) write(ctx context.Context, portfolioID int64, fn func(st *store.Store) error) error {
	if !s.safety.lock {
		return s.retry.RunTx(ctx, s.pool, s.safety.tx, func(tx pgx.Tx) error { return fn(s.store.WithTx(tx)) })
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	release, err := s.locks.Hold(ctx, conn.Conn(), portfolioLock(portfolioID), lock.Exclusive)
	if err != nil {
		return err
	}
	defer release()
	return s.retry.RunTx(ctx, conn, s.safety.tx, func(tx pgx.Tx) error { return fn(s.store.WithTx(tx)) })
}

// grpcError turns a store error into a status; what every service shares goes to app.Status.
// Refusals the portfolio's state gives (overdraft, oversell, limit) are *apierr.Error where
// they are found.
func (s *Server) grpcError(ctx context.Context, err error) error {
	var missing *store.NotFoundError
	switch {
	case errors.As(err, &missing):
		return apierr.New(notFoundReason(missing.Kind), missing.Error(),
			map[string]string{missing.Field: fmt.Sprint(missing.Key)})
	case errors.Is(err, store.ErrNotFound):
		return apierr.New(apierr.NotFound, err.Error(), nil)
	case errors.Is(err, store.ErrConflict):
		return apierr.New(apierr.AlreadyExists, err.Error(), nil)
	}
	return app.Status(ctx, s.log, err)
}

// notFoundReason is the reason for a missing row of kind. Trades and cash movements are
// looked up only after the store said they exist, so they keep the plain NOT_FOUND.
func notFoundReason(kind string) apierr.Reason {
	switch kind {
	case "user":
		return apierr.UserNotFound
	case "portfolio":
		return apierr.PortfolioNotFound
	}
	return apierr.NotFound
}

// listRequest is the common shape of list calls.
func listRequest(filter, orderBy, token string, size int32, extra string) query.Request {
	return query.Request{Filter: filter, OrderBy: orderBy, PageToken: token, PageSize: size, Extra: extra}
}
