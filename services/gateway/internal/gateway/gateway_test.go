package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// newTestGateway returns a gateway whose only upstream route, POST /v1/echo, decodes its
// body as generated handlers do and answers it back, or fails with the decoder's error.
func newTestGateway(t *testing.T, origins ...string) *Gateway {
	t.Helper()
	echo := func(ctx context.Context, mux *runtime.ServeMux, _ grpc.ClientConnInterface) error {
		return mux.HandlePath(http.MethodPost, "/v1/echo", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			in, out := runtime.MarshalerForRequest(mux, r)
			var msg structpb.Struct
			if err := in.NewDecoder(r.Body).Decode(&msg); err != nil {
				runtime.HTTPError(r.Context(), mux, out, w, r, status.Errorf(codes.InvalidArgument, "%v", err))
				return
			}
			runtime.ForwardResponseMessage(runtime.NewServerMetadataContext(r.Context(), runtime.ServerMetadata{}), mux, out, w, r, &msg)
		})
	}
	g, err := New(t.Context(), Options{
		Upstreams:          []Upstream{{Name: "echo", Register: echo}},
		CORSAllowedOrigins: origins,
		MaxRequestBytes:    1024,
		MaxInFlight:        8,
		MaxQueued:          8,
		HealthTimeout:      time.Second,
		OpenAPI:            []byte(`{"swagger":"2.0"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type errorJSON struct {
	Code    codes.Code `json:"code"`
	Message string     `json:"message"`
	Details []any      `json:"details"`
}

func serve(t *testing.T, h http.Handler, req *http.Request) (*http.Response, errorJSON) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	resp := rec.Result()
	var body errorJSON
	if resp.StatusCode >= 400 {
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: error answer is not JSON (%v): %q", req.Method, req.URL, err, resp.Header.Get("Content-Type"))
		}
	}
	return resp, body
}

func TestGateway_errors(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	tests := []struct {
		name     string
		req      *http.Request
		wantHTTP int
		wantCode codes.Code
	}{
		{"unknown_path", httptest.NewRequest(http.MethodGet, "/v1/nope", nil), 404, codes.NotFound},
		{"wrong_method", httptest.NewRequest(http.MethodGet, "/v1/echo", nil), 405, codes.Unimplemented},
		{"ok", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"a":1}`)), 200, codes.OK},
		{"malformed_json", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"a":`)), 400, codes.InvalidArgument},
		{"second_value", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"a":1}{"b":2}`)), 400, codes.InvalidArgument},
		{"trailing_garbage", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{} garbage`)), 400, codes.InvalidArgument},
		{"trailing_newline", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader("{\"a\":1}\n")), 200, codes.OK},
		{"trailing_space_too_large", httptest.NewRequest(http.MethodPost, "/v1/echo", io.MultiReader(strings.NewReader(`{}`+strings.Repeat(" ", 2000)))), 413, codes.ResourceExhausted},
		{"declared_too_large", httptest.NewRequest(http.MethodPost, "/v1/echo", strings.NewReader(`{"a":"`+strings.Repeat("x", 2000)+`"}`)), 413, codes.ResourceExhausted},
		{"chunked_too_large", httptest.NewRequest(http.MethodPost, "/v1/echo", io.MultiReader(strings.NewReader(`{"a":"`+strings.Repeat("x", 2000)+`"}`))), 413, codes.ResourceExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if strings.HasSuffix(tt.name, "too_large") && tt.name != "declared_too_large" {
				tt.req.ContentLength = -1 // unknown, as for a chunked body
			}
			resp, body := serve(t, g, tt.req)
			if resp.StatusCode != tt.wantHTTP || body.Code != tt.wantCode {
				t.Errorf("%s %s = %d %+v, want %d with code %v", tt.req.Method, tt.req.URL, resp.StatusCode, body, tt.wantHTTP, tt.wantCode)
			}
		})
	}
}

func TestGateway_handleError(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	tests := []struct {
		name      string
		err       error
		wantHTTP  int
		wantCode  codes.Code
		wantChall bool // WWW-Authenticate
	}{
		{"not_found", status.Error(codes.NotFound, "portfolio 7: not found"), 404, codes.NotFound, false},
		{"unauthenticated", status.Error(codes.Unauthenticated, "missing bearer token"), 401, codes.Unauthenticated, true},
		{"permission_denied", status.Error(codes.PermissionDenied, "needs role ingest"), 403, codes.PermissionDenied, false},
		{"unavailable", status.Error(codes.Unavailable, "breaker open"), 503, codes.Unavailable, false},
		{"aborted", status.Error(codes.Aborted, "conflict"), 409, codes.Aborted, false},
		{"router_status", &runtime.HTTPStatusError{HTTPStatus: 400, Err: status.Error(codes.InvalidArgument, "bad path")}, 400, codes.InvalidArgument, false},
		{"no_status", errors.New("boom"), 500, codes.Unknown, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := httptest.NewRecorder()
			g.handleError(t.Context(), g.mux, marshaler, rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil), tt.err)
			var body errorJSON
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			got := []any{rec.Code, body.Code, rec.Header().Get("WWW-Authenticate") != ""}
			if diff := cmp.Diff([]any{tt.wantHTTP, tt.wantCode, tt.wantChall}, got); diff != "" {
				t.Errorf("handleError(%v) mismatch (-want +got):\n%s", tt.err, diff)
			}
		})
	}
}

func TestGateway_corsOff(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest(http.MethodOptions, "/v1/echo", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	req.Header.Set("Access-Control-Request-Method", http.MethodPost)
	resp, _ := serve(t, newTestGateway(t), req)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "" || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("preflight without CORS_ALLOWED_ORIGINS = %d, Access-Control-Allow-Origin %q; want 405 and none", resp.StatusCode, got)
	}
}

func TestGateway_drain(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	for _, want := range []int{http.StatusOK, http.StatusServiceUnavailable} {
		rec := httptest.NewRecorder()
		g.ServeLiveness(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != want {
			t.Errorf("/healthz = %d, want %d", rec.Code, want)
		}
		g.Drain()
	}
}

// TestGateway_endRequests: once EndRequests has ended the requests still running at the end
// of the drain, a call cut by it answers 503 SHUTTING_DOWN, and a stream's last line says
// the same, instead of the cancellation the call to the service saw.
func TestGateway_endRequests(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	r := httptest.NewRequest(http.MethodGet, "/v1/stocks/AAPL/prices:stream", nil).WithContext(g.BaseContext(nil))
	cancelled := status.Error(codes.Canceled, "context canceled")

	// Before: a cancelled call is what it is.
	if st := g.handleStreamError(r.Context(), cancelled); st.Code() != codes.Canceled {
		t.Errorf("stream error before EndRequests = %v, want CANCELLED", st.Code())
	}
	g.EndRequests()
	rec := httptest.NewRecorder()
	g.handleError(r.Context(), g.mux, marshaler, rec, r, cancelled)
	var body errorJSON
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusServiceUnavailable || body.Code != codes.Unavailable {
		t.Errorf("call cut by EndRequests = %d %s (%v), want 503 UNAVAILABLE", rec.Code, rec.Body, err)
	}
	st := g.handleStreamError(r.Context(), cancelled)
	retry := false
	for _, d := range st.Details() {
		_, ok := d.(*errdetails.RetryInfo)
		retry = retry || ok
	}
	if st.Code() != codes.Unavailable || apierr.ReasonOf(st.Err()) != apierr.ShuttingDown || !retry {
		t.Errorf("stream cut by EndRequests ends with %v, want UNAVAILABLE SHUTTING_DOWN with RetryInfo", st.Proto())
	}
}
