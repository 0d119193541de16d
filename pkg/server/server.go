// Package server is the one way a pgfleet service starts: gRPC with interceptors, health,
// reflection, /metrics, graceful drain.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/pkg/latency"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
)

const (
	// maxRecvMsgSize fits a 10000-row UpsertStocks or IngestPrices batch with room to spare.
	maxRecvMsgSize = 32 << 20

	// Connections are recycled so that replicas added by an autoscaler get a share of the
	// long-lived HTTP/2 connections that an L4 load balancer pinned to the old ones. The grace
	// must outlast the longest export stream, which is cut when it runs out.
	maxConnectionAge      = 5 * time.Minute
	maxConnectionAgeGrace = 2 * time.Minute

	// streamWorkers is the number of goroutines kept to run calls; calls beyond them get a
	// goroutine of their own, as without workers. Enough for a full database pool's worth of
	// calls in flight.
	streamWorkers = 64

	// metricsShutdown bounds the wait for in-flight scrapes once gRPC has drained.
	metricsShutdown = 5 * time.Second
)

// LivenessService is the grpc.health.v1 service name that is SERVING while the process
// serves, whatever its database does, until shutdown: for liveness probes. "" and the API's
// own names follow the pool, for readiness.
const LivenessService = "liveness"

// Options configures a Server. GRPCAddr and MetricsAddr are required.
type Options struct {
	// Name is the service name, e.g. "stock"; every log line carries it as "service".
	Name string
	// GRPCAddr is the gRPC listen address, e.g. ":50051"; "127.0.0.1:0" in tests.
	GRPCAddr string
	// MetricsAddr serves /metrics from the private registry and /healthz, which answers
	// HTTP 200 or 503 mirroring the gRPC health status ("?service=name" picks a service).
	MetricsAddr string
	// Drain bounds GracefulStop on shutdown (DRAIN_TIMEOUT); calls still running after it
	// are cancelled. Zero cancels them at once.
	Drain time.Duration
	// DefaultTimeout is the deadline given to unary calls that arrive without one, because the
	// pool has no acquire timeout of its own (DB_POOL_TIMEOUT feeds it). Zero means none.
	// Streams keep the caller's deadline.
	DefaultTimeout time.Duration
	// TLS, if set, serves gRPC over TLS (tlsfiles.Server.Config builds it); nil is plaintext.
	TLS *tls.Config
	// HealthAddr, if set, also serves grpc.health.v1 alone, in plaintext, for probes that
	// cannot speak TLS (Kubernetes gRPC probes). It reports the same statuses.
	HealthAddr string
	// Authorize, if set, admits each call before validation: it returns the context the
	// handler gets (carrying the caller), or the status error to answer with. auth.Authorizer
	// provides it; health and reflection calls reach it too.
	Authorize func(ctx context.Context, fullMethod string) (context.Context, error)
	// Validate, if set, checks each unary request, and the request of a server-streaming
	// call, before the handler runs. An error carrying a gRPC status (such as
	// *validate.Error) is returned as is; any other error becomes InvalidArgument. Messages
	// of client streams are the service's to check. Validate sees every service's requests,
	// health checks included, and should fail closed on types it does not know
	// (validate.NoRule): that refuses the call, except for grpc's own services (health,
	// reflection), which pass.
	Validate func(req any) error
	// Limits, if set, bounds what one caller may hold at once (see Limits); it runs after
	// Authorize, so that a caller with a token is known by it.
	Limits *Limits
	// Identify, with Limits, names the caller of a call: its subject (a token's "sub"), or
	// "" to know it by its address; exempt callers are not limited. nil: by address only.
	Identify func(ctx context.Context) (subject string, exempt bool)
	// Profiles serves net/http/pprof under /debug/pprof/ on the metrics listener
	// (PPROF_ENABLED). Off by default: the port answers anyone who reaches it, a profile
	// shows the code's paths, and a CPU profile or trace costs the service while it runs.
	Profiles bool
	// Log receives one line per call and the server's own events; nil means slog.Default().
	Log *slog.Logger
	// Unary and Stream, if set, run last, right before the handler (after validation): the
	// service's own per-call step, e.g. routing its reads (pkg/replica).
	Unary  grpc.UnaryServerInterceptor
	Stream grpc.StreamServerInterceptor
	// MissingReason, if set, hears of each status one of the registered services returned
	// without exactly one google.rpc.ErrorInfo, before the server gives it one from its code
	// (see apierr.Ensure). Tests fail on it (apptest.RequireReasons); in production the
	// miss is counted (pgfleet_grpc_errors_without_reason_total) and logged at debug.
	MissingReason func(ctx context.Context, fullMethod string, st *status.Status)
}

