// Package apptest runs a service inside a test the way its binary runs it, so tests cover the
// real wiring (config, migrations, server, health): Start runs a binary's run function,
// StartServer starts a service's server through app.Start for its API tests, and
// StartProcess runs a built binary.
package apptest

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// FreeAddr returns a loopback address whose port was free at the time of the call.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Service is a service started by Start.
type Service struct {
	Conn        *grpc.ClientConn // to its gRPC server
	GRPCAddr    string
	MetricsAddr string
}

// Start runs run with env as its environment; GRPC_ADDR and METRICS_ADDR get free ports
// and auth is authtest.Config unless env sets them. Conn calls as an admin. When tb ends,
// run's context is cancelled and tb fails unless run returns nil (a clean drain).
func Start(tb testing.TB, run app.RunFunc, env map[string]string) Service {
	tb.Helper()
	vars := map[string]string{"GRPC_ADDR": FreeAddr(tb), "METRICS_ADDR": FreeAddr(tb)}
	maps.Copy(vars, authtest.Env())
	for k, v := range env {
		vars[k] = v
	}
	runUntilEnd(tb, "run", func(ctx context.Context) error {
		return run(ctx, slog.New(slog.DiscardHandler), envconfig.MapLookuper(vars))
	})
	conn := Dial(tb, vars["GRPC_ADDR"], authtest.Admin(tb))
	return Service{Conn: conn, GRPCAddr: vars["GRPC_ADDR"], MetricsAddr: vars["METRICS_ADDR"]}
}

// StartServer starts a service's server through app.Start, as the service's binary does, for
// API tests that need what the binary keeps inside (the pool, the retrier, an API built their
// own way): the same interceptors (auth, validation, opts.Limits), migrations, health and
// DatabaseMonitor. app.Config is read from env over its defaults (app.Load), so each setting
// a test leaves out (retries and breaker, lock wait, pool, call deadline, drain) is the
// binary's; env gets a fresh database migrated with opts.Migrations, and authtest's auth,
// unless it sets them, and the server listens on loopback ports the system picks.
//
// register builds the API from svc.Base, registers it on svc.Server and returns the names of
// its services, whose health then follows the pool. The server runs until tb ends and must
// then drain cleanly; every error status its API answers must carry exactly one ErrorInfo
// (RequireReasons). conn calls as an admin.
func StartServer(tb testing.TB, opts app.Options, env map[string]string, register func(svc *app.Service) []string) (svc *app.Service, conn *grpc.ClientConn) {
	tb.Helper()
	vars := authtest.Env()
	maps.Copy(vars, env)
	if vars["DATABASE_URL"] == "" {
		vars["DATABASE_URL"] = pgtest.NewDBURL(tb, opts.Migrations)
	}
	log := slog.New(slog.DiscardHandler)
	var cfg app.Config
	if err := app.Load(tb.Context(), envconfig.MapLookuper(vars), &cfg, log); err != nil {
		tb.Fatal(err)
	}
	opts.GRPCAddr, opts.MetricsAddr = cmp.Or(opts.GRPCAddr, "127.0.0.1:0"), cmp.Or(opts.MetricsAddr, "127.0.0.1:0")
	opts.MissingReason = RequireReasons(tb)
	svc, err := app.Start(tb.Context(), cfg, opts, log)
	if err != nil {
		tb.Fatalf("app.Start: %v", err)
	}
	tb.Cleanup(svc.Close) // after the drain: cleanups run last-registered first
	names := register(svc)
	runUntilEnd(tb, "app.Service.Run", func(ctx context.Context) error { return svc.Run(ctx, names...) })
	return svc, Dial(tb, svc.Server.GRPCAddr(), authtest.Admin(tb))
}

// Load reads cfg, a pointer to a service's own config struct (server.Limits, say), from env
// over its defaults, as the binary reads it: for the settings StartServer's app.Config does
// not hold.
func Load(tb testing.TB, env map[string]string, cfg any) {
	tb.Helper()
	if err := envconfig.ProcessWith(tb.Context(), &envconfig.Config{Target: cfg, Lookuper: envconfig.MapLookuper(env)}); err != nil {
		tb.Fatalf("read config: %v", err)
	}
}

// runUntilEnd runs fn until tb ends, then cancels it and fails tb unless it returns nil.
func runUntilEnd(tb testing.TB, name string, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("%s: %v", name, err)
		}
	})
}

// Dial returns a plaintext connection to addr, closed when tb ends; opts are added, such as
// authtest.Admin for an admin's calls.
func Dial(tb testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// RequireReasons returns a server.Options.MissingReason that fails tb for each status a
// service answers without exactly one google.rpc.ErrorInfo (AIP-193). Set on the server of
// a service's API tests, it holds every error those tests provoke to the contract without
// an assertion of its own.
func RequireReasons(tb testing.TB) func(context.Context, string, *status.Status) {
	tb.Helper()
	var done atomic.Bool // a handler that ignored its cancelled context may end after tb
	tb.Cleanup(func() { done.Store(true) })
	return func(_ context.Context, method string, st *status.Status) {
		if !done.Load() {
			tb.Errorf("%s answered %v %q with %d ErrorInfos, want exactly 1 (use apierr)",
				method, st.Code(), st.Message(), apierr.Count(st))
		}
	}
}

// Call is one RPC of an outage test: its name and a call of it with valid arguments.
type Call struct {
	Name string
	Do   func(ctx context.Context) error
}

// RequireUnavailable makes every call, in order, rounds times, and fails tb unless each one
// answers UNAVAILABLE with reason DATABASE_UNAVAILABLE and a RetryInfo: for a test that has
// stopped the service's database, so that the first calls meet the retrier still retrying
// and later ones its open breaker, and both must tell the caller the same.
func RequireUnavailable(tb testing.TB, rounds int, calls ...Call) {
	tb.Helper()
	for round := range rounds {
		for _, c := range calls {
			ctx, cancel := context.WithTimeout(tb.Context(), time.Minute)
			start := time.Now()
			err := c.Do(ctx)
			cancel()
			st := status.Convert(err)
			tb.Logf("round %d: %s = %v %s in %v", round, c.Name, st.Code(), apierr.ReasonOf(err), time.Since(start).Round(time.Millisecond))
			var retry bool
			for _, d := range st.Details() {
				_, ok := d.(*errdetails.RetryInfo)
				retry = retry || ok
			}
			if st.Code() != codes.Unavailable || apierr.ReasonOf(err) != apierr.DatabaseUnavailable || !retry {
				tb.Errorf("round %d: %s with the database down = %v (reason %q, RetryInfo %t), want UNAVAILABLE, DATABASE_UNAVAILABLE with RetryInfo",
					round, c.Name, err, apierr.ReasonOf(err), retry)
			}
		}
	}
}

// AwaitHealth polls the health of service ("" for the server) until it is want, and
// returns how long that took; tb fails if it takes longer than within.
func AwaitHealth(tb testing.TB, conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus, within time.Duration) time.Duration {
	tb.Helper()
	hc := healthpb.NewHealthClient(conn)
	start := time.Now()
	var last any
	for time.Since(start) < within {
		ctx, cancel := context.WithTimeout(tb.Context(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
		cancel()
		if err == nil && resp.GetStatus() == want {
			return time.Since(start)
		}
		last = err
		if err == nil {
			last = resp.GetStatus()
		}
		time.Sleep(50 * time.Millisecond)
	}
	tb.Fatalf("health of %q not %v within %v; last: %v", service, want, within, last)
	return 0
}
