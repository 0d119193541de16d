package main

import "github.com/pgfleet/pgfleet/pkg/app"

// config is read from the environment; the README's configuration table lists every variable.
type config struct {
	App         app.Config // DATABASE_URL, DB_*, LOCK_WAIT_TIMEOUT, PAGE_TOKEN_KEY, DRAIN_TIMEOUT
	GRPCAddr    string     `env:"GRPC_ADDR, default=:50051"`
	MetricsAddr string     `env:"METRICS_ADDR, default=:9101"`
}
