package main

import (
	"net/http"
	"testing"
)

// testProfiles: the metrics listener serves /debug/pprof only with PPROF_ENABLED=true; by
// default it is 404 there, and /metrics and /healthz are served either way.
func testProfiles(t *testing.T, e *env) {
	tests := []struct {
		name string
		gw   func(t *testing.T) *testGateway
		want int
	}{
		{"off_by_default", func(*testing.T) *testGateway { return e.gw }, http.StatusNotFound},
		{"enabled", func(t *testing.T) *testGateway {
			return startGateway(t, e.fleet, map[string]string{"PPROF_ENABLED": "true"})
		}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gw := tt.gw(t)
			for path, want := range map[string]int{
				"/debug/pprof/": tt.want, "/debug/pprof/heap": tt.want, "/metrics": http.StatusOK, "/healthz": http.StatusOK,
			} {
				resp, err := gw.client.Get(gw.metrics + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != want {
					t.Errorf("GET %s on the metrics listener = %d, want %d", path, resp.StatusCode, want)
				}
			}
		})
	}
}
