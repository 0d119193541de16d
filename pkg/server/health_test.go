package server_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pgfleet/pgfleet/pkg/server"
)

// watcher is a server.Watcher that the test drives.
type watcher struct {
	mu      sync.Mutex
	fn      func(bool)
	running chan struct{}
}

func newWatcher() *watcher { return &watcher{running: make(chan struct{})} }

func (w *watcher) Run(ctx context.Context) {
	close(w.running)
	<-ctx.Done()
}

func (w *watcher) OnChange(fn func(bool)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fn = fn
}

func (w *watcher) set(serving bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fn(serving)
}

const (
	svcA = "pgfleet.ops.v1.DatabaseMonitor"
	svcB = "pgfleet.stock.v1.StockService"
)

// statuses returns the gRPC health status of each name, "SERVICE_UNKNOWN" if health has none.
func statuses(t *testing.T, hc healthpb.HealthClient, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range names {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil {
			out[name] = "SERVICE_UNKNOWN"
			continue
		}
		out[name] = resp.GetStatus().String()
	}
	return out
}

func TestServer_WatchPool(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{}, nil)
	w := newWatcher()
	srv.WatchPool(w, svcA)
	run(t, srv)
	hc := healthpb.NewHealthClient(dial(t, srv.GRPCAddr()))

	// Liveness never follows the pool: a database outage must not restart the process.
	live := server.LivenessService
	want := map[string]string{"": "NOT_SERVING", svcA: "NOT_SERVING", svcB: "SERVICE_UNKNOWN", live: "SERVING"}
	if diff := cmp.Diff(want, statuses(t, hc, "", svcA, svcB, live)); diff != "" {
		t.Errorf("before the first result, mismatch (-want +got):\n%s", diff)
	}
	select {
	case <-w.running:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not start the watcher")
	}
	for _, serving := range []bool{true, false, true} {
		w.set(serving)
		st := "NOT_SERVING"
		if serving {
			st = "SERVING"
		}
		want := map[string]string{"": st, svcA: st, svcB: "SERVICE_UNKNOWN", live: "SERVING"}
		if diff := cmp.Diff(want, statuses(t, hc, "", svcA, svcB, live)); diff != "" {
			t.Errorf("after set(%t), mismatch (-want +got):\n%s", serving, diff)
		}
	}
}

// TestServer_WatchPool_two: "" serves only while every watcher does; a service follows its own.
func TestServer_WatchPool_two(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{}, nil)
	wa, wb := newWatcher(), newWatcher()
	srv.WatchPool(wa, svcA)
	srv.WatchPool(wb, svcB)
	run(t, srv)
	hc := healthpb.NewHealthClient(dial(t, srv.GRPCAddr()))

	wa.set(true)
	want := map[string]string{"": "NOT_SERVING", svcA: "SERVING", svcB: "NOT_SERVING"}
	if diff := cmp.Diff(want, statuses(t, hc, "", svcA, svcB)); diff != "" {
		t.Errorf("A up, B unknown: mismatch (-want +got):\n%s", diff)
	}
	wb.set(true)
	want = map[string]string{"": "SERVING", svcA: "SERVING", svcB: "SERVING"}
	if diff := cmp.Diff(want, statuses(t, hc, "", svcA, svcB)); diff != "" {
		t.Errorf("both up: mismatch (-want +got):\n%s", diff)
	}
	wa.set(false)
	want = map[string]string{"": "NOT_SERVING", svcA: "NOT_SERVING", svcB: "SERVING"}
	if diff := cmp.Diff(want, statuses(t, hc, "", svcA, svcB)); diff != "" {
		t.Errorf("A down: mismatch (-want +got):\n%s", diff)
	}
}

func TestServer_healthz(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{}, nil)
	w := newWatcher()
	srv.WatchPool(w, svcA)
	run(t, srv)
	base := "http://" + srv.MetricsAddr() + "/healthz"

	type reply struct {
		Code int
		Body string
	}
	get := func(url string) reply {
		code, body := httpGet(t, url)
		return reply{code, body}
	}
	tests := []struct {
		serving bool
		want    map[string]reply
	}{
		{false, map[string]reply{
			base:                      {http.StatusServiceUnavailable, "NOT_SERVING\n"},
			base + "?service=" + svcA: {http.StatusServiceUnavailable, "NOT_SERVING\n"},
			base + "?service=nope":    {http.StatusNotFound, "SERVICE_UNKNOWN\n"},
		}},
		{true, map[string]reply{
			base:                      {http.StatusOK, "SERVING\n"},
			base + "?service=" + svcA: {http.StatusOK, "SERVING\n"},
			base + "?service=nope":    {http.StatusNotFound, "SERVICE_UNKNOWN\n"},
		}},
	}
	for _, tt := range tests {
		w.set(tt.serving)
		got := map[string]reply{}
		for url := range tt.want {
			got[url] = get(url)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("serving=%t: mismatch (-want +got):\n%s", tt.serving, diff)
		}
	}
}
