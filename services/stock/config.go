package main

import (
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
)

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	App         app.Config // DATABASE_URL, DB_*, LOCK_WAIT_TIMEOUT, PAGE_TOKEN_KEY, DRAIN_TIMEOUT
	GRPCAddr    string     `env:"GRPC_ADDR, default=:50051" help:"gRPC listen address"`
	MetricsAddr string     `env:"METRICS_ADDR, default=:9101" help:"listen address of /metrics (Prometheus) and /healthz"`
	// Limits: STREAMS_PER_CALLER, CALLS_PER_CALLER, CALL_QUEUE_PER_CALLER, TRUSTED_PROXIES.
	Limits server.Limits
	// Streams: STREAM_LIMIT, EXPORT_DB_CONNS, INGEST_DB_CONNS, INGEST_IDLE_TIMEOUT.
	Streams api.StreamLimits
	// Exports: EXPORT_WORKERS, EXPORT_RESUME_WINDOW, EXPORT_MAX_HELD.
	Exports api.ExportConfig
}

// Validate reports settings serving would refuse before it reaches the database.
func (c config) Validate() error { return c.App.Validate() }
