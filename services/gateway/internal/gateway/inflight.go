package gateway

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// inFlight bounds the API requests (the routes under /v1/) the gateway serves at once, which
// bounds its memory: each one holds a call to a service, its buffers and a deep stack, and
// 2,000 clients at once had grown the gateway from 21 to 198 MiB. A request past the bound
// waits for a slot, in a queue of its own bound, as long as its context lives; one past both
// is refused at once, 429 GATEWAY_BUSY with RetryInfo (and Retry-After). A server stream
// gives its slot back once it has started: an export can last minutes, and the stock
// service bounds streams itself. Watch streams (sse.go) never take one: they have a cap of
// their own, MAX_WATCH_STREAMS. The gateway's own routes (/health, /monitoring/database,
// the documents and the status page) are not counted, so probes answer whatever the load.
type inFlight struct {
	slots     chan struct{}
	queued    atomic.Int64
	maxQueued int64

	refused   prometheus.Counter
	queuedNow prometheus.GaugeFunc
}

func newInFlight(limit, queue int) *inFlight {
	l := &inFlight{slots: make(chan struct{}, limit), maxQueued: int64(queue)}
	l.refused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgfleet_gateway_http_requests_refused_busy_total",
		Help: "API requests refused 429 GATEWAY_BUSY: MAX_IN_FLIGHT running and MAX_QUEUED waiting already.",
	})
	l.queuedNow = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgfleet_gateway_http_requests_queued",
		Help: "API requests waiting for one of the MAX_IN_FLIGHT slots.",
	}, func() float64 { return float64(l.queued.Load()) })
	return l
}

// acquire takes a slot, waiting in the queue if there is room there; release gives it back
// and may be called more than once. ok is false when the request was refused, or its
// context ended while it waited.
func (l *inFlight) acquire(ctx context.Context) (release func(), ok bool) {
	release = sync.OnceFunc(func() { <-l.slots })
	select {
	case l.slots <- struct{}{}:
		return release, true
	default:
	}
	if l.queued.Add(1) > l.maxQueued {
		l.queued.Add(-1)
		l.refused.Inc()
		return nil, false
	}
	defer l.queued.Add(-1)
	select {
	case l.slots <- struct{}{}:
		return release, true
	case <-ctx.Done():
		return nil, false
	}
}

type releaseKey struct{}

// limitInFlight is a grpc-gateway middleware applying g.inFlight to the API's routes.
func (g *Gateway) limitInFlight(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		p, matched := runtime.HTTPPattern(r.Context())
		if !matched || !strings.HasPrefix(p.String(), "/v1/") || p.Verb() == watchVerb { // Watch: admitWatch
			next(w, r, params)
			return
		}
		release, ok := g.inFlight.acquire(r.Context())
		if !ok {
			err := r.Context().Err()
			if err == nil { // refused, not ended
				w.Header().Set("Retry-After", "1")
				g.writeStatus(w, apierr.Newf(apierr.GatewayBusy, map[string]string{"limit": strconv.Itoa(cap(g.inFlight.slots))},
					"the gateway is serving %d requests and has %d more waiting; retry later",
					cap(g.inFlight.slots), g.inFlight.maxQueued).GRPCStatus(), http.StatusTooManyRequests)
				return
			}
			g.handleError(r.Context(), g.mux, marshaler, w, r, err)
			return
		}
		defer release()
		next(w, r.WithContext(context.WithValue(r.Context(), releaseKey{}, release)), params)
	}
}

// releaseSlot gives back the in-flight slot of the request whose context ctx derives from.
func releaseSlot(ctx context.Context) {
	if release, ok := ctx.Value(releaseKey{}).(func()); ok {
		release()
	}
}
