package app

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// RunFunc runs a service until ctx ends; env supplies its configuration (the process
// environment, or a map in tests).
type RunFunc func(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error

// Main is a service binary's main. With arguments it runs the subcommand they name (--help,
// --version, config, healthcheck, migrate) and exits with its code. Without, it serves:
// SIGINT and SIGTERM end run's context, logs are JSON on stderr at LOG_LEVEL (debug, info,
// warn or error; default info: debug adds a line per successful call), each line of a call
// with its trace_id and span_id, or its request_id; tracing follows the OTEL_* variables
// (telemetry.Setup; off without an endpoint, spans flushed after run), and a failed run
// exits 1.
func Main[C any](b Binary[C]) {
	if len(os.Args) > 1 {
		os.Exit(b.command(context.Background(), os.Args[1:], envconfig.OsLookuper(), os.Stdout, os.Stderr))
	}
	name, run := b.Name, b.Run
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var level slog.Level
	if err := level.UnmarshalText([]byte(cmp.Or(os.Getenv("LOG_LEVEL"), "info"))); err != nil {
		fmt.Fprintf(os.Stderr, "%s: LOG_LEVEL: %v\n", name, err)
		os.Exit(2)
	}
	// pkg/server adds service=name to its lines; telemetry adds trace or request ids
	log := slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level})))
	flush, err := telemetry.Setup(ctx, name, log) // OTEL_*: off unless an endpoint is set
	if err == nil {
		err = run(ctx, log, envconfig.OsLookuper())
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ferr := flush(fctx); ferr != nil {
			log.Warn(ferr.Error())
		}
		cancel()
	}
	stop()
	if err != nil {
		log.Error(name+" stopped", "err", err)
		os.Exit(1)
	}
}

// Load reads cfg (a pointer to a struct with env tags) from env and logs it; fields that hold
// secrets carry json:"-" and stay out of the log.
func Load(ctx context.Context, env envconfig.Lookuper, cfg any, log *slog.Logger) error {
	if err := Read(ctx, env, cfg); err != nil {
		return err
	}
	log.Info("starting", "config", cfg)
	return nil
}
