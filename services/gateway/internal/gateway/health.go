package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// serving is the one status that counts as up, in /health and on the status page.
const serving = "SERVING"

// healthReport is the body of GET /health.
type healthReport struct {
	// Status is SERVING when the gateway and every upstream serve, else NOT_SERVING.
	Status string `json:"status"`
	// Services maps "gateway" and each upstream to SERVING, NOT_SERVING, SERVICE_UNKNOWN or
	// UNREACHABLE (the check failed: down, timed out, breaker open).
	Services map[string]string `json:"services"`
	// Failing names the entries of Services that are not SERVING, sorted as Upstreams are.
	Failing []string `json:"failing,omitempty"`
	// Errors holds the failed checks' errors.
	Errors map[string]string `json:"errors,omitempty"`
}

// serveHealth checks every upstream's gRPC health (service "") at once, each within
// HealthTimeout, and answers 200 only when all of them and the gateway serve, else 503.
func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	rep, code := g.health(r.Context())
	writeJSON(w, code, rep)
}

// health checks every upstream and returns the report of /health and its HTTP status.
func (g *Gateway) health(reqCtx context.Context) (healthReport, int) {
	type result struct {
		status string
		err    error
	}
	results := make([]result, len(g.opts.Upstreams))
	var wg sync.WaitGroup
	for i, u := range g.opts.Upstreams {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(reqCtx, g.opts.HealthTimeout)
			defer cancel()
			resp, err := healthpb.NewHealthClient(u.Conn).Check(ctx, &healthpb.HealthCheckRequest{})
			switch {
			case status.Code(err) == codes.NotFound: // the server does not know service ""
				results[i] = result{status: healthpb.HealthCheckResponse_SERVICE_UNKNOWN.String()}
			case err != nil:
				results[i] = result{status: "UNREACHABLE", err: err}
			default:
				results[i] = result{status: resp.GetStatus().String()}
			}
		})
	}
	wg.Wait()

	rep := healthReport{Status: serving, Services: map[string]string{"gateway": serving}}
	if g.draining.Load() {
		rep.Services["gateway"] = healthpb.HealthCheckResponse_NOT_SERVING.String()
		rep.Failing = append(rep.Failing, "gateway")
	}
	for i, u := range g.opts.Upstreams {
		res := results[i]
		rep.Services[u.Name] = res.status
		if res.status != serving {
			rep.Failing = append(rep.Failing, u.Name)
		}
		if res.err != nil {
			if rep.Errors == nil {
				rep.Errors = map[string]string{}
			}
			rep.Errors[u.Name] = status.Convert(res.err).Message()
		}
	}
	code := http.StatusOK
	if len(rep.Failing) > 0 {
		rep.Status, code = healthpb.HealthCheckResponse_NOT_SERVING.String(), http.StatusServiceUnavailable
	}
	return rep, code
}

// writeJSON writes v, marshalled by encoding/json (map keys sorted), as the answer.
func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"code":13,"message":"failed to marshal answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
