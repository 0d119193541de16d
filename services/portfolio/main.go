// Command portfolio serves pgfleet.portfolio.v1.PortfolioService and
// pgfleet.ops.v1.DatabaseMonitor over schema "portfolio", pricing trades with the stock service.
package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sethvargo/go-envconfig"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

func main() {
	app.Main(app.Binary[config]{Name: "portfolio", Run: run, Migrations: migrations.Set,
		About: "the portfolio service. It serves pgfleet.portfolio.v1.PortfolioService (users, " +
			"portfolios, trades, cash) and pgfleet.ops.v1.DatabaseMonitor over gRPC, from schema " +
			"\"portfolio\" of its PostgreSQL database, which it migrates at start; it prices trades " +
			"and positions with the stock service (STOCK_ADDR)."})
}

// run serves until ctx ends; env supplies the configuration (the process environment, or
// a map in tests).
func run(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error {
	var cfg config
	if err := app.Load(ctx, env, &cfg, log); err != nil {
		return err
	}
	svc, err := app.Start(ctx, cfg.App, app.Options{Name: "portfolio", GRPCAddr: cfg.GRPCAddr,
		MetricsAddr: cfg.MetricsAddr, Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}, log)
	if err != nil {
		return err
	}
	defer svc.Close() // after Run has drained

	// Prices come from the stock service, behind a deadline, retries and a circuit breaker.
	stock, err := svc.Dial("stock", cfg.Stock)
	if err != nil {
		return fmt.Errorf("dial stock service: %w", err)
	}
	defer stock.Close()

	portfoliov1.RegisterPortfolioServiceServer(svc.Server, api.New(api.Deps{Base: svc.Base,
		Stock: stockv1.NewStockServiceClient(stock), MaxPriceAge: cfg.MaxPriceAge}))
	return svc.Run(ctx, portfoliov1.PortfolioService_ServiceDesc.ServiceName)
}
