package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

// testCORS: a preflight from the allowed origin is answered with the CORS headers; one from
// another origin gets none, so the browser refuses the call.
func testCORS(t *testing.T, e *env) {
	tests := []struct {
		name      string
		origin    string
		wantAllow string // Access-Control-Allow-Origin
	}{
		{"allowed_origin", allowedOrigin, allowedOrigin},
		{"other_origin", "http://evil.example.test", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.gw.do(t, http.MethodOptions, "/v1/portfolios", "",
				"Origin", tt.origin,
				"Access-Control-Request-Method", http.MethodPost,
				"Access-Control-Request-Headers", "authorization,content-type")
			if r.code >= 300 {
				t.Errorf("preflight = %v, want 2xx", r)
			}
			if got := r.header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("preflight Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantAllow != "" {
				headers := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
				if !strings.Contains(headers, "authorization") || !strings.Contains(headers, "content-type") {
					t.Errorf("Access-Control-Allow-Headers = %q, want authorization and content-type", headers)
				}
				if got := r.header.Get("Access-Control-Allow-Methods"); got != http.MethodPost {
					t.Errorf("Access-Control-Allow-Methods = %q, want POST", got)
				}
			}
			// The actual call carries the header only for the allowed origin too.
			r = e.gw.do(t, http.MethodGet, "/v1/stocks/AAPL", "", "Origin", tt.origin)
			if got := r.header.Get("Access-Control-Allow-Origin"); r.code != http.StatusOK || got != tt.wantAllow {
				t.Errorf("GET with Origin %s = %d, Access-Control-Allow-Origin %q; want 200, %q", tt.origin, r.code, got, tt.wantAllow)
			}
			// A refused call's WWW-Authenticate is readable by the allowed origin's script.
			r = e.gw.do(t, http.MethodPost, "/v1/portfolios", `{"name":"Main"}`, "Origin", tt.origin)
			exposed := strings.ToLower(r.header.Get("Access-Control-Expose-Headers"))
			if r.code != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") == "" ||
				strings.Contains(exposed, "www-authenticate") != (tt.wantAllow != "") {
				t.Errorf("POST /v1/portfolios without a token, Origin %s = %d, WWW-Authenticate %q, Access-Control-Expose-Headers %q; "+
					"want 401 with WWW-Authenticate, exposed to %q only", tt.origin, r.code, r.header.Get("WWW-Authenticate"), exposed, allowedOrigin)
			}
		})
	}
}

// healthBody is the answer of GET /health.
type healthBody struct {
	Status   string            `json:"status"`
	Services map[string]string `json:"services"`
	Failing  []string          `json:"failing"`
	Errors   map[string]string `json:"errors"`
}

// testHealth: with every service up, /health is 200 and lists each one SERVING.
func testHealth(t *testing.T, e *env) {
	r := e.gw.do(t, http.MethodGet, "/health", "")
	want := healthBody{Status: "SERVING", Services: map[string]string{
		"gateway": "SERVING", "stock": "SERVING", "portfolio": "SERVING", "interview": "SERVING",
	}}
	if diff := cmp.Diff(want, decode[healthBody](t, r)); r.code != http.StatusOK || diff != "" {
		t.Errorf("GET /health = %d, mismatch (-want +got):\n%s", r.code, diff)
	}
}

// testHealthStoppedService: once a service stops, /health is 503 and names it. The gateway
// here has a portfolio service of its own to stop; stock and interview are the shared ones.
func testHealthStoppedService(t *testing.T, e *env) {
	own := *e.fleet
	own.portfolio = startService(t, e.binDir, "portfolio", "STOCK_ADDR="+e.fleet.stock.Addr)
	gw := startGateway(t, &own, nil)
	if r := gw.do(t, http.MethodGet, "/health", ""); r.code != http.StatusOK {
		t.Fatalf("GET /health before the stop = %v, want 200", r)
	}
	own.portfolio.Stop(t)

	var last response
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		last = gw.do(t, http.MethodGet, "/health", "")
		if last.code == http.StatusServiceUnavailable {
			break
		}
	}
	if last.code != http.StatusServiceUnavailable {
		t.Fatalf("GET /health after stopping portfolio = %v, want 503", last)
	}
	got := decode[healthBody](t, last)
	if got.Status != "NOT_SERVING" || !slices.Equal(got.Failing, []string{"portfolio"}) ||
		got.Services["portfolio"] == "SERVING" || got.Services["stock"] != "SERVING" || got.Errors["portfolio"] == "" {
		t.Errorf("GET /health after stopping portfolio = %+v, want NOT_SERVING naming portfolio alone, with its error", got)
	}
}

