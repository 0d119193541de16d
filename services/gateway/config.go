package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
)

// config is read from the environment; the README's gateway table lists every variable.
type config struct {
	HTTPAddr    string `env:"HTTP_ADDR, default=:8080" help:"listen address of REST, /health, /monitoring/database, /openapi.json, /openapi.v3.json and the status page /"`
	MetricsAddr string `env:"METRICS_ADDR, default=:9100" help:"listen address of /metrics (Prometheus) and /healthz (the gateway's own liveness: 200, 503 while draining)"` // /metrics and /healthz

	Stock     client.Config `env:", prefix=STOCK_"`     // STOCK_ADDR, STOCK_TIMEOUT, STOCK_RETRY_MAX_ATTEMPTS, STOCK_BREAKER_*
	Portfolio client.Config `env:", prefix=PORTFOLIO_"` // PORTFOLIO_ADDR, ...
	Interview client.Config `env:", prefix=INTERVIEW_"` // INTERVIEW_ADDR, ...

	// CORSAllowedOrigins may call the API from a browser page of theirs; empty: none.
	CORSAllowedOrigins []string `env:"CORS_ALLOWED_ORIGINS" help:"comma-separated origins whose pages may call the API from a browser; * allows any; empty: none"`
	// MaxRequestBytes bounds a request body; a larger one is answered 413.
	MaxRequestBytes int64 `env:"MAX_REQUEST_BYTES, default=4194304" help:"largest request body; a larger one is answered 413"`
	// MaxInFlight bounds the API requests served at once, MaxQueued those waiting for one of
	// them to end; past both a request is answered 429 GATEWAY_BUSY. They bound the
	// gateway's memory whatever the number of clients.
	MaxInFlight int `env:"MAX_IN_FLIGHT, default=128" help:"API requests served at once; past it and MAX_QUEUED, 429 GATEWAY_BUSY"`
	MaxQueued   int `env:"MAX_QUEUED, default=1024" help:"API requests waiting for one of MAX_IN_FLIGHT to end; past it, 429 GATEWAY_BUSY"`
	// MaxConnections bounds the connections open on HTTP_ADDR; more wait to be accepted
	// (connlimit.go).
	MaxConnections int `env:"MAX_CONNECTIONS, default=256" help:"connections open on HTTP_ADDR at once; more wait to be accepted"`
	// StreamTimeout is the deadline of streaming calls (the NDJSON price export): the
	// upstream clients' TIMEOUT is for unary calls.
	StreamTimeout time.Duration `env:"STREAM_TIMEOUT, default=10m" help:"deadline of streaming calls (the NDJSON price export, REST IngestPrices, Watch streams: EventSource then reconnects)"`
	// MaxWatchStreams bounds the Watch streams (server-sent events) open at once; they are
	// not counted in MAX_IN_FLIGHT, since each lasts as long as its client stays.
	MaxWatchStreams int `env:"MAX_WATCH_STREAMS, default=10000" help:"Watch streams (server-sent events, GET ...:watch) open at once, outside MAX_IN_FLIGHT; past it, 429 GATEWAY_BUSY"`
	// SSEHeartbeat is the longest a Watch stream goes without a write: a comment line then
	// keeps proxies from closing it as idle.
	SSEHeartbeat time.Duration `env:"SSE_HEARTBEAT, default=15s" help:"a Watch stream without an event for this long gets a comment line (: heartbeat), so that proxies keep it open; 0: none"`
	// HealthTimeout bounds each upstream check of /health and /monitoring/database.
	HealthTimeout time.Duration `env:"HEALTH_TIMEOUT, default=1s" help:"bound of each service's check in /health and /monitoring/database"`
	// Drain bounds the wait for in-flight requests on shutdown.
	Drain time.Duration `env:"DRAIN_TIMEOUT, default=20s" help:"bound of the graceful stop on SIGTERM: in-flight requests drain, streams included"`
	// Profiles serves /debug/pprof on the metrics listener; off unless asked for.
	Profiles bool `env:"PPROF_ENABLED, default=false" help:"true: also serve net/http/pprof under /debug/pprof/ on METRICS_ADDR (it answers anyone who reaches the port)"`

	// History samples the gateway's HTTP traffic for /monitoring/recent (HISTORY_INTERVAL).
	History history.Config

	TLS  tlsfiles.Server // TLS_CERT_FILE, TLS_KEY_FILE: HTTPS on HTTP_ADDR
	Auth auth.Config     // AUTH_DISABLED, JWT_*, SERVICE_TOKEN_FILE: the gateway's service token
}

// loadConfig reads cfg from env. Which upstream calls may be retried is no setting: the
// upstream clients retry the RPCs whose protos declare idempotency_level (pkg/client).
func loadConfig(ctx context.Context, env envconfig.Lookuper) (config, error) {
	var cfg config
	if err := app.Read(ctx, env, &cfg); err != nil {
		return cfg, err
	}
	switch {
	case cfg.MaxRequestBytes <= 0:
		return cfg, fmt.Errorf("read config: MAX_REQUEST_BYTES must be positive, got %d", cfg.MaxRequestBytes)
	case cfg.StreamTimeout <= 0 || cfg.HealthTimeout <= 0:
		return cfg, fmt.Errorf("read config: STREAM_TIMEOUT and HEALTH_TIMEOUT must be positive")
	case cfg.MaxWatchStreams <= 0 || cfg.SSEHeartbeat < 0:
		return cfg, fmt.Errorf("read config: MAX_WATCH_STREAMS must be positive and SSE_HEARTBEAT not negative, got %d and %s",
			cfg.MaxWatchStreams, cfg.SSEHeartbeat)
	case cfg.MaxInFlight <= 0 || cfg.MaxQueued < 0 || cfg.MaxConnections <= 0:
		return cfg, fmt.Errorf("read config: MAX_IN_FLIGHT and MAX_CONNECTIONS must be positive and MAX_QUEUED not negative, got %d, %d and %d",
			cfg.MaxInFlight, cfg.MaxConnections, cfg.MaxQueued)
	}
	return cfg, nil
}

// Validate reports settings serving would refuse (see loadConfig for the rest): auth and the
// TLS pair.
func (c config) Validate() error {
	if err := c.Auth.Validate(); err != nil {
		return err
	}
	_, err := c.TLS.Config()
	return err
}
