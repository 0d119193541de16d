package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// errorInfos returns the google.rpc.ErrorInfo entries of an error answer's JSON details.
func errorInfos(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var st struct {
		Details []map[string]any `json:"details"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	var out []map[string]any
	for _, d := range st.Details {
		if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			out = append(out, d)
		}
	}
	return out
}

// wantReason fails unless the error answer's JSON has exactly one ErrorInfo, of reason and
// of the domain, with at least metadata md.
func wantReason(t *testing.T, body []byte, reason apierr.Reason, md map[string]string) {
	t.Helper()
	infos := errorInfos(t, body)
	if len(infos) != 1 {
		t.Fatalf("error body %s has %d ErrorInfos, want 1", body, len(infos))
	}
	info := infos[0]
	if info["reason"] != string(reason) || info["domain"] != apierr.Domain {
		t.Errorf("ErrorInfo = %v, want reason %s in domain %s", info, reason, apierr.Domain)
	}
	got, _ := info["metadata"].(map[string]any)
	for k, v := range md {
		if got[k] != v {
			t.Errorf("ErrorInfo metadata %q = %v, want %q", k, got[k], v)
		}
	}
}

// TestGateway_errorReasons: the errors the gateway makes itself carry an ErrorInfo in their
// JSON, like the services' errors.
func TestGateway_errorReasons(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	big := `{"a":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name       string
		req        *http.Request
		wantHTTP   int
		wantReason apierr.Reason
		wantMD     map[string]string
	}{
		{"unknown_path", httptest.NewRequest(http.MethodGet, "/v1/nope", nil), 404, apierr.RouteNotFound,
			map[string]string{"method": "GET", "path": "/v1/nope"}},
		{"wrong_method", httptest.NewRequest(http.MethodGet, "/v1/echo", nil), 405, apierr.MethodNotAllowed,
			map[string]string{"method": "GET", "path": "/v1/echo"}},
		{"malformed_json", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"a":`)), 400, apierr.MalformedRequest, nil},
		{"declared_too_large", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(big)), 413, apierr.RequestTooLarge,
			map[string]string{"limit_bytes": "1024"}},
		{"chunked_too_large", httptest.NewRequest(http.MethodPost, "/v1/echo", io.MultiReader(strings.NewReader(big))), 413, apierr.RequestTooLarge,
			map[string]string{"limit_bytes": "1024"}},
		{"unknown_asset", httptest.NewRequest(http.MethodGet, "/ui/nope.js", nil), 404, apierr.RouteNotFound,
			map[string]string{"path": "/ui/nope.js"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "chunked_too_large" {
				tt.req.ContentLength = -1 // unknown, as for a chunked body
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, tt.req)
			if rec.Code != tt.wantHTTP {
				t.Fatalf("%s %s = %d %s, want %d", tt.req.Method, tt.req.URL, rec.Code, rec.Body, tt.wantHTTP)
			}
			wantReason(t, rec.Body.Bytes(), tt.wantReason, tt.wantMD)
		})
	}
}

// TestGateway_handleErrorReasons: a service's ErrorInfo passes through unchanged; a status
// without one (grpc-gateway's decoding, gRPC's own transport errors) gets one.
func TestGateway_handleErrorReasons(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	fromService := apierr.New(apierr.InsufficientCash, "insufficient cash",
		map[string]string{"portfolio_id": "1", "available": "20"}).GRPCStatus()
	twice, err := status.New(codes.NotFound, "gone").WithDetails(
		&errdetails.ErrorInfo{Reason: "STOCK_NOT_FOUND", Domain: apierr.Domain},
		&errdetails.ErrorInfo{Reason: "NOT_FOUND", Domain: apierr.Domain})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		err        error
		wantHTTP   int
		wantReason apierr.Reason
		wantMD     map[string]string
	}{
		{"service_reason_kept", fromService.Err(), 400, apierr.InsufficientCash, map[string]string{"portfolio_id": "1", "available": "20"}},
		{"query_not_decoded", status.Error(codes.InvalidArgument, `parsing field "page_size": strconv.ParseInt`), 400, apierr.MalformedRequest, nil},
		{"router_status", &runtime.HTTPStatusError{HTTPStatus: 400, Err: status.Error(codes.InvalidArgument, "bad path")}, 400, apierr.MalformedRequest, nil},
		{"service_unreachable", status.Error(codes.Unavailable, "connection refused"), 503, apierr.Unavailable, nil},
		{"two_infos", twice.Err(), 404, apierr.StockNotFound, nil},
		{"no_status", errors.New("boom"), 500, apierr.Unknown, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			g.handleError(t.Context(), g.mux, marshaler, rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil), tt.err)
			if rec.Code != tt.wantHTTP {
				t.Errorf("handleError(%v) = %d, want %d", tt.err, rec.Code, tt.wantHTTP)
			}
			wantReason(t, rec.Body.Bytes(), tt.wantReason, tt.wantMD)
		})
	}
}

// TestFallbackError: the body sent when a status cannot be marshalled has its ErrorInfo too.
func TestFallbackError(t *testing.T) {
	t.Parallel()
	infos := errorInfos(t, []byte(fallbackError))
	want := []map[string]any{{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INTERNAL",
		"domain": apierr.Domain, "metadata": map[string]any{}}}
	if diff := cmp.Diff(want, infos); diff != "" {
		t.Errorf("fallbackError ErrorInfos mismatch (-want +got):\n%s", diff)
	}
}

// TestGateway_streamErrorReason: the {"error": ...} line that ends a stream after its first
// message has its ErrorInfo too, also when gRPC cut the stream without one.
func TestGateway_streamErrorReason(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	st := g.handleStreamError(t.Context(), status.Error(codes.Unavailable, "transport is closing"))
	if n, reason := apierr.Count(st), apierr.Info(st).GetReason(); n != 1 || reason != string(apierr.Unavailable) {
		t.Errorf("handleStreamError = %v with %d ErrorInfos (reason %q), want one UNAVAILABLE", st, n, reason)
	}
	fromService := apierr.New(apierr.StockNotFound, "stock \"ZZZZ\": not found", map[string]string{"symbol": "ZZZZ"})
	if got := apierr.Info(g.handleStreamError(t.Context(), fromService)).GetReason(); got != string(apierr.StockNotFound) {
		t.Errorf("handleStreamError(service status) reason = %q, want STOCK_NOT_FOUND", got)
	}
}
