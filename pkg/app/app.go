// Package app starts a pgfleet service the one way they all start: pool, migrations, gRPC
// server with the fleet's interceptors (auth, validation, limits, a reason on every error),
// health tied to the pool, database monitor, retries and locks. A service's main (see Main)
// reads its config with Load, calls Start, builds its API from the Service's Base, registers
// it on Server and calls Run; its API tests start the same server through apptest.StartServer.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/dbmonitor"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
)

// Config is the environment every service reads; a service's config holds it beside its own
// settings (its listen addresses, whose defaults differ per service).
type Config struct {
	DB    pgpool.Config   // DATABASE_URL, DB_POOL_*, DB_HEALTH_INTERVAL
	Reads replica.Config  // DATABASE_READ_URL, MAX_REPLICA_LAG, REPLICA_CHECK_INTERVAL, REPLICA_WAIT
	Retry retry.Config    // DB_RETRY_*, DB_BREAKER_*
	Lock  lock.Config     // LOCK_WAIT_TIMEOUT
	Query query.Config    // PAGE_TOKEN_KEY
	Auth  auth.Config     // AUTH_DISABLED, JWT_*, SERVICE_TOKEN_FILE
	TLS   tlsfiles.Server // TLS_CERT_FILE, TLS_KEY_FILE: gRPC over TLS
	// History samples the service's traffic for DatabaseMonitor's recent (HISTORY_INTERVAL).
	History history.Config
	// Outbox is the change events' retention (OUTBOX_RETENTION), for services with an outbox.
	Outbox outbox.Config
	// HealthAddr serves gRPC health alone in plaintext, for probes that cannot speak TLS.
	HealthAddr string        `env:"HEALTH_ADDR" help:"plaintext listener serving only gRPC health, for probes when TLS is on; empty: none"`
	Drain      time.Duration `env:"DRAIN_TIMEOUT, default=20s" help:"bound of the graceful stop on SIGTERM: in-flight calls drain, then the pool closes"`
	// Profiles serves /debug/pprof on the metrics listener; off unless asked for.
	Profiles bool `env:"PPROF_ENABLED, default=false" help:"true: also serve net/http/pprof under /debug/pprof/ on METRICS_ADDR (it answers anyone who reaches the port)"`
}

// Validate reports what Start would refuse before it reaches the database: the pool's
// settings, auth, the TLS pair, the database breaker. `config` runs it, so an operator finds
// out without starting the service.
func (c Config) Validate() error {
	if err := c.DB.Validate(); err != nil {
		return err
	}
	if err := c.Reads.Validate(); err != nil {
		return err
	}
	if err := c.Auth.Validate(); err != nil {
		return err
	}
	if _, err := c.TLS.Config(); err != nil {
		return err
	}
	if err := c.Retry.Breaker.With(retry.BreakerDefaults).Validate(); err != nil {
		return fmt.Errorf("DB_BREAKER_*: %w", err)
	}
	return nil
}

// MonitorAccess is who may call a service's DatabaseMonitor, whose answer holds the pool,
// retry and lock figures and the server version: operators and the fleet's services. The
// gateway applies the same rule to /monitoring/database before it asks the services, which
// apply it again.
var MonitorAccess = auth.Roles(auth.RoleAdmin, auth.RoleService)

// Options say what the service is and where it listens.
type Options struct {
	Name        string // e.g. "stock": logs, metrics, DatabaseMonitor
	GRPCAddr    string
	MetricsAddr string
	Migrations  migrate.Set
	Validate    func(req any) error // the service's request validation, run before each handler
	// Policy says who may call each of the service's methods; DatabaseMonitor's rule (admin
	// or service) is added here.
	Policy auth.Policy
	// Routes says which of the service's methods may read on a replica (replica.Replica);
	// every other call runs on the primary.
	Routes replica.Routes
	// Limits, if set, bounds what one caller may hold of the service at once (see
	// server.Limits): a caller is its token's subject, else its address; the service role is
	// exempt.
	Limits *server.Limits
	// Outbox: the service writes change events to an outbox table in its schema (the
	// migrations create it with outbox.Migration); Start builds Base.Outbox and Run runs it.
	Outbox bool
	// MissingReason is server.Options.MissingReason: nil in a binary, which counts and logs
	// the miss; apptest.StartServer sets apptest.RequireReasons, so API tests fail on it.
	MissingReason func(ctx context.Context, fullMethod string, st *status.Status)
}

// Base is what every service's API runs on, as Start made it; each service's api.Deps
// embeds it beside what only that service needs.
type Base struct {
	// Pool is the primary's pool, for what must run there whatever the call: a session-level
	// lock held across a transaction, the pool's size.
	Pool *pgxpool.Pool
	// DB runs the service's statements where each call's route says (replica.DB): its store
	// and its transactions run on it.
	DB    *replica.DB
	Reads *replica.Router // DATABASE_READ_URL
	Retry *retry.Retrier  // DB_RETRY_*, DB_BREAKER_*
	Locks *lock.Locker    // LOCK_WAIT_TIMEOUT, in the service's namespace
	// Outbox is the service's change events (Options.Outbox), nil without.
	Outbox *outbox.Outbox
	// TokenKey signs page tokens (PAGE_TOKEN_KEY); replicas must share it.
	TokenKey string
	Log      *slog.Logger
}

// Service is a started service: the Base its API is built from, and the Server to register
// that API on before Run.
type Service struct {
	Base
	Server *server.Server

	name    string
	auth    auth.Config
	router  *replica.Router
	monitor *pgpool.Monitor
	recent  *history.Sampler
}

