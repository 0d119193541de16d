// Package pgpool opens the pgx pool a service talks to PostgreSQL through, watches the
// database's health with a pinging Monitor, and exports pool and ping figures to Prometheus.
package pgpool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// Config is the pool's environment, read with go-envconfig. The binary's config embeds it.
type Config struct {
	// URL is the postgres:// URL of the service's database and role; it holds the password,
	// so it is never logged or rendered as JSON. It may list several hosts, as libpq does
	// (postgres://u@h1:5432,h2:5432/db?target_session_attrs=read-write): pgx tries them in
	// order and keeps the first that accepts writes, so after a failover the pool reconnects
	// to the promoted standby without a restart. Each host then gets HostConnectTimeout to
	// answer unless the URL sets connect_timeout.
	URL string `env:"DATABASE_URL, required" json:"-" help:"postgres:// URL (or keyword/value string) of the service's database and role; its password is secret. Several hosts follow a failover: postgres://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write" secret:"password"`
	// MaxConns caps the pool's connections.
	MaxConns int32 `env:"DB_POOL_SIZE, default=20" help:"most connections the pool opens"`
	// MinIdle is how many idle connections the pool keeps ready, so a burst does not wait for
	// connection setup.
	MinIdle int32 `env:"DB_POOL_MIN_IDLE, default=2" help:"idle connections kept ready, so a burst does not wait for connection setup"`
	// Acquire bounds how long a call may wait, for a connection included. pgxpool has no acquire
	// timeout of its own (it waits as long as the context allows), so New does not use it: the
	// gRPC server applies it as the default deadline of every call that arrives without a
	// shorter one.
	Acquire time.Duration `env:"DB_POOL_TIMEOUT, default=30s" help:"deadline given to calls that arrive without a shorter one (bounds the wait for a connection)"`
	// Recycle is a connection's maximum lifetime; each gets up to a tenth more at random, so
	// connections opened together are not all replaced at once.
	Recycle time.Duration `env:"DB_POOL_RECYCLE, default=30m" help:"longest life of a connection (each gets up to 10% more at random)"`
	// Health is how often the pool tops up idle connections and retires old ones, and how often
	// a Monitor pings.
	Health time.Duration `env:"DB_HEALTH_INTERVAL, default=2s" help:"period of the health ping (which drives gRPC health) and of pool maintenance"`
}

// Validate reports settings New would refuse without reaching the database.
func (cfg Config) Validate() error {
	if _, err := pgxpool.ParseConfig(cfg.URL); err != nil { // its errors redact the password
		return fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if cfg.MaxConns < 0 || cfg.MinIdle < 0 {
		return fmt.Errorf("DB_POOL_SIZE (%d) and DB_POOL_MIN_IDLE (%d) must not be negative", cfg.MaxConns, cfg.MinIdle)
	}
	if cfg.MaxConns > 0 && cfg.MinIdle > cfg.MaxConns {
		return fmt.Errorf("DB_POOL_MIN_IDLE (%d) exceeds DB_POOL_SIZE (%d)", cfg.MinIdle, cfg.MaxConns)
	}
	return nil
}

// New returns a pool configured by cfg. Zero fields keep pgxpool's defaults. It does not wait
// for the database: a service can start, report NOT_SERVING and recover once the database is up.
// An application_name of the binary's name is set unless the URL has one, so pg_stat_activity
// shows who holds each connection.
func New(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.URL) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinIdle > pc.MaxConns {
		return nil, fmt.Errorf("DB_POOL_MIN_IDLE (%d) exceeds DB_POOL_SIZE (%d)", cfg.MinIdle, pc.MaxConns)
	}
	pc.MinIdleConns = cfg.MinIdle
	if cfg.Recycle > 0 {
		pc.MaxConnLifetime = cfg.Recycle
		pc.MaxConnLifetimeJitter = cfg.Recycle / 10
	}
	if cfg.Health > 0 {
		pc.HealthCheckPeriod = cfg.Health
	}
	if pc.ConnConfig.ConnectTimeout == 0 && severalHosts(&pc.ConnConfig.Config) {
		pc.ConnConfig.ConnectTimeout = HostConnectTimeout
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = filepath.Base(os.Args[0])
	}
	pc.ShouldPing = shouldPing
	if t := telemetry.PgxTracer(); t != nil { // a span per query of a traced call
		pc.ConnConfig.Tracer = t
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	return pool, nil
}

// HostConnectTimeout bounds the connection to each host of a DATABASE_URL that lists several
// and sets no connect_timeout. Without a bound pgx tries the hosts in order within the
// caller's deadline alone: a host that accepts and never answers (a frozen server, a network
// partition, an address that drops packets) would hold every new connection until that
// deadline, and the promoted standby listed after it would never be tried.
const HostConnectTimeout = 5 * time.Second

// severalHosts reports whether cfg names more than one host:port (pgconn's fallbacks also
// repeat a host, with and without TLS, for sslmode=prefer).
func severalHosts(cfg *pgconn.Config) bool {
	for _, f := range cfg.Fallbacks {
		if f.Host != cfg.Host || f.Port != cfg.Port {
			return true
		}
	}
	return false
}

// shouldPing decides whether pgxpool pings a connection before lending it. pgxpool pings only
// connections idle over a second, so one whose backend was terminated (an administrator's
// pg_terminate_backend, a failover, a server restart) less than a second ago fails the next
// query sent on it. Checking whether the server has already written to or closed an idle
// connection costs no round trip and catches that case too.
func shouldPing(ctx context.Context, p pgxpool.ShouldPingParams) bool {
	if p.IdleDuration > time.Second {
		return true
	}
	pc := p.Conn.PgConn()
	// After a slow write pgconn may leave a background read parked on the socket, and peeking
	// would wait behind it for good. SyncConn ends that read (with a ping, only in that case).
	if err := pc.SyncConn(ctx); err != nil {
		return true
	}
	return readable(pc.Conn())
}