// Server is a gRPC server with pgfleet's interceptors, health and reflection, plus an HTTP
// listener for /metrics and /healthz. Register services, call WatchPool, then Run once.
type Server struct {
	opts    Options
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	reg     *prometheus.Registry
	metrics *grpcprom.ServerMetrics

	withoutReason *prometheus.CounterVec // statuses given an ErrorInfo by the safety net
	limiter       *limiter               // nil without Options.Limits

	grpcLis    net.Listener
	metricsLis net.Listener
	http       *http.Server

	healthGRPC *grpc.Server // nil unless Options.HealthAddr
	healthLis  net.Listener

	draining   context.Context // done once shutdown has begun; ends health Watch streams
	startDrain context.CancelFunc

	mu       sync.Mutex // guards watches; also orders SetServingStatus calls
	watches  []*watch
	watchers []Watcher
}

// New listens on both addresses at once, so that a busy port fails here rather than in Run,
// and builds the gRPC server with health and reflection already registered.
func New(opts Options) (*Server, error) {
	if opts.GRPCAddr == "" || opts.MetricsAddr == "" {
		return nil, errors.New("server: GRPCAddr and MetricsAddr are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.Name != "" {
		log = log.With("service", opts.Name)
	}

	grpcLis, err := net.Listen("tcp", opts.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("listen grpc: %w", err)
	}
	metricsLis, err := net.Listen("tcp", opts.MetricsAddr)
	if err != nil {
		grpcLis.Close()
		return nil, fmt.Errorf("listen metrics: %w", err)
	}
	var healthLis net.Listener
	if opts.HealthAddr != "" {
		if healthLis, err = net.Listen("tcp", opts.HealthAddr); err != nil {
			grpcLis.Close()
			metricsLis.Close()
			return nil, fmt.Errorf("listen health: %w", err)
		}
	}

	s := &Server{
		opts:       opts,
		log:        log,
		health:     health.NewServer(),
		reg:        prometheus.NewRegistry(),
		grpcLis:    grpcLis,
		metricsLis: metricsLis,
		healthLis:  healthLis,
	}
	s.draining, s.startDrain = context.WithCancel(context.Background())
	s.metrics = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets(latency.Buckets)))
	panics := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgfleet_grpc_panics_total",
		Help: "Panics recovered in gRPC handlers; each was answered with codes.Internal.",
	})
	s.withoutReason = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgfleet_grpc_errors_without_reason_total",
		Help: "Error statuses that left a handler without exactly one google.rpc.ErrorInfo; the server gave each one from its code.",
	}, []string{"grpc_method", "grpc_code"})
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		s.metrics,
		panics,
		s.withoutReason,
		buildinfo.NewCollector(),
	)
	if opts.TLS != nil {
		s.reg.MustRegister(tlsfiles.NewExpiryCollector("grpc", opts.TLS))
	}

	if opts.Limits != nil {
		if s.limiter, err = newLimiter(*opts.Limits, opts.Identify); err != nil {
			grpcLis.Close()
			metricsLis.Close()
			if healthLis != nil {
				healthLis.Close()
			}
			return nil, err
		}
		s.reg.MustRegister(s.limiter.refused, s.limiter.waiting)
	}
	unary, stream := s.interceptors(panics)
	creds := insecure.NewCredentials()
	if opts.TLS != nil {
		creds = credentials.NewTLS(opts.TLS)
	}
	serverOpts := []grpc.ServerOption{
		grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxRecvMsgSize(maxRecvMsgSize),
		// A request that is not protobuf answers MALFORMED_REQUEST, not INTERNAL (malformed.go).
		grpc.ForceServerCodecV2(newDecodeCodec()),
		// Calls run on long-lived workers whose stacks have grown already: a goroutine per
		// call starts small and spent a seventh of the CPU growing its stack through the
		// handler, pgx and the interceptors (profile of GetStock at 32 clients).
		grpc.NumStreamWorkers(streamWorkers),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			// Lower than grpc's 5-minute default, so clients that keep idle connections warm
			// (10 s pings and up) are not sent GOAWAY "too_many_pings".
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			// Detects dead peers (a crashed client, a dropped NAT entry) within ~1.5 minutes.
			Time:                  time.Minute,
			Timeout:               20 * time.Second,
			MaxConnectionAge:      maxConnectionAge,
			MaxConnectionAgeGrace: maxConnectionAgeGrace,
		}),
	}
	if h := telemetry.ServerHandler(); h != nil { // a span per call, when OTEL_* turn tracing on
		serverOpts = append(serverOpts, grpc.StatsHandler(h))
	}
	s.grpc = grpc.NewServer(serverOpts...)
	// Liveness says only that the process serves: a database outage must take replicas out
	// of rotation (readiness on "") without restarting them all.
	s.health.SetServingStatus(LivenessService, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc) // v1 and v1alpha: grpcurl still asks for v1alpha
	if healthLis != nil {
		// Its own server, so that nothing but health is reachable without TLS; Watch streams
		// end on shutdown like the main server's.
		s.healthGRPC = grpc.NewServer(grpc.ChainStreamInterceptor(s.endWatches))
		healthpb.RegisterHealthServer(s.healthGRPC, s.health)
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg, EnableOpenMetrics: true}))
	mux.HandleFunc("GET /healthz", s.serveHealthz)
	if opts.Profiles {
		HandleProfiles(mux)
	}
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// HandleProfiles serves net/http/pprof under /debug/pprof/ on mux: on the private metrics
// port, where `go tool pprof` can reach a running replica. Call it only when profiling was
// asked for (Options.Profiles, PPROF_ENABLED).
func HandleProfiles(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}

