package main

import (
	"net/http"
	"path/filepath"
	"slices"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestGatewayOutage stops the stock service's database under a gateway: every REST call to
// it is a 503 with the error body, from the first. The service says DATABASE_UNAVAILABLE;
// once the gateway's own breaker has opened on those answers, it fails fast with
// PEER_UNAVAILABLE. Neither is ever a 409 (issue 11).
func TestGatewayOutage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := apptest.Build(dir, "github.com/pgfleet/pgfleet/services/stock"); err != nil {
		t.Fatal(err)
	}
	cluster := pgtest.NewCluster(t)
	nowhere := &apptest.Process{Addr: apptest.FreeAddr(t)} // portfolio and interview: not called
	f := &fleet{portfolio: nowhere, interview: nowhere,
		stock: apptest.StartProcess(t, filepath.Join(dir, "stock"), "DATABASE_URL="+cluster.NewDBURL(t))}
	gw := startGateway(t, f, nil)
	ingest := bearer(t, "ingest@example.com", "ingest")
	if r := gw.do(t, http.MethodPost, "/v1/stocks:upsert", `{"stocks":[{"symbol":"AAPL","name":"Apple Inc."}]}`, ingest...); r.code != http.StatusOK {
		t.Fatalf("upsert before the outage = %v", r)
	}

	cluster.StopUntilCleanup(t)
	calls := []struct {
		method, path, body string
		headers            []string
	}{
		{http.MethodGet, "/v1/stocks/AAPL", "", nil},
		{http.MethodGet, "/v1/stocks?page_size=5", "", nil},
		{http.MethodGet, "/v1/stocks:batchGet?symbols=AAPL", "", nil},
		{http.MethodGet, "/v1/prices:latest?symbols=AAPL", "", nil},
		{http.MethodGet, "/v1/stocks/AAPL/prices", "", nil},
		{http.MethodGet, "/v1/stocks/AAPL/prices:stream", "", nil},
		{http.MethodPost, "/v1/stocks:upsert", `{"stocks":[{"symbol":"MSFT","name":"Microsoft"}]}`, ingest},
		{http.MethodDelete, "/v1/stocks/AAPL", "", ingest},
	}
	var reasons []string
	for round := range 3 {
		for _, c := range calls {
			r := gw.do(t, c.method, c.path, c.body, c.headers...)
			body := wantError(t, r, http.StatusServiceUnavailable, 14)
			t.Logf("round %d: %s %s = %d %s", round, c.method, c.path, r.code, body.reason())
			reasons = append(reasons, body.reason())
			if reason := body.reason(); reason != string(apierr.DatabaseUnavailable) && reason != string(apierr.PeerUnavailable) {
				t.Errorf("round %d: %s %s reason %q, want DATABASE_UNAVAILABLE or PEER_UNAVAILABLE", round, c.method, c.path, reason)
			}
		}
	}
	if !slices.Contains(reasons, string(apierr.DatabaseUnavailable)) {
		t.Errorf("reasons %v: the service's DATABASE_UNAVAILABLE never reached the client", reasons)
	}
}
