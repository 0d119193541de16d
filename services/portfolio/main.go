// Command portfolio serves pgfleet.portfolio.v1.PortfolioService and pgfleet.ops.v1.DatabaseMonitor
// over schema "portfolio", pricing trades with the stock service.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/dbmonitor"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)) // pkg/server adds service=portfolio to its lines
	err := run(ctx, log, envconfig.OsLookuper())
	stop()
	if err != nil {
		log.Error("portfolio stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; env supplies the configuration (the process environment, or
// a map in tests).
func run(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error {
	var cfg config
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &cfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	log.Info("starting", "config", cfg) // secrets carry json:"-"

	pool, err := pgpool.New(ctx, cfg.DB)
	if err != nil {
		return fmt.Errorf("open pool: %w", err)
	}
	defer pool.Close() // last: after the server has drained
	if err := migrate.Up(ctx, pool, migrations.Set); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}

	srv, err := server.New(server.Options{
		Name:           "portfolio",
		GRPCAddr:       cfg.GRPCAddr,
		MetricsAddr:    cfg.MetricsAddr,
		Drain:          cfg.Drain,
		DefaultTimeout: cfg.DB.Acquire,
		Validate:       api.Validate,
		Log:            log,
	})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	retrier := retry.New(cfg.Retry, srv.Registry())
	locks := lock.New(cfg.Lock)
	monitor := pgpool.NewMonitor(pool, cfg.DB.Health, log)
	srv.Registry().MustRegister(pgpool.NewCollector(pool, monitor))

	// Prices come from the stock service, behind a deadline, retries and a circuit breaker.
	stockConn, err := client.Dial("stock", cfg.Stock, srv.Registry())
	if err != nil {
		return fmt.Errorf("dial stock service: %w", err)
	}
	defer stockConn.Close()

	portfoliov1.RegisterPortfolioServiceServer(srv, api.New(api.Deps{Pool: pool, Retry: retrier, Locks: locks,
		Stock: stockv1.NewStockServiceClient(stockConn), TokenKey: cfg.Query.PageTokenKey, Log: log}))
	opsv1.RegisterDatabaseMonitorServer(srv, dbmonitor.New("portfolio", pool, locks, retrier))
	srv.WatchPool(monitor, portfoliov1.PortfolioService_ServiceDesc.ServiceName, opsv1.DatabaseMonitor_ServiceDesc.ServiceName)
	log.Info("serving", "grpc", srv.GRPCAddr(), "metrics", srv.MetricsAddr())
	return srv.Run(ctx)
}
