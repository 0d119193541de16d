package main

import (
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
)

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	App         app.Config      // DATABASE_URL, DB_*, LOCK_WAIT_TIMEOUT, PAGE_TOKEN_KEY, DRAIN_TIMEOUT
	Evaluator   evaluate.Config // EVALUATOR_URL, EVALUATOR_TIMEOUT, EVALUATOR_BREAKER_*
	GRPCAddr    string          `env:"GRPC_ADDR, default=:50053"`
	MetricsAddr string          `env:"METRICS_ADDR, default=:9103"`
}
