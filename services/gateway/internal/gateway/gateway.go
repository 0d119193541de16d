// Package gateway is the fleet's HTTP edge: grpc-gateway's REST/JSON translation of every
// service's API, with JSON errors, request limits, CORS and metrics around it, plus the
// gateway's own endpoints: /health, /monitoring/database (and its live feed,
// /monitoring/database:watch), /monitoring/recent, /openapi.json, /openapi.v3.json, a status
// page and a live view (/live). The Watch routes answer server-sent events (sse.go).
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/history"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

// Upstream is one service behind the gateway.
type Upstream struct {
	// Name is the service's name in /health, /monitoring/database and metrics, e.g. "stock".
	Name string
	// Conn reaches the service; its deadlines, retries and breaker are the caller's choice.
	Conn grpc.ClientConnInterface
	// Register adds the service's REST routes (generated Register*HandlerClient calls).
	Register func(ctx context.Context, mux *runtime.ServeMux, conn grpc.ClientConnInterface) error
}

// Options configures a Gateway.
type Options struct {
	Upstreams []Upstream
	// CORSAllowedOrigins may call the API from their pages; empty allows no other origin.
	CORSAllowedOrigins []string
	// MaxRequestBytes bounds request bodies; a larger one is answered 413.
	MaxRequestBytes int64
	// MaxInFlight (> 0) bounds the API requests served at once, MaxQueued (>= 0) those
	// waiting for one to end; a request past both is answered 429 (inflight.go).
	MaxInFlight, MaxQueued int
	// HealthTimeout bounds each upstream's health check and database status call.
	HealthTimeout time.Duration
	// Authorize admits the caller of /monitoring/database as auth.Authorizer admits a call
	// of DatabaseMonitor (role service or admin); nil admits anyone. The caller's own
	// Authorization goes on to the services, which check it again.
	Authorize func(ctx context.Context, fullMethod string) (context.Context, error)
	// OpenAPI is the document served at /openapi.json (OpenAPI 2.0).
	OpenAPI []byte
	// OpenAPIV3 is the same document in OpenAPI 3.0, served at /openapi.v3.json.
	OpenAPIV3 []byte
	// Registry receives the HTTP metrics; nil keeps them unregistered.
	Registry prometheus.Registerer
	// Recent returns the gateway's own recent samples (a history.Sampler of Registry's HTTP
	// metrics), served at /monitoring/recent; nil serves none.
	Recent func() []history.Sample
	// MaxWatchStreams bounds the Watch streams (server-sent events) served at once, outside
	// MaxInFlight; one past it is answered 429 (sse.go). Zero means 10,000.
	MaxWatchStreams int
	// SSEHeartbeat is the longest a Watch stream stays without a write: a comment line goes
	// out after it, so that proxies keep the stream open. Zero sends none.
	SSEHeartbeat time.Duration
	// WatchWriteTimeout bounds each write to a Watch stream's client: one that stopped
	// reading has its stream ended. Zero means 30 s.
	WatchWriteTimeout time.Duration
	// Log receives the gateway's own events; nil means slog.Default().
	Log *slog.Logger
}

// Gateway is the HTTP handler of the edge.
type Gateway struct {
	opts     Options
	log      *slog.Logger
	mux      *runtime.ServeMux
	handler  http.Handler
	draining atomic.Bool
	inFlight *inFlight
	watches  watches

	// base is every request's context (BaseContext); endRequests cancels it, with cause
	// errShuttingDown, at the end of the drain.
	base        context.Context
	endRequests context.CancelCauseFunc
}