// RegisterService registers a service implementation; with it *Server is a
// grpc.ServiceRegistrar, so generated Register*Server functions accept it. Call it before Run.
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.grpc.RegisterService(desc, impl)
}

// Registry returns the server's private Prometheus registry, served on /metrics. It already
// holds the Go, process and gRPC server collectors, pgfleet_build_info and, with TLS, the
// certificate's expiry; pool, retry, lock and client metrics go here too.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Health returns the grpc.health.v1 server, for services that set statuses themselves.
func (s *Server) Health() *health.Server { return s.health }

// HealthAddr returns the address of the plaintext health listener, or "" without one.
func (s *Server) HealthAddr() string {
	if s.healthLis == nil {
		return ""
	}
	return s.healthLis.Addr().String()
}

// GRPCAddr returns the address the gRPC listener is bound to.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// MetricsAddr returns the address the /metrics and /healthz listener is bound to.
func (s *Server) MetricsAddr() string { return s.metricsLis.Addr().String() }

// Run serves gRPC and HTTP and runs the watchers given to WatchPool until ctx is done or a
// listener fails. It then sets every health status to NOT_SERVING, so balancers stop sending,
// drains in-flight calls for up to Options.Drain before cancelling the rest, and shuts the
// HTTP listener. It returns nil after a clean stop, or the listener's error.
func (s *Server) Run(ctx context.Context) error {
	s.metrics.InitializeMetrics(s.grpc) // here, because every service is registered by now
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		// ErrServerStopped: ctx was done before Serve started, which is a clean stop.
		if err := s.grpc.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve grpc: %w", err)
		}
		return nil
	})
	if s.healthGRPC != nil {
		g.Go(func() error {
			if err := s.healthGRPC.Serve(s.healthLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("serve health: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := s.http.Serve(s.metricsLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve metrics: %w", err)
		}
		return nil
	})
	s.mu.Lock()
	watchers := s.watchers
	s.mu.Unlock()
	for _, w := range watchers {
		g.Go(func() error {
			w.Run(gctx)
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		s.shutdown()
		return nil
	})
	s.log.Info("serving", "grpc_addr", s.GRPCAddr(), "metrics_addr", s.MetricsAddr())
	return g.Wait()
}

// shutdown drains gRPC, then closes the HTTP listener, so /metrics can be scraped during the drain.
func (s *Server) shutdown() {
	s.health.Shutdown()
	s.startDrain()
	s.log.Info("draining", "timeout", s.opts.Drain)
	start := time.Now()
	drained := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(drained)
	}()
	timer := time.NewTimer(s.opts.Drain)
	defer timer.Stop()
	select {
	case <-drained:
		s.log.Info("drained", "duration", time.Since(start))
	case <-timer.C:
		s.log.Warn("drain timed out, cancelling in-flight calls", "timeout", s.opts.Drain)
		// Stop cancels the handlers' contexts; it does not wait for handlers that ignore them.
		s.grpc.Stop()
	}

	if s.healthGRPC != nil {
		s.healthGRPC.Stop() // probes need no drain; their answer is already NOT_SERVING
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdown)
	defer cancel()
	if err := s.http.Shutdown(ctx); err != nil {
		s.log.Warn("metrics server shutdown", "err", err)
		s.http.Close()
	}
}
