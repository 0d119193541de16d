package main

import (
	"time"

	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	DB    pgpool.Config // DATABASE_URL, DB_POOL_*, DB_HEALTH_INTERVAL
	Retry retry.Config  // DB_RETRY_*, DB_BREAKER_*
	Lock  lock.Config   // LOCK_WAIT_TIMEOUT
	Query query.Config  // PAGE_TOKEN_KEY
	Stock client.Config `env:", prefix=STOCK_"` // STOCK_ADDR, STOCK_TIMEOUT, STOCK_BREAKER_*

	GRPCAddr    string        `env:"GRPC_ADDR, default=:50052"`
	MetricsAddr string        `env:"METRICS_ADDR, default=:9102"`
	Drain       time.Duration `env:"DRAIN_TIMEOUT, default=20s"`
}
