package main

import (
	"time"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/client"
)

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	App         app.Config    // DATABASE_URL, DB_*, LOCK_WAIT_TIMEOUT, PAGE_TOKEN_KEY, DRAIN_TIMEOUT
	Stock       client.Config `env:", prefix=STOCK_"` // STOCK_ADDR, STOCK_TIMEOUT, STOCK_BREAKER_*
	GRPCAddr    string        `env:"GRPC_ADDR, default=:50052" help:"gRPC listen address"`
	MetricsAddr string        `env:"METRICS_ADDR, default=:9102" help:"listen address of /metrics (Prometheus) and /healthz"`
	// MaxPriceAge: the oldest latest price a trade executes at; 0 takes any. Five days let
	// daily bars (timed at the start of their day) trade over a long weekend.
	MaxPriceAge time.Duration `env:"MAX_PRICE_AGE, default=120h" help:"oldest latest price a trade executes at (FAILED_PRECONDITION PRICE_TOO_OLD past it); 0: any"`
}

// Validate reports settings serving would refuse before it reaches the database.
func (c config) Validate() error { return c.App.Validate() }
