package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"
)

// RunFunc runs a service until ctx ends; env supplies its configuration (the process
// environment, or a map in tests).
type RunFunc func(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error

// Main is a service binary's main: SIGINT and SIGTERM end run's context, logs are JSON on
// stderr, and a failed run exits 1.
func Main(name string, run RunFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)) // pkg/server adds service=name to its lines
	err := run(ctx, log, envconfig.OsLookuper())
	stop()
	if err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}

// Load reads cfg (a pointer to a struct with env tags) from env and logs it; fields that hold
// secrets carry json:"-" and stay out of the log.
func Load(ctx context.Context, env envconfig.Lookuper, cfg any, log *slog.Logger) error {
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: cfg, Lookuper: env}); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	log.Info("starting", "config", cfg)
	return nil
}
