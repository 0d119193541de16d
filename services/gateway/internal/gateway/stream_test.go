package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestGateway_streams: a server stream answers like a unary call until its first message
// (an error gets the very answer handleError gives a unary call; an empty stream is a 200
// with the NDJSON media type), and ends with an {"error": ...} line after it.
func TestGateway_streams(t *testing.T) {
	t.Parallel()
	msg := func(n float64) proto.Message {
		return &structpb.Struct{Fields: map[string]*structpb.Value{"n": structpb.NewNumberValue(n)}}
	}
	tests := []struct {
		name     string
		stream   []proto.Message // sent in order, then err
		err      error           // nil: the stream ends
		wantHTTP int
		wantBody string // NDJSON lines; for an HTTP error, handleError's answer to err
	}{
		{name: "not_found_before_first_message", err: status.Error(codes.NotFound, `stock "ZZZZ": not found`), wantHTTP: http.StatusNotFound},
		{name: "invalid_before_first_message", err: status.Error(codes.InvalidArgument, "symbol: bad"), wantHTTP: http.StatusBadRequest},
		{name: "empty", wantHTTP: http.StatusOK, wantBody: ""},
		{
			name: "messages", stream: []proto.Message{msg(1), msg(2)}, wantHTTP: http.StatusOK,
			wantBody: `{"result":{"n":1}}` + "\n" + `{"result":{"n":2}}` + "\n",
		},
		{
			name: "error_after_first_message", stream: []proto.Message{msg(1)}, err: status.Error(codes.Unavailable, "gone"),
			wantHTTP: http.StatusOK,
			wantBody: `{"result":{"n":1}}` + "\n" + `{"error":{"code":14,"message":"gone","details":[` +
				`{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"UNAVAILABLE","domain":"pgfleet.dev","metadata":{}}]}}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			g := newStreamGateway(t, tt.stream, tt.err)
			req := httptest.NewRequest(http.MethodGet, "/v1/stream", nil)
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, req)
			resp := rec.Result()
			body, _ := io.ReadAll(resp.Body)

			wantType, wantBody := ndjson, tt.wantBody
			if tt.wantHTTP >= 400 { // exactly what a unary call failing with err gets
				unary := httptest.NewRecorder()
				g.handleError(t.Context(), g.mux, marshaler, unary, req, tt.err)
				if unary.Code != tt.wantHTTP {
					t.Fatalf("handleError(%v) = %d, want %d", tt.err, unary.Code, tt.wantHTTP)
				}
				wantType, wantBody = unary.Header().Get("Content-Type"), unary.Body.String()
			}
			if resp.StatusCode != tt.wantHTTP || resp.Header.Get("Content-Type") != wantType {
				t.Errorf("GET /v1/stream = %d %q, want %d %q", resp.StatusCode, resp.Header.Get("Content-Type"), tt.wantHTTP, wantType)
			}
			if diff := cmp.Diff(compactLines(t, wantBody), compactLines(t, string(body))); diff != "" {
				t.Errorf("body mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// newStreamGateway returns a gateway whose one route, GET /v1/stream, forwards a server
// stream of msgs ending with err (io.EOF if nil) as generated handlers do.
func newStreamGateway(t *testing.T, msgs []proto.Message, err error) *Gateway {
	t.Helper()
	register := func(_ context.Context, mux *runtime.ServeMux, _ grpc.ClientConnInterface) error {
		return mux.HandlePath(http.MethodGet, "/v1/stream", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			_, out := runtime.MarshalerForRequest(mux, r)
			next := 0
			recv := func() (proto.Message, error) {
				if next < len(msgs) {
					next++
					return msgs[next-1], nil
				}
				if err != nil {
					return nil, err
				}
				return nil, io.EOF
			}
			ctx := runtime.NewServerMetadataContext(r.Context(), runtime.ServerMetadata{})
			runtime.ForwardResponseStream(ctx, mux, out, w, r, recv, mux.GetForwardResponseOptions()...)
		})
	}
	g, gerr := New(t.Context(), Options{
		Upstreams:       []Upstream{{Name: "stream", Register: register}},
		MaxRequestBytes: 1024,
		MaxInFlight:     8,
		HealthTimeout:   time.Second,
		OpenAPI:         []byte(`{"swagger":"2.0"}`),
	})
	if gerr != nil {
		t.Fatal(gerr)
	}
	return g
}

// compactLines re-encodes each line of an NDJSON body compactly, so bodies compare by
// content, not by protojson's spacing.
func compactLines(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		if line == "" {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		b, _ := json.Marshal(v)
		out = append(out, string(b))
	}
	return out
}