// testDatabaseStatus: /monitoring/database has every service's DatabaseMonitor status, for an
// admin (testDatabaseStatusNeedsRole: who else may read it).
func testDatabaseStatus(t *testing.T, e *env) {
	r := e.gw.do(t, http.MethodGet, "/monitoring/database", "", bearer(t, "ops@pgfleet.test", "admin")...)
	if r.code != http.StatusOK {
		t.Fatalf("GET /monitoring/database = %v, want 200", r)
	}
	doc := decode[map[string]struct {
		Status *struct {
			Service string `json:"service"`
			Health  string `json:"health"`
			Pool    struct {
				MaxConns   int `json:"max_conns"`
				TotalConns int `json:"total_conns"`
			} `json:"pool"`
			ResponseTime string `json:"response_time"`
			// The fleet has no standby: no replica, every read on the primary.
			Replicas      []json.RawMessage                        `json:"replicas"`
			Reads         []struct{ Target, Reason, Count string } `json:"reads"`
			MaxReplicaLag string                                   `json:"max_replica_lag"`
		} `json:"status"`
		Error json.RawMessage `json:"error"`
	}](t, r)
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, []string{"interview", "portfolio", "stock"}) {
		t.Errorf("keys = %v, want interview, portfolio, stock", got)
	}
	for name, entry := range doc {
		st := entry.Status
		if entry.Error != nil || st == nil || st.Service != name || st.Health != "HEALTH_SERVING" ||
			st.Pool.MaxConns == 0 || !strings.HasSuffix(st.ResponseTime, "s") {
			t.Errorf("%s = %s, want its SERVING status with pool figures", name, r.body)
		}
		if st == nil {
			continue
		}
		if len(st.Replicas) != 0 || len(st.Reads) != 4 || st.Reads[0].Target != "replica" || st.Reads[0].Count != "0" || st.MaxReplicaLag != "10s" {
			t.Errorf("%s's replicas %s, reads %+v, max_replica_lag %q; want no replica, the four read series with none on a replica, 10s",
				name, st.Replicas, st.Reads, st.MaxReplicaLag)
		}
	}
}

