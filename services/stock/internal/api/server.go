// Package api serves pgfleet.stock.v1.StockService over the store. New builds the Server
// from Deps: the service's shared parts (app.Base) and the StreamLimits that keep price
// streams from taking the pool the reads need. Validate and Policy (public reads, writes
// for the ingest and admin roles) go to app.Start, whose interceptors run them before each
// handler; handlers convert between protobuf and store types, run transactions through
// pkg/retry, and turn errors into statuses with reasons (grpcError, then app.Status).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/outbox"
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
	// outbox takes the events of each change in its transaction and feeds the Watch streams.
	outbox *outbox.Outbox

	shares streamShares
	export *exporter
}

// Deps are what a Server runs on.
type Deps struct {
	// Base must hold an Outbox (app.Options.Outbox): every write appends its events to it.
	app.Base
	// Streams bound the price streams' share of the pool (the zero value: a quarter of it
	// each for exports and ingests, no other bound).
	Streams StreamLimits
	// Exports: EXPORT_WORKERS, EXPORT_RESUME_WINDOW, EXPORT_MAX_HELD (the zero value: their
	// defaults).
	Exports ExportConfig
	// Registry takes the service's own metrics (the export figures); nil: not exported.
	Registry prometheus.Registerer
}

// New returns a Server.
func New(d Deps) *Server {
	return &Server{
		pool:   d.Pool,
		store:  store.New(d.DB),
		retry:  d.Retry,
		locks:  d.Locks,
		log:    d.Log,
		lists:  newLists(d.TokenKey),
		outbox: d.Outbox,
		shares: newStreamShares(d.Streams, d.Pool.Config().MaxConns),
		export: newExporter(d.Exports, d.Registry, d.Reads, d.Pool),
	}
}

// stockLock names the lock that guards a stock's prices.
func stockLock(symbol string) string { return "stock:" + symbol }

// grpcError turns a store error into a status; what every service shares goes to app.Status.
func (s *Server) grpcError(ctx context.Context, err error) error {
	var unknown *store.UnknownStocksError
	var missing *store.NotFoundError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &unknown):
		var v validate.Violations
		for _, sym := range unknown.Symbols {
			v.Add("symbol", "unknown stock %q", sym)
		}
		bad := v.Err().(*validate.Error)
		bad.Reason, bad.Metadata = apierr.UnknownStock, map[string]string{"symbols": strings.Join(unknown.Symbols, ",")}
		return bad
	case errors.As(err, &pgErr) && pgErr.Code == pgerrcode.ForeignKeyViolation:
		// A stock deleted between the existence check and the write.
		return apierr.New(apierr.StockDeleted, "a referenced stock no longer exists", nil)
	case errors.As(err, &missing):
		return apierr.New(apierr.StockNotFound, missing.Error(), // `stock "ZZZZ": not found`
			map[string]string{missing.Field: fmt.Sprint(missing.Key)})
	}
	return app.Status(ctx, s.log, err)
}
