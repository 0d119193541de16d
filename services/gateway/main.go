// Command gateway serves the fleet's gRPC APIs as REST/JSON for browsers (grpc-gateway), plus
// GET /health, /monitoring/database, /openapi.json, /openapi.v3.json and an operator status
// page at /.
// It holds no state: the services check every call's bearer token themselves; it checks
// the token of /monitoring/database too, before asking them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sethvargo/go-envconfig"
	"golang.org/x/sync/errgroup"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

// Server limits: a JWT fits MaxHeaderBytes many times over; ReadTimeout bounds a slow
// upload (bodies are at most MAX_REQUEST_BYTES); responses have no write timeout, since a
// price export may stream for up to STREAM_TIMEOUT.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
	metricsShutdown   = 5 * time.Second
)

// endGrace is the part of a drain of d kept for requests ended at its end to send their
// last answer: a quarter, at most 2 s.
func endGrace(d time.Duration) time.Duration { return min(d/4, 2*time.Second) }

func main() {
	logGRPCErrors()
	app.Main(app.Binary[config]{Name: "gateway", Run: run, Load: loadConfig, Healthz: true,
		About: "the REST gateway. It serves the fleet's gRPC APIs (stock, portfolio, interview) as " +
			"REST/JSON for browsers, plus GET /health (every service's health), /monitoring/database, " +
			"/openapi.json, /openapi.v3.json and an operator status page at /; it holds no state and " +
			"no database."})
}

// run serves until ctx ends, then drains; env supplies the configuration (the process
// environment, or a map in tests).
func run(ctx context.Context, log *slog.Logger, env envconfig.Lookuper) error {
	log = log.With("service", "gateway")
	cfg, err := loadConfig(ctx, env)
	if err != nil {
		return err
	}
	log.Info("starting", "http_addr", cfg.HTTPAddr, "metrics_addr", cfg.MetricsAddr,
		"stock", cfg.Stock.Addr, "portfolio", cfg.Portfolio.Addr, "interview", cfg.Interview.Addr,
		"cors_allowed_origins", cfg.CORSAllowedOrigins, "max_request_bytes", cfg.MaxRequestBytes,
		"max_in_flight", cfg.MaxInFlight, "max_queued", cfg.MaxQueued, "max_connections", cfg.MaxConnections,
		"max_watch_streams", cfg.MaxWatchStreams, "sse_heartbeat", cfg.SSEHeartbeat,
		"stream_timeout", cfg.StreamTimeout, "tls", cfg.TLS.Enabled(), "auth_disabled", cfg.Auth.Disabled,
		"pprof", cfg.Profiles)

	tlsConfig, err := cfg.TLS.Config()
	if err != nil {
		return err
	}
	// /monitoring/database admits whom DatabaseMonitor admits; the gateway has no token of
	// its own: every call to a service carries its caller's.
	authz, err := auth.NewAuthorizer(cfg.Auth, auth.Policy{opsv1.DatabaseMonitor_ServiceDesc.ServiceName: app.MonitorAccess})
	if err != nil {
		return err
	}
	spec, err := openapi.Merged()
	if err != nil {
		return err
	}
	specV3, err := openapi.V3(spec)
	if err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildinfo.NewCollector())
	if tlsConfig != nil {
		reg.MustRegister(tlsfiles.NewExpiryCollector("https", tlsConfig))
	}
	ups, err := dialUpstreams(cfg, reg)
	if err != nil {
		return err
	}
	defer ups.close() // after the HTTP server has drained
	recent := history.New(cfg.History, reg, history.HTTP)
	go recent.Run(ctx)

	gw, err := gateway.New(ctx, gateway.Options{
		Upstreams:          ups.list,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		MaxRequestBytes:    cfg.MaxRequestBytes,
		MaxInFlight:        cfg.MaxInFlight,
		MaxQueued:          cfg.MaxQueued,
		MaxWatchStreams:    cfg.MaxWatchStreams,
		SSEHeartbeat:       cfg.SSEHeartbeat,
		HealthTimeout:      cfg.HealthTimeout,
		Authorize:          authz.Authorize,
		OpenAPI:            spec,
		OpenAPIV3:          specV3,
		Registry:           reg,
		Recent:             recent.Samples,
		Log:                log,
	})
	if err != nil {
		return err
	}

	// Both listen now, so that a busy port fails here rather than after start.
	httpLis, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen http: %w", err)
	}
	metricsLis, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		httpLis.Close()
		return fmt.Errorf("listen metrics: %w", err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	srv := &http.Server{
		Handler:           gw,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          errLog,
		BaseContext:       gw.BaseContext, // so that shutdown can end what outlives the drain
	}
	limited := newConnLimit(httpLis, cfg.MaxConnections, srv.SetKeepAlivesEnabled)
	srv.ConnContext = connRelease
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgfleet_gateway_http_connections_open",
		Help: "Connections open on HTTP_ADDR; at most MAX_CONNECTIONS, more wait to be accepted.",
	}, func() float64 { return float64(limited.open()) }))
	metricsMux := http.NewServeMux()
	metricsMux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	metricsMux.HandleFunc("GET /healthz", gw.ServeLiveness)
	if cfg.Profiles {
		server.HandleProfiles(metricsMux)
	}
	metrics := &http.Server{Handler: metricsMux, ReadHeaderTimeout: readHeaderTimeout, ErrorLog: errLog}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		var err error
		if tlsConfig != nil {
			err = srv.ServeTLS(limited, "", "") // the certificate comes from TLSConfig
		} else {
			err = srv.Serve(limited)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := metrics.Serve(metricsLis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve metrics: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		shutdown(log, gw, srv, metrics, cfg.Drain)
		return nil
	})
	log.Info("serving", "http", httpLis.Addr().String(), "metrics", metricsLis.Addr().String())
	return g.Wait()
}

// shutdown reports NOT_SERVING on /health and /healthz, so balancers stop sending, drains
// in-flight requests for up to drain (streams included), then ends the ones still running
// (gateway.EndRequests: a stream's last line says SHUTTING_DOWN, so its client can tell it
// from a complete one) and gives their answers the last part of drain to go out before it
// closes what is left; then it stops the metrics listener, which stays scrapable meanwhile.
func shutdown(log *slog.Logger, gw *gateway.Gateway, srv, metrics *http.Server, drain time.Duration) {
	gw.Drain()
	log.Info("draining", "timeout", drain)
	start := time.Now()
	grace := endGrace(drain)
	ctx, cancel := context.WithTimeout(context.Background(), drain-grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("drain timed out, ending open requests", "waited", drain-grace, "grace", grace)
		gw.EndRequests()
		gctx, gcancel := context.WithTimeout(context.Background(), grace)
		defer gcancel()
		if err := srv.Shutdown(gctx); err != nil { // waits for the answers just ended
			log.Warn("closing connections whose answers did not go out", "grace", grace, "err", err)
			srv.Close()
		}
	} else {
		log.Info("drained", "duration", time.Since(start))
	}
	ctx, cancel = context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	if err := metrics.Shutdown(ctx); err != nil {
		metrics.Close()
	}
}