// testGatewayRecent: /monitoring/recent answers the gateway's own samples, one per
// HISTORY_INTERVAL, to a caller with the monitor's role: after requests, one 5xx among them
// (a stopped upstream's 503), a sample has their rate, p99 and 5xx share; no pool.
func testGatewayRecent(t *testing.T, e *env) {
	own := *e.fleet
	own.interview = startService(t, e.binDir, "interview")
	gw := startGateway(t, &own, map[string]string{"HISTORY_INTERVAL": "100ms"})
	if r := gw.do(t, http.MethodGet, "/monitoring/recent", ""); r.code != http.StatusUnauthorized {
		t.Errorf("GET /monitoring/recent without a token = %v, want 401", r)
	}
	own.interview.Stop(t)
	admin := bearer(t, "ops@pgfleet.test", "admin")
	type sample struct {
		Time           string  `json:"time"`
		CallsPerSecond float64 `json:"calls_per_second"`
		P99Seconds     float64 `json:"p99_seconds"`
		ErrorRatio     float64 `json:"error_ratio"`
		PoolUse        float64 `json:"pool_use"`
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		gw.do(t, http.MethodGet, "/v1/stocks/AAPL", "")
		gw.do(t, http.MethodGet, "/health", "") // 503: interview is down
		r := gw.do(t, http.MethodGet, "/monitoring/recent", "", admin...)
		doc := decode[struct {
			Service string   `json:"service"`
			Recent  []sample `json:"recent"`
		}](t, r)
		if r.code != http.StatusOK || doc.Service != "gateway" {
			t.Fatalf("GET /monitoring/recent = %v, want 200 with service gateway", r)
		}
		for _, s := range doc.Recent {
			if s.CallsPerSecond > 0 && s.P99Seconds > 0 && s.ErrorRatio > 0 {
				if s.ErrorRatio >= 1 || s.PoolUse != 0 || s.Time == "" {
					t.Errorf("sample %+v: want a 5xx share below 1, no pool use, a time", s)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample with requests and 5xx answers within 60 s: %s", r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// testOpenAPI: /openapi.json is one document with the paths of every service.
func testOpenAPI(t *testing.T, e *env) {
	r := e.gw.do(t, http.MethodGet, "/openapi.json", "")
	doc := decode[struct {
		Swagger string                     `json:"swagger"`
		Paths   map[string]json.RawMessage `json:"paths"`
	}](t, r)
	if r.code != http.StatusOK || doc.Swagger != "2.0" {
		t.Fatalf("GET /openapi.json = %d, swagger %q; want 200, 2.0", r.code, doc.Swagger)
	}
	for _, p := range []string{"/v1/stocks/{symbol}", "/v1/portfolios/{portfolio_id}/trades", "/v1/sessions",
		"/v1/questions", "/health", "/monitoring/database", "/openapi.json", "/openapi.v3.json"} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("/openapi.json lacks path %s", p)
		}
	}
	// /openapi.v3.json serves the document the contract check holds every answer to.
	v2, err := openapi.Merged()
	if err != nil {
		t.Fatal(err)
	}
	v3, err := openapi.V3(v2)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{"/openapi.json": v2, "/openapi.v3.json": v3} {
		r := e.gw.do(t, http.MethodGet, path, "")
		if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" || !bytes.Equal(r.body, want) {
			t.Errorf("GET %s = %d %q, %d bytes; want 200 application/json, the %d bytes openapi builds",
				path, r.code, r.header.Get("Content-Type"), len(r.body), len(want))
		}
	}
}

// testStatusPage: the page, its script and its style are served under a strict CSP.
func testStatusPage(t *testing.T, e *env) {
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", `<script src="ui/app.js"`},
		{"/ui/app.js", "text/javascript; charset=utf-8", "monitoring/database"},
		{"/ui/style.css", "text/css; charset=utf-8", ".card.up"},
	}
	for _, tt := range tests {
		t.Run(strings.Trim(tt.path, "/"), func(t *testing.T) {
			t.Parallel()
			r := e.gw.do(t, http.MethodGet, tt.path, "")
			if r.code != http.StatusOK || r.header.Get("Content-Type") != tt.contentType || !strings.Contains(string(r.body), tt.contains) {
				t.Errorf("GET %s = %d %q, want 200 %q containing %q", tt.path, r.code, r.header.Get("Content-Type"), tt.contentType, tt.contains)
			}
			wantHeaders := map[string]string{
				"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
					"img-src 'self'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'",
				"X-Content-Type-Options": "nosniff",
			}
			for h, want := range wantHeaders {
				if got := r.header.Get(h); got != want {
					t.Errorf("GET %s: %s = %q, want %q", tt.path, h, got, want)
				}
			}
		})
	}
	if body := string(e.gw.do(t, http.MethodGet, "/", "").body); strings.Contains(body, "<style") || strings.Contains(body, "style=") ||
		strings.Contains(body, "<script>") {
		t.Error("status page has inline script or style, which its CSP blocks")
	}
}

// testMetrics: the gateway's metrics listener serves its own and its clients' metrics.
func testMetrics(t *testing.T, e *env) {
	e.gw.do(t, http.MethodGet, "/v1/stocks/MSFT", "")
	resp, err := e.gw.client.Get(e.gw.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	bi := buildinfo.Get()
	for _, want := range []string{
		`pgfleet_gateway_http_requests_total{code="200",method="GET",route="/v1/stocks/{symbol=*}"}`,
		// The fleet's buckets, from 100 µs up.
		`pgfleet_gateway_http_request_duration_seconds_bucket{code="200",method="GET",route="/v1/stocks/{symbol=*}",le="0.0001"}`,
		`pgfleet_gateway_http_request_duration_seconds_bucket{code="200",method="GET",route="/v1/stocks/{symbol=*}",le="10"}`,
		`pgfleet_client_calls_total{code="OK",peer="stock"}`,
		// The call to the real stock service behind the route.
		`pgfleet_client_call_duration_seconds_count{code="OK",method="pgfleet.stock.v1.StockService/GetStock",peer="stock"}`,
		`pgfleet_client_call_duration_seconds_bucket{code="OK",method="pgfleet.stock.v1.StockService/GetStock",peer="stock",le="0.0001"}`,
		fmt.Sprintf("pgfleet_build_info{goversion=%q,revision=%q,version=%q} 1", bi.GoVersion, bi.Revision, bi.Version),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
