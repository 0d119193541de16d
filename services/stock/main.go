// Command stock serves pgfleet.stock.v1.StockService and pgfleet.ops.v1.DatabaseMonitor
// over schema "stock".
package main

import (
	"context"
	"log/slog"

	"github.com/sethvargo/go-envconfig"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

func main() {
	app.Main(app.Binary[config]{Name: "stock", Run: run, Migrations: migrations.Set,
		About: "the stock service. It serves pgfleet.stock.v1.StockService (stocks, daily prices, " +
			"analyst recommendations) and pgfleet.ops.v1.DatabaseMonitor over gRPC, from schema \"stock\" " +
			"of its PostgreSQL database, which it migrates at start."})
}

// run serves until ctx ends; env supplies the configuration (the process environment, or
// a map in tests).
func run(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error {
	var cfg config
	if err := app.Load(ctx, env, &cfg, log); err != nil {
		return err
	}
	svc, err := app.Start(ctx, cfg.App, app.Options{Name: "stock", GRPCAddr: cfg.GRPCAddr,
		MetricsAddr: cfg.MetricsAddr, Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes, Outbox: true,
		Limits: &cfg.Limits}, log)
	if err != nil {
		return err
	}
	defer svc.Close() // after Run has drained

	srv := api.New(api.Deps{Base: svc.Base, Streams: cfg.Streams, Exports: cfg.Exports, Registry: svc.Server.Registry()})
	defer srv.Close() // before svc.Close: the snapshots held for resumes hold connections
	stockv1.RegisterStockServiceServer(svc.Server, srv)
	return svc.Run(ctx, stockv1.StockService_ServiceDesc.ServiceName)
}
