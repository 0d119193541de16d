package main

import (
	"net/http"
	"net/url"
	"strings"
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

// testDatabaseStatusNeedsRole: /monitoring/database (server version, pool, retry and lock
// figures) answers only callers whose token has role service or admin, as DatabaseMonitor
// over gRPC does; /health stays public.
func testDatabaseStatusNeedsRole(t *testing.T, e *env) {
	tests := []struct {
		name       string
		headers    []string
		wantHTTP   int
		wantReason string
	}{
		{"no_token", nil, http.StatusUnauthorized, "TOKEN_MISSING"},
		{"garbage_token", []string{"Authorization", "Bearer x.y.z"}, http.StatusUnauthorized, "TOKEN_INVALID"},
		{"basic_auth", []string{"Authorization", "Basic YWRtaW46YWRtaW4="}, http.StatusUnauthorized, "TOKEN_MALFORMED"},
		{"user", bearer(t, "ada@example.com"), http.StatusForbidden, "ROLE_REQUIRED"},
		{"ingest", bearer(t, "feed@pgfleet.test", "ingest"), http.StatusForbidden, "ROLE_REQUIRED"},
		{"service", bearer(t, "portfolio", "service"), http.StatusOK, ""},
		{"admin", bearer(t, "ops@pgfleet.test", "admin"), http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.gw.do(t, http.MethodGet, "/monitoring/database", "", tt.headers...)
			if r.code != tt.wantHTTP {
				t.Fatalf("GET /monitoring/database = %v, want %d", r, tt.wantHTTP)
			}
			// Its live feed admits the same callers, with the token in the header or, for
			// EventSource, as access_token; its first event is /health's report.
			w := e.gw.do(t, http.MethodGet, "/monitoring/database:watch", "", tt.headers...)
			if len(tt.headers) == 2 && strings.HasPrefix(tt.headers[1], "Bearer ") {
				q := e.gw.do(t, http.MethodGet, "/monitoring/database:watch?access_token="+
					url.QueryEscape(strings.TrimPrefix(tt.headers[1], "Bearer ")), "")
				if q.code != w.code {
					t.Errorf("GET /monitoring/database:watch with access_token = %v, with the header %v", q, w)
				}
			}
			if w.code != tt.wantHTTP || w.code == http.StatusOK && !strings.HasPrefix(string(w.body), "event: health\ndata: {") {
				t.Errorf("GET /monitoring/database:watch = %v, want %d (a first event health)", w, tt.wantHTTP)
			}
			if tt.wantReason == "" {
				return
			}
			if got := decode[errorBody](t, r).reason(); got != tt.wantReason {
				t.Errorf("GET /monitoring/database reason %q, want %q: %s", got, tt.wantReason, r.body)
			}
			for _, leak := range []string{"server_version", "pool", "locks"} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("refused answer mentions %q: %s", leak, r.body)
				}
			}
		})
	}
	t.Run("health_is_public", func(t *testing.T) {
		t.Parallel()
		if r := e.gw.do(t, http.MethodGet, "/health", ""); r.code != http.StatusOK {
			t.Errorf("GET /health without a token = %v, want 200", r)
		}
	})
}

// testDatabaseStatusServicesCheck: the services check the caller of /monitoring/database
// themselves, with the caller's own token: a gateway that checks nothing (AUTH_DISABLED)
// and has no token of its own gets every service's refusal for an anonymous caller, and
// every status for an admin.
func testDatabaseStatusServicesCheck(t *testing.T, e *env) {
	gw := startGateway(t, e.fleet, map[string]string{"AUTH_DISABLED": "true"})
	type entry struct {
		Status *struct {
			Service string `json:"service"`
		} `json:"status"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	r := gw.do(t, http.MethodGet, "/monitoring/database", "")
	doc := decode[map[string]entry](t, r)
	if r.code != http.StatusServiceUnavailable || len(doc) != 3 {
		t.Fatalf("anonymous GET /monitoring/database through a gateway that checks nothing = %v, want 503 with 3 entries", r)
	}
	for name, en := range doc {
		if en.Status != nil || en.Error == nil || en.Error.Code != 16 { // UNAUTHENTICATED
			t.Errorf("%s: %s, want the service's UNAUTHENTICATED and no status", name, r.body)
		}
	}
	r = gw.do(t, http.MethodGet, "/monitoring/database", "", bearer(t, "ops@pgfleet.test", "admin")...)
	doc = decode[map[string]entry](t, r)
	if r.code != http.StatusOK || len(doc) != 3 {
		t.Fatalf("admin's GET /monitoring/database through a gateway that checks nothing = %v, want 200", r)
	}
	for name, en := range doc {
		if en.Status == nil || en.Status.Service != name {
			t.Errorf("%s: %s, want its status", name, r.body)
		}
	}
}
