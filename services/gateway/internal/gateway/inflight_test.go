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

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// newBusyGateway returns a gateway taking maxInFlight API requests at once and maxQueued
// waiting, whose routes POST /v1/block and GET /v1/stream hold their request until release
// is closed; the stream sends one message first, and started is closed once it has.
func newBusyGateway(t *testing.T, maxInFlight, maxQueued int) (g *Gateway, release, started chan struct{}) {
	t.Helper()
	release, started = make(chan struct{}), make(chan struct{})
	register := func(_ context.Context, mux *runtime.ServeMux, _ grpc.ClientConnInterface) error {
		if err := mux.HandlePath(http.MethodPost, "/v1/block", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			<-release
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "{}")
		}); err != nil {
			return err
		}
		return mux.HandlePath(http.MethodGet, "/v1/stream", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			_, out := runtime.MarshalerForRequest(mux, r)
			sent := false
			recv := func() (proto.Message, error) {
				if !sent {
					sent = true
					return &structpb.Struct{}, nil
				}
				close(started)
				<-release
				return nil, io.EOF
			}
			ctx := runtime.NewServerMetadataContext(r.Context(), runtime.ServerMetadata{})
			runtime.ForwardResponseStream(ctx, mux, out, w, r, recv, mux.GetForwardResponseOptions()...)
		})
	}
	g, err := New(t.Context(), Options{
		Upstreams:       []Upstream{{Name: "busy", Register: register}},
		MaxRequestBytes: 1024,
		MaxInFlight:     maxInFlight,
		MaxQueued:       maxQueued,
		HealthTimeout:   time.Second,
		OpenAPI:         []byte(`{"swagger":"2.0"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g, release, started
}

// waitFor polls cond until it holds; the test's deadline bounds it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// serveAsync serves req in a goroutine; the answer arrives on the channel.
func serveAsync(g *Gateway, req *http.Request) <-chan *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		done <- rec
	}()
	return done
}

// TestGateway_inFlight: past MAX_IN_FLIGHT running and MAX_QUEUED waiting, an API request is
// refused at once, 429 GATEWAY_BUSY with RetryInfo and Retry-After; a waiting one is served
// once a slot frees; the gateway's own routes are not counted.
func TestGateway_inFlight(t *testing.T) {
	t.Parallel()
	g, release, _ := newBusyGateway(t, 1, 1)
	first := serveAsync(g, httptest.NewRequest(http.MethodPost, "/v1/block", strings.NewReader("{}")))
	waitFor(t, "the first request to run", func() bool { return len(g.inFlight.slots) == 1 })
	second := serveAsync(g, httptest.NewRequest(http.MethodPost, "/v1/block", strings.NewReader("{}")))
	waitFor(t, "the second request to wait", func() bool { return g.inFlight.queued.Load() == 1 })

	rec := httptest.NewRecorder()
	g.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/block", strings.NewReader("{}")))
	var body struct {
		Code    int              `json:"code"`
		Details []map[string]any `json:"details"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("third request: %v: %s", err, rec.Body)
	}
	reason, retry := "", false
	for _, d := range body.Details {
		switch d["@type"] {
		case "type.googleapis.com/google.rpc.ErrorInfo":
			reason, _ = d["reason"].(string)
		case "type.googleapis.com/google.rpc.RetryInfo":
			retry = true
		}
	}
	if rec.Code != http.StatusTooManyRequests || reason != string(apierr.GatewayBusy) || !retry || rec.Header().Get("Retry-After") == "" {
		t.Errorf("third request = %d %s (Retry-After %q), want 429 GATEWAY_BUSY with RetryInfo and Retry-After",
			rec.Code, rec.Body, rec.Header().Get("Retry-After"))
	}
	own := httptest.NewRecorder()
	g.ServeHTTP(own, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if own.Code != http.StatusOK {
		t.Errorf("GET /openapi.json while the API is busy = %d, want 200", own.Code)
	}

	close(release)
	for name, done := range map[string]<-chan *httptest.ResponseRecorder{"first": first, "second (queued)": second} {
		if rec := <-done; rec.Code != http.StatusOK {
			t.Errorf("%s request = %d %s, want 200", name, rec.Code, rec.Body)
		}
	}
}

// TestGateway_inFlight_streams: a server stream gives its slot back once it has started, so
// a long export does not hold one of MAX_IN_FLIGHT for its whole life.
func TestGateway_inFlight_streams(t *testing.T) {
	t.Parallel()
	g, release, started := newBusyGateway(t, 1, 0)
	stream := serveAsync(g, httptest.NewRequest(http.MethodGet, "/v1/stream", nil))
	<-started
	waitFor(t, "the stream's slot to be given back", func() bool { return len(g.inFlight.slots) == 0 })
	blocked := serveAsync(g, httptest.NewRequest(http.MethodPost, "/v1/block", strings.NewReader("{}")))
	waitFor(t, "the call to run beside the stream", func() bool { return len(g.inFlight.slots) == 1 })
	close(release)
	if rec := <-blocked; rec.Code != http.StatusOK {
		t.Errorf("call beside an open stream = %d %s, want 200", rec.Code, rec.Body)
	}
	if rec := <-stream; rec.Code != http.StatusOK {
		t.Errorf("stream = %d %s, want 200", rec.Code, rec.Body)
	}
}
