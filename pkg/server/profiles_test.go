package server_test

import (
	"net/http"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/server"
)

// TestServer_profiles: /debug/pprof is served on the metrics listener only when asked for
// (PPROF_ENABLED): profiles reveal the code and cost CPU, and the port answers anyone.
func TestServer_profiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		profiles bool
		want     int
	}{
		{"off_by_default", false, http.StatusNotFound},
		{"enabled", true, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, _ := start(t, server.Options{Profiles: tt.profiles}, nil)
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1"} {
				if code, _ := httpGet(t, "http://"+srv.MetricsAddr()+path); code != tt.want {
					t.Errorf("GET %s = %d, want %d", path, code, tt.want)
				}
			}
			if code, _ := httpGet(t, "http://"+srv.MetricsAddr()+"/metrics"); code != http.StatusOK {
				t.Errorf("GET /metrics = %d, want 200 either way", code)
			}
		})
	}
}
