// Package api serves pgfleet.portfolio.v1.PortfolioService over the store, pricing trades
// with the stock service. New builds the Server from Deps: the service's shared parts
// (app.Base), the stock client and the oldest price a trade takes. Validate and Policy (any
// caller with a token; handlers keep users to their own portfolios) go to app.Start, whose
// interceptors run them before each handler. Every write that moves cash or shares runs as
// one REPEATABLE READ transaction through pkg/retry while holding the portfolio's exclusive
// lock (lockedWrite), and is idempotent by request_id. A write that changes a portfolio
// appends its event (TradeExecuted, CashMoved) to the service's outbox in that transaction;
// WatchPortfolioEvents streams them to the fleet's services, and WatchPortfolio values a portfolio
// again on its own events and on the stock service's price changes (priceFeed).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// Server implements portfoliov1.PortfolioServiceServer.
type Server struct {
	portfoliov1.UnimplementedPortfolioServiceServer

	pool  *pgxpool.Pool
	db    *replica.DB // where each call's route says: the analytics reads' transactions run on it
	store *store.Store
	retry *retry.Retrier
	locks *lock.Locker
	stock stockv1.StockServiceClient
	log   *slog.Logger
	lists lists

	// outbox takes the events of every write, in the write's transaction (TradeExecuted,
	// CashMoved), and feeds WatchPortfolio and WatchPortfolioEvents.
	outbox *outbox.Outbox
	// prices follows the stock service's latest prices for the WatchPortfolio streams.
	prices *priceFeed

	maxPriceAge time.Duration // 0: trades execute at a price of any age

	// write runs every portfolio-changing transaction: lockedWrite, the one way a binary has.
	// export_test.go puts weaker ones here (no lock, READ COMMITTED) to prove that the
	// invariant checker catches what the lock prevents.
	write func(ctx context.Context, portfolioID int64, fn func(tx pgx.Tx) error) error
}

// writeTx is how every write's transaction runs: REPEATABLE READ, inside the portfolio's
// exclusive lock (see lockedWrite).
//
// The lock, not the isolation level, is what makes a portfolio's writes serial, so
// SERIALIZABLE would add nothing but false conflicts:
//   - every statement that writes portfolio state (its cash, positions, trades, ledger) runs
//     inside write, and write takes the portfolio's exclusive lock before BEGIN and releases it
//     after COMMIT or ROLLBACK, on every replica (the lock is PostgreSQL's);
//   - so a transaction's snapshot, taken at its first statement, is later than the commit of
//     every earlier writer of the portfolio, and no other transaction writes the portfolio until
//     this one ends: every read of portfolio state inside it (the request_id lookup, cash,
//     the position) is current and stays so until COMMIT. The transactions of one portfolio
//     are therefore serial, in lock order, which is all SERIALIZABLE could give them;
//   - no invariant spans portfolios (cash = ledger, positions = trades and no overdraft or
//     oversell are each about one portfolio's rows, and a transaction reads and writes only
//     the rows of the portfolio it locked), so transactions of different portfolios need no
//     order between them.
//
// SERIALIZABLE took SIRead locks on whole index pages (portfolios_pkey and trades_pkey through
// the foreign key checks, the request_id indexes through the repeat lookup, positions_pkey),
// pages that transactions of other portfolios write, so they failed to serialize though no two
// of them touched the same rows: 220 to 844 serialization failures per 2,564 operations of the
// invariant workload on two instances, up to 29 of them ABORTED once the retries ran out; none
// since.
//
// REPEATABLE READ costs what READ COMMITTED costs and guards a writer that skips the lock (old
// and new replicas of a rollout that changes the lock's keys): every money move updates its
// portfolio's row, and an update of a row another transaction changed since the snapshot fails
// (40001, retried) instead of overwriting it, so unlocked moves of one portfolio still serialize
// (TestInvariants_unlockedRepeatableRead). TestInvariants_oneInstance and _twoInstances hold
// the locked path to the bank invariants with no retry at all; TestMoneyMoves_lockedWrites
// proves, from inside the transactions, that every write of portfolio state ran under the lock.
var writeTx = pgx.TxOptions{IsoLevel: pgx.RepeatableRead}

// readOnly reads several tables from one snapshot.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Deps are what a Server runs on.
type Deps struct {
	app.Base                            // with its Outbox (app.Options.Outbox): every write appends events to it
	Stock    stockv1.StockServiceClient // latest prices, and their changes (WatchStockEvents) for WatchPortfolio
	// MaxPriceAge is the oldest latest price a trade executes at (PRICE_TOO_OLD past it);
	// 0 takes any. A delisted stock's final price sells whatever its age.
	MaxPriceAge time.Duration
}

// New returns a Server.
func New(d Deps) *Server {
	s := &Server{
		pool: d.Pool, db: d.DB, store: store.New(d.DB), retry: d.Retry, locks: d.Locks, stock: d.Stock, log: d.Log,
		lists: newLists(d.TokenKey), maxPriceAge: d.MaxPriceAge, outbox: d.Outbox,
		prices: newPriceFeed(d.Stock, d.Log),
	}
	s.write = s.lockedWrite
	return s
}

// portfolioLock names the lock that serializes every change to a portfolio.
func portfolioLock(id int64) string { return "portfolio:" + strconv.FormatInt(id, 10) }

// lockedWrite runs fn as one portfolio-changing transaction (see writeTx), retried on
// transient errors, while holding the portfolio's exclusive lock. Every statement that
// changes a portfolio's state, or reads it to decide a change, belongs in fn, and so does the
// event that says so (s.outbox.Append): a retry reruns fn in a new transaction, so an event
// is written exactly when its change commits.
//
// The lock is taken at session level before the transaction begins, not inside it: the
// transaction's snapshot comes from its first statement, so a transaction that waited for the
// lock inside itself would read the state before the previous holder's commit. Holding it
// across retries keeps them from queueing behind other writers.
func (s *Server) lockedWrite(ctx context.Context, portfolioID int64, fn func(tx pgx.Tx) error) error {
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
	return s.retry.RunTx(ctx, conn, writeTx, fn)
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