// New builds the gateway. ctx bounds nothing but the route registration.
func New(ctx context.Context, opts Options) (*Gateway, error) {
	switch {
	case len(opts.Upstreams) == 0:
		return nil, errors.New("gateway: no upstreams")
	case opts.MaxRequestBytes <= 0 || opts.HealthTimeout <= 0 || opts.MaxInFlight <= 0 || opts.MaxQueued < 0 ||
		opts.MaxWatchStreams < 0 || opts.SSEHeartbeat < 0 || opts.WatchWriteTimeout < 0:
		return nil, errors.New("gateway: MaxRequestBytes, HealthTimeout and MaxInFlight must be positive, " +
			"MaxQueued, MaxWatchStreams, SSEHeartbeat and WatchWriteTimeout not negative")
	}
	if opts.MaxWatchStreams == 0 {
		opts.MaxWatchStreams = defaultMaxWatchStreams
	}
	if opts.WatchWriteTimeout == 0 {
		opts.WatchWriteTimeout = defaultWatchWriteTimeout
	}
	g := &Gateway{opts: opts, log: opts.Log, inFlight: newInFlight(opts.MaxInFlight, opts.MaxQueued)}
	g.watches.max = int64(opts.MaxWatchStreams)
	g.watches.drain, g.watches.endDrain = context.WithCancelCause(context.Background())
	g.base, g.endRequests = context.WithCancelCause(context.Background())
	if g.log == nil {
		g.log = slog.Default()
	}
	g.mux = runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithErrorHandler(g.handleError),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithRoutingErrorHandler(g.handleRoutingError),
		runtime.WithStreamErrorHandler(g.handleStreamError),
		runtime.WithForwardResponseOption(streamStart),
		runtime.WithMiddlewares(recordRoute, traceRoute, g.admitWatch, g.limitInFlight, trackStreams, keepQuery),
		// A form-encoded POST is not a GET in disguise here: only JSON bodies.
		runtime.WithDisablePathLengthFallback(),
		runtime.WithDisableHTTPMethodOverride(),
	)
	for _, u := range opts.Upstreams {
		// Routes call through queryChecked: a query parameter that names no field is a 400;
		// Watch routes through watchRequests too (Last-Event-ID, comma-separated lists).
		if err := u.Register(ctx, g.mux, watchRequests{queryChecked{u.Conn}}); err != nil {
			return nil, fmt.Errorf("gateway: register %s routes: %w", u.Name, err)
		}
	}
	for _, r := range []struct {
		path string
		h    runtime.HandlerFunc
	}{
		{"/health", g.serveHealth},
		{"/monitoring/database", g.serveDatabaseStatus},
		{"/monitoring/database:watch", g.watchDatabaseStatus},
		{"/monitoring/recent", g.serveRecent},
		{"/openapi.json", g.serveOpenAPI},
		{"/openapi.v3.json", g.serveOpenAPIV3},
		{"/", g.serveStatusPage},
		{"/live", g.serveLivePage},
		{"/favicon.ico", g.serveFavicon},
		{"/ui/{file}", g.serveAsset},
	} {
		if err := g.mux.HandlePath(http.MethodGet, r.path, r.h); err != nil {
			return nil, fmt.Errorf("gateway: route %s: %w", r.path, err)
		}
	}

	m, err := newMetrics(opts.Registry)
	if err != nil {
		return nil, err
	}
	if opts.Registry != nil {
		for _, c := range []prometheus.Collector{g.inFlight.refused, g.inFlight.queuedNow, g.watches.openGauge(), g.watches.refusedCounter()} {
			if err := opts.Registry.Register(c); err != nil {
				return nil, err
			}
		}
	}
	// Outermost first: a span and a request id, metrics see every answer, security headers go on every answer, CORS
	// answers preflights before the size limit and the routes.
	var h http.Handler = g.mux
	h = g.requireUTF8(h)
	h = g.limitBody(h)
	h = newCORS(opts.CORSAllowedOrigins, h)
	h = securityHeaders(h)
	// The span (when tracing is on) and the request id hold for everything inside, metrics'
	// exemplars and error lines included.
	// access_token leaves the URL before the span records it.
	g.handler = takeAccessToken(telemetry.HTTPHandler(g.requestID(m.wrap(h)), "gateway"))
	return g, nil
}

// ServeHTTP serves the REST API and the gateway's own endpoints.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// Drain marks the gateway as shutting down: /health and /healthz answer 503 from now on.
// It ends every Watch stream at once, with an "event: error" SHUTTING_DOWN, so that its
// client reconnects to another replica, and refuses new ones (503): they would last past
// the drain.
func (g *Gateway) Drain() {
	g.draining.Store(true)
	g.watches.endDrain(errShuttingDown)
}

// errShuttingDown is why EndRequests ended a request.
var errShuttingDown = errors.New("the gateway is shutting down")

// BaseContext is for http.Server.BaseContext: every request's context derives from it, so
// that EndRequests can end them.
func (g *Gateway) BaseContext(net.Listener) context.Context { return g.base }

// EndRequests ends every request still running, once the drain has waited for them long
// enough: their calls to the services are cancelled, and each answers UNAVAILABLE with reason
// SHUTTING_DOWN and a RetryInfo, a stream as its last line ({"error": ...}) after the results
// it sent, so that a client can tell a cut export from a complete one, which has no such line.
// The server must then keep the connections open a little longer (main.go's grace) for
// these answers to go out.
func (g *Gateway) EndRequests() { g.endRequests(errShuttingDown) }

// shuttingDown reports whether ctx, a request's or derived from one, was ended by
// EndRequests, and the status to answer with then.
func shuttingDown(ctx context.Context) (*status.Status, bool) {
	if !errors.Is(context.Cause(ctx), errShuttingDown) {
		return nil, false
	}
	return apierr.New(apierr.ShuttingDown, "the gateway is shutting down and ended this request, "+
		"still running at the end of its drain; retry: other replicas serve", nil).GRPCStatus(), true
}

// ServeLiveness answers /healthz on the metrics listener: 200 while the gateway serves, 503
// once it drains. It does not ask the upstreams (that is /health), so a service outage never
// gets the gateway restarted.
func (g *Gateway) ServeLiveness(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if g.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "NOT_SERVING")
		return
	}
	fmt.Fprintln(w, "SERVING")
}

// contentSecurityPolicy allows the status page its own script, style and API calls, and
// nothing else: no inline code, no other origin, no framing. JSON answers get it too, which
// costs nothing and disarms one opened in a browser tab.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// securityHeaders sets the headers every answer carries.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}
