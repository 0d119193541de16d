package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
)

// serveDatabaseStatus asks every upstream's DatabaseMonitor at once and answers one document
// keyed by service name: {"stock": {"status": {...}}, "portfolio": {"error": {"code": 14, ...}}}.
// Each value is protojson, as the REST API renders GetDatabaseStatusResponse and
// google.rpc.Status. It answers 503 if any call failed or any database is not SERVING.
//
// The calls carry the gateway's service token as a per-call credential, not a dial option:
// the REST calls on the same connections carry their caller's own Authorization, and a
// second one would be refused.
func (g *Gateway) serveDatabaseStatus(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	var opts []grpc.CallOption
	if g.opts.ServiceCredentials != nil {
		opts = append(opts, grpc.PerRPCCredentials(g.opts.ServiceCredentials))
	}
	doc := make(map[string]json.RawMessage, len(g.opts.Upstreams))
	failed := false
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range g.opts.Upstreams {
		wg.Go(func() {
			// r.Context() carries no outgoing metadata: routes added with HandlePath do not
			// forward the caller's headers, so the service token is the only credential.
			ctx, cancel := context.WithTimeout(r.Context(), g.opts.HealthTimeout)
			defer cancel()
			resp, err := opsv1.NewDatabaseMonitorClient(u.Conn).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{}, opts...)
			entry, bad := databaseEntry(resp, err)
			mu.Lock()
			defer mu.Unlock()
			doc[u.Name] = entry
			failed = failed || bad
		})
	}
	wg.Wait()
	code := http.StatusOK
	if failed {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, doc)
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
