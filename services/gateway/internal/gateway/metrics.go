package gateway

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/latency"
)

// metrics count and time requests by route pattern, not by path, so that
// /v1/stocks/{symbol=*} is one series however many symbols are asked for.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgfleet_gateway_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		// The fleet's buckets, as the services' grpc_server_handling_seconds, so the two
		// compare bucket for bucket; streams longer than 10 s count in +Inf only.
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgfleet_gateway_http_request_duration_seconds",
			Help:    "Time to the end of the answer, streams included, by route pattern, method and status code.",
			Buckets: latency.Buckets,
		}, []string{"route", "method", "code"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pgfleet_gateway_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// unmatched labels requests no route took: 404s, 405s, CORS preflights, early 413s.
const unmatched = "unmatched"

type routeKey struct{}

// wrap records every request; recordRoute, inside grpc-gateway's mux, fills in the route.
func (m *metrics) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		m.inFlight.Inc()
		defer m.inFlight.Dec()
		route := new(string)
		*route = unmatched
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r.WithContext(context.WithValue(r.Context(), routeKey{}, route)))
		method := methodLabel(r.Method)
		code := strconv.Itoa(rw.code)
		m.requests.WithLabelValues(*route, method, code).Inc()
		observe(r.Context(), m.duration.WithLabelValues(*route, method, code), time.Since(start).Seconds())
	})
}

// recordRoute is a grpc-gateway middleware: it runs once a route matched.
func recordRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if route, ok := r.Context().Value(routeKey{}).(*string); ok {
			if p, ok := runtime.HTTPPattern(r.Context()); ok {
				*route = p.String()
			}
		}
		next(w, r, params)
	}
}

// methodLabel keeps the label's values few whatever methods clients invent.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// statusWriter remembers the status code. Unwrap lets http.ResponseController reach the
// real writer's Flush, which NDJSON streams need after each line.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