// Start opens the pool, applies the migrations and listens. The caller registers its API on
// Server, then calls Run; Close, deferred, closes the pool after Run has drained.
func Start(ctx context.Context, cfg Config, opts Options, log *slog.Logger) (*Service, error) {
	policy := auth.Policy{opsv1.DatabaseMonitor_ServiceDesc.ServiceName: MonitorAccess}
	maps.Copy(policy, opts.Policy)
	authz, err := auth.NewAuthorizer(cfg.Auth, policy)
	if err != nil {
		return nil, err
	}
	if cfg.Auth.Disabled {
		log.Warn("AUTH_DISABLED=true: every call runs as admin, without a token")
	}
	tlsConfig, err := cfg.TLS.Config()
	if err != nil {
		return nil, err
	}
	pool, err := pgpool.New(ctx, cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := migrate.Up(ctx, pool, opts.Migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	router, err := replica.New(ctx, pool, cfg.Reads, nil, log)
	if err != nil {
		pool.Close()
		return nil, err
	}
	// No read on a replica that has not replayed the migrations: its tables may lack what
	// this build reads, however small its lag in time.
	if err := router.SetFloorToPrimary(ctx); err != nil {
		router.Close()
		pool.Close()
		return nil, err
	}
	srv, err := server.New(server.Options{
		Name:           opts.Name,
		GRPCAddr:       opts.GRPCAddr,
		MetricsAddr:    opts.MetricsAddr,
		Drain:          cfg.Drain,
		DefaultTimeout: cfg.DB.Acquire, // the pool has no acquire timeout: calls get a deadline
		TLS:            tlsConfig,
		HealthAddr:     cfg.HealthAddr,
		Authorize:      authz.Authorize,
		Validate:       withMonitor(opts.Validate),
		Profiles:       cfg.Profiles,
		Limits:         opts.Limits,
		Identify:       identify(cfg.Auth.Disabled),
		Log:            log,
		MissingReason:  opts.MissingReason,
		Unary:          router.UnaryInterceptor(opts.Routes),
		Stream:         router.StreamInterceptor(opts.Routes),
	})
	if err != nil {
		router.Close()
		pool.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	monitor := pgpool.NewMonitor(pool, cfg.DB.Health, log)
	srv.Registry().MustRegister(pgpool.NewCollector(pool, monitor), router)
	var events *outbox.Outbox
	if opts.Outbox {
		if events, err = outbox.New(ctx, opts.Migrations.Schema, pool, cfg.Outbox, srv.Registry(), log); err != nil {
			router.Close()
			pool.Close()
			return nil, err
		}
	}
	return &Service{
		Base: Base{
			Pool:     pool,
			DB:       router.DB(),
			Reads:    router,
			Retry:    retry.New(cfg.Retry, srv.Registry()),
			Locks:    lock.New(lock.Config{Wait: cfg.Lock.Wait, Namespace: opts.Name}, srv.Registry()), // apart from other services' on a shared database
			Outbox:   events,
			TokenKey: cfg.Query.PageTokenKey,
			Log:      log,
		},
		Server:  srv,
		name:    opts.Name,
		auth:    cfg.Auth,
		router:  router,
		monitor: monitor,
		recent:  history.New(cfg.History, srv.Registry(), history.GRPC),
	}, nil
}

// Dial connects to another service (see client.Dial), sending this service's token on every
// call, and registers the client's metrics on the service's registry.
func (s *Service) Dial(peer string, cfg client.Config) (*client.Client, error) {
	creds, err := auth.ServiceCredentials(s.auth, s.name)
	if err != nil {
		return nil, err
	}
	var opts []grpc.DialOption
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	return client.Dial(peer, cfg, s.Server.Registry(), opts...)
}

// Run serves DatabaseMonitor beside the registered services, ties the health of "" and of
// each named service to the pool, samples the service's traffic for DatabaseMonitor, and
// serves until ctx ends; then it drains (see server.Server.Run).
func (s *Service) Run(ctx context.Context, services ...string) error {
	go s.recent.Run(ctx)
	go s.router.Run(ctx)
	if s.Outbox != nil {
		go s.Outbox.Run(ctx)
	}
	opsv1.RegisterDatabaseMonitorServer(s.Server, dbmonitor.New(s.name, s.Pool, s.Locks, s.Retry, s.recent, s.router))
	s.Server.WatchPool(s.monitor, append(services, opsv1.DatabaseMonitor_ServiceDesc.ServiceName)...)
	return s.Server.Run(ctx)
}

// Close closes the pools. Deferred right after Start, it runs after Run has drained.
func (s *Service) Close() {
	s.router.Close()
	s.Pool.Close()
}

// withMonitor adds to a service's Validate the rule of DatabaseMonitor, which Run serves
// beside every service: its request has nothing to check. A service's Validate refuses a
// request it has no case for (validate.NoRule).
func withMonitor(validate func(req any) error) func(req any) error {
	if validate == nil {
		return nil
	}
	return func(req any) error {
		if _, ok := req.(*opsv1.GetDatabaseStatusRequest); ok {
			return nil
		}
		return validate(req)
	}
}

// identify names a call's caller for server.Limits: its token's subject; the service role,
// the fleet's own calls (every trade's prices come through one service token), is exempt.
// Without auth every call runs as one admin, so callers are known by address.
func identify(authDisabled bool) func(context.Context) (string, bool) {
	return func(ctx context.Context) (string, bool) {
		p, ok := auth.FromContext(ctx)
		switch {
		case !ok || authDisabled:
			return "", false
		case p.Has(auth.RoleService):
			return "", true
		}
		return p.Subject, false
	}
}
