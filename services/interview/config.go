package main

import (
	"context"
	"fmt"

	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
)

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	App         app.Config      // DATABASE_URL, DB_*, LOCK_WAIT_TIMEOUT, PAGE_TOKEN_KEY, DRAIN_TIMEOUT
	Evaluator   evaluate.Config // EVALUATOR_URL, EVALUATOR_TIMEOUT, EVALUATOR_BREAKER_*
	GRPCAddr    string          `env:"GRPC_ADDR, default=:50053" help:"gRPC listen address"`
	MetricsAddr string          `env:"METRICS_ADDR, default=:9103" help:"listen address of /metrics (Prometheus) and /healthz"`
}

// loadConfig reads cfg from env, as serving and `config` do.
func loadConfig(ctx context.Context, env envconfig.Lookuper) (config, error) {
	var cfg config
	if err := app.Read(ctx, env, &cfg); err != nil {
		return cfg, err
	}
	if err := cfg.Evaluator.Validate(); err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	return cfg, nil
}

// Validate reports settings serving would refuse before it reaches the database.
func (c config) Validate() error { return c.App.Validate() }
