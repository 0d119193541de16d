package server

import (
	"context"
	"net/http"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Watcher reports whether a dependency, typically the database pool, can serve.
// pgpool.Monitor satisfies it.
type Watcher interface {
	// Run checks the dependency until ctx is done.
	Run(ctx context.Context)
	// OnChange registers fn to be called with each new status, including the first one.
	OnChange(fn func(serving bool))
}

// watch is one WatchPool call: the names it covers and its watcher's last report.
type watch struct {
	names   []string
	serving bool
}

// WatchPool makes w's status drive the health status of "" (the whole server) and of each
// named service. Until w's first report they are NOT_SERVING. A name covered by several
// watchers is SERVING only while all of them are. Call it before Run, which starts w.Run.
func (s *Server) WatchPool(w Watcher, services ...string) {
	wt := &watch{names: append([]string{""}, services...)}
	s.mu.Lock()
	s.watches = append(s.watches, wt)
	s.watchers = append(s.watchers, w)
	s.refreshLocked()
	s.mu.Unlock()
	w.OnChange(func(serving bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		wt.serving = serving
		s.refreshLocked()
	})
}

// refreshLocked recomputes every watched name's status. s.mu must be held, so that two
// watchers' updates reach the health server in the order they were computed.
func (s *Server) refreshLocked() {
	serving := map[string]bool{}
	for _, wt := range s.watches {
		for _, name := range wt.names {
			if _, seen := serving[name]; !seen {
				serving[name] = true
			}
			serving[name] = serving[name] && wt.serving
		}
	}
	for name, ok := range serving {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ok {
			st = healthpb.HealthCheckResponse_SERVING
		}
		s.health.SetServingStatus(name, st) // ignored once Run has called Shutdown
	}
}

// serveHealthz answers 200 while the service (?service=name, default "") is SERVING, 503
// otherwise, 404 for a name health does not know: a curl-able mirror of grpc.health.v1.
func (s *Server) serveHealthz(w http.ResponseWriter, r *http.Request) {
	resp, err := s.health.Check(r.Context(), &healthpb.HealthCheckRequest{Service: r.URL.Query().Get("service")})
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case status.Code(err) == codes.NotFound:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("SERVICE_UNKNOWN\n"))
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write([]byte(resp.GetStatus().String() + "\n"))
}
