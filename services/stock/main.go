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
	pipeline "github.com/pgfleet/pgfleet/services/stock/internal/ingest"
	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/files"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/polygon"
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

	sources := ingestSources(cfg.Ingest)
	available := make(map[string]bool, len(sources))
	for name := range sources {
		available[name] = true
	}
	srv := api.New(api.Deps{Base: svc.Base, Streams: cfg.Streams, Scoreboard: cfg.Scoreboard, Exports: cfg.Exports,
		Registry: svc.Server.Registry(), IngestSources: available})
	defer srv.Close() // before svc.Close: the snapshots held for resumes hold connections
	stockv1.RegisterStockServiceServer(svc.Server, srv)
	if every := cfg.Scoreboard.Refresh; every > 0 {
		metrics := srv.ScoreboardMetrics(svc.Server.Registry())
		refreshCtx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			metrics.Run(refreshCtx, every)
		}()
		defer func() { cancel(); <-done }() // before svc.Close closes the pool under a refresh
	}

	// The ingestion pipeline: every process stands by, one leads. It stops with ctx, before
	// the pool closes.
	leaderDone := make(chan struct{})
	if cfg.Ingest.Enabled {
		leader := pipeline.New(pipeline.Deps{Config: cfg.Ingest, Pool: svc.Pool, Sink: srv, Sources: sources,
			Registry: svc.Server.Registry(), Log: log})
		go func() {
			defer close(leaderDone)
			_ = leader.Run(ctx) // returns ctx's error
		}()
	} else {
		close(leaderDone)
	}
	err = svc.Run(ctx, stockv1.StockService_ServiceDesc.ServiceName)
	<-leaderDone
	return err
}

// ingestSources are the connectors this deployment configured, each made afresh per run:
// files with INGEST_DIR, the HTTP provider (Polygon.io's aggregates format) with
// INGEST_HTTP_BASE_URL.
func ingestSources(cfg pipeline.Config) pipeline.Sources {
	sources := pipeline.Sources{}
	if cfg.Dir != "" {
		sources["files"] = func() (source.Source, error) { return files.New(cfg.Dir), nil }
	}
	if cfg.HTTP.BaseURL != "" {
		sources["polygon"] = func() (source.Source, error) {
			src, err := polygon.New(polygon.Config{BaseURL: cfg.HTTP.BaseURL, APIKey: cfg.HTTP.APIKey, Timeout: cfg.HTTP.Timeout})
			if err != nil {
				return nil, err // not a nil *Source in a non-nil interface
			}
			return src, nil
		}
	}
	return sources
}
