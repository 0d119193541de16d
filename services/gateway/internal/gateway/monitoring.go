package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/dbmonitor"
	"github.com/pgfleet/pgfleet/pkg/history"
)

// serveDatabaseStatus asks every upstream's DatabaseMonitor at once and answers one document
// keyed by service name: {"stock": {"status": {...}}, "portfolio": {"error": {"code": 14, ...}}}.
// Each value is protojson, as the REST API renders GetDatabaseStatusResponse and
// google.rpc.Status. It answers 503 if any call failed or any database is not SERVING.
//
// The answer shows server versions, pool and retry figures and lock holders, so it needs
// what the gRPC call needs: a token with role service or admin. The gateway checks the
// caller's token first (Options.Authorize: one 401 or 403 instead of three calls), then
// calls each service with that same token, never with a token of its own, so each service
// checks the caller itself, as for every other route.
func (g *Gateway) serveDatabaseStatus(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	md, ok := g.admitMonitor(w, r)
	if !ok {
		return
	}
	doc, failed := g.databaseStatus(r.Context(), md)
	code := http.StatusOK
	if failed {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, doc)
}

// databaseStatus asks every upstream's DatabaseMonitor with the caller's md and returns the
// document of /monitoring/database, and whether a call failed or a database does not serve.
func (g *Gateway) databaseStatus(ctx context.Context, md metadata.MD) (map[string]json.RawMessage, bool) {
	outgoing := metadata.NewOutgoingContext(ctx, md)
	doc := make(map[string]json.RawMessage, len(g.opts.Upstreams))
	failed := false
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range g.opts.Upstreams {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(outgoing, g.opts.HealthTimeout)
			defer cancel()
			resp, err := opsv1.NewDatabaseMonitorClient(u.Conn).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{})
			entry, bad := databaseEntry(resp, err)
			mu.Lock()
			defer mu.Unlock()
			doc[u.Name] = entry
			failed = failed || bad
		})
	}
	wg.Wait()
	return doc, failed
}

// admitMonitor checks the caller's token as DatabaseMonitor would, and answers the refusal
// itself; it returns the caller's Authorization as metadata, for the calls to the services.
func (g *Gateway) admitMonitor(w http.ResponseWriter, r *http.Request) (metadata.MD, bool) {
	md := metadata.MD{}
	for _, v := range r.Header.Values("Authorization") {
		md.Append("authorization", v)
	}
	if g.opts.Authorize != nil {
		if _, err := g.opts.Authorize(metadata.NewIncomingContext(r.Context(), md), opsv1.DatabaseMonitor_GetDatabaseStatus_FullMethodName); err != nil {
			st := status.Convert(err)
			g.writeStatus(w, st, runtime.HTTPStatusFromCode(st.Code()))
			return nil, false
		}
	}
	return md, true
}

// serveRecent answers the gateway's own recent traffic, {"service": "gateway", "recent":
// [...]}, each sample as a service's DatabaseStatus.recent holds one (requests per second,
// p99, share of 5xx answers; pool use 0: the gateway has no pool). The status page draws
// it beside the services'. It needs the token /monitoring/database needs.
func (g *Gateway) serveRecent(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	if _, ok := g.admitMonitor(w, r); !ok {
		return
	}
	doc, err := g.recent()
	if err != nil { // cannot happen with this message type
		g.writeStatus(w, apierr.New(apierr.Internal, "failed to marshal a sample", nil).GRPCStatus(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, doc)
}

// recent returns the document of /monitoring/recent.
func (g *Gateway) recent() (map[string]any, error) {
	var samples []history.Sample
	if g.opts.Recent != nil {
		samples = g.opts.Recent()
	}
	recent := make([]json.RawMessage, 0, len(samples))
	for _, s := range dbmonitor.Samples(samples) {
		b, err := marshaler.Marshal(s)
		if err != nil {
			return nil, err
		}
		recent = append(recent, b)
	}
	return map[string]any{"service": "gateway", "recent": recent}, nil
}

// databaseEntry renders one service's answer, and reports whether it is a failure.
func databaseEntry(resp *opsv1.GetDatabaseStatusResponse, err error) (json.RawMessage, bool) {
	var field string
	var body []byte
	if err != nil {
		field = "error"
		body, err = marshaler.Marshal(status.Convert(err).Proto())
	} else {
		field = "status"
		body, err = marshaler.Marshal(resp.GetStatus())
	}
	if err != nil { // cannot happen with these message types
		body = []byte(`{"code":13,"message":"failed to marshal status"}`)
		field = "error"
	}
	entry, _ := json.Marshal(map[string]json.RawMessage{field: body})
	return entry, field == "error" || resp.GetStatus().GetHealth() != opsv1.Health_HEALTH_SERVING
}

// databaseWatchInterval is how often /monitoring/database:watch looks for a change.
const databaseWatchInterval = 2 * time.Second

// watchDatabaseStatus serves GET /monitoring/database:watch, the status page's live feed:
// server-sent events (sse.go), each the same JSON as its REST twin, sent when it differs
// from the last one sent, looked for every databaseWatchInterval:
//   - the default (unnamed) event: /monitoring/database's document;
//   - "health": /health's report;
//   - "recent": /monitoring/recent's document.
//
// It needs the token /monitoring/database needs (EventSource sends it as access_token).
func (g *Gateway) watchDatabaseStatus(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	md, ok := g.admitMonitor(w, r)
	if !ok {
		return
	}
	sw := sseOf(w)
	if sw == nil { // admitWatch gives every Watch route one
		g.writeStatus(w, apierr.New(apierr.Internal, "no event stream", nil).GRPCStatus(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", eventStream)
	ctx := r.Context()
	last := map[string][]byte{}
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil || bytes.Equal(b, last[event]) {
			return err
		}
		last[event] = b
		return sw.writeEvent("", event, b)
	}
	tick := time.NewTicker(databaseWatchInterval)
	defer tick.Stop()
	for {
		health, _ := g.health(ctx)
		dbs, _ := g.databaseStatus(ctx, md)
		recent, err := g.recent()
		if ctx.Err() != nil {
			break
		}
		if err == nil {
			err = errors.Join(send("health", health), send("", dbs), send("recent", recent))
		}
		if err != nil {
			return // the client is gone, or stopped reading
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	if st, ok := shuttingDown(ctx); ok {
		g.writeStreamError(sw, st)
	}
}

// sseOf returns the sseWriter under w (admitWatch's), or nil.
func sseOf(w http.ResponseWriter) *sseWriter {
	for {
		switch v := w.(type) {
		case *sseWriter:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}
