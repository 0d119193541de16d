package main

import (
	"bufio"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// tokenHeader is the consistency token's HTTP header, as clients spell it.
const tokenHeader = "Pgfleet-Consistency-Token"

// testConsistencyToken: a REST write answers with its consistency token in the HTTP header
// Pgfleet-Consistency-Token (not Grpc-Metadata-*); a read sending it back succeeds and answers
// none; a garbage token is 400 CONSISTENCY_TOKEN_MALFORMED; browsers may send it and read it.
func testConsistencyToken(t *testing.T, e *env) {
	if gateway.TokenHeader != tokenHeader {
		t.Fatalf("gateway.TokenHeader = %q, want %q", gateway.TokenHeader, tokenHeader)
	}
	const email = "token-reader@example.com"
	user := bearer(t, email)
	if r := e.gw.do(t, http.MethodPost, "/v1/users", `{"email":"`+email+`","display_name":"Token"}`, user...); r.code != http.StatusOK || r.header.Get(tokenHeader) == "" {
		t.Fatalf("POST /v1/users = %v, %s %q; want 200 with a token", r, tokenHeader, r.header.Get(tokenHeader))
	}
	w := e.gw.do(t, http.MethodPost, "/v1/portfolios", `{"name":"Token"}`, append(user, "Origin", allowedOrigin)...)
	tok := w.header.Get(tokenHeader)
	if w.code != http.StatusOK || tok == "" {
		t.Fatalf("POST /v1/portfolios = %v, %s %q; want 200 with a token", w, tokenHeader, tok)
	}
	if got := w.header.Get("Grpc-Metadata-" + tokenHeader); got != "" {
		t.Errorf("POST /v1/portfolios answered Grpc-Metadata-%s %q, want the token as %s only", tokenHeader, got, tokenHeader)
	}
	if exposed := strings.ToLower(w.header.Get("Access-Control-Expose-Headers")); !strings.Contains(exposed, strings.ToLower(tokenHeader)) {
		t.Errorf("POST /v1/portfolios with Origin %s: Access-Control-Expose-Headers = %q, want %s among them", allowedOrigin, exposed, tokenHeader)
	}
	id := decode[struct {
		Portfolio struct {
			ID string `json:"id"`
		} `json:"portfolio"`
	}](t, w).Portfolio.ID

	for _, path := range []string{"/v1/portfolios/" + id + "/trades", "/v1/portfolios/" + id, "/v1/stocks?page_size=2"} {
		r := e.gw.do(t, http.MethodGet, path, "", append(user, tokenHeader, tok)...)
		if r.code != http.StatusOK {
			t.Errorf("GET %s with the write's token = %v, want 200", path, r)
		}
		if got := r.header.Get(tokenHeader); got != "" {
			t.Errorf("GET %s answered %s %q, want none: reads give no token", path, tokenHeader, got)
		}
	}

	for _, garbage := range []string{"garbage", "AQ", tok + "x"} {
		r := e.gw.do(t, http.MethodGet, "/v1/stocks/AAPL", "", tokenHeader, garbage)
		body := wantError(t, r, http.StatusBadRequest, 3)
		if got := body.reason(); got != string(apierr.ConsistencyTokenMalformed) {
			t.Errorf("GET /v1/stocks/AAPL with %s %q: reason %q, want %s", tokenHeader, garbage, got, apierr.ConsistencyTokenMalformed)
		}
	}

	// A client stream's token comes in the header of its one answer; a server stream that
	// sends it back sees the write.
	admin := bearer(t, "token-admin@pgfleet.test", auth.RoleAdmin)
	if r := e.gw.do(t, http.MethodPost, "/v1/stocks:upsert", `{"stocks":[{"symbol":"TOKN","name":"Token Corp.","sector":"Tokens"}]}`, admin...); r.code != http.StatusOK || r.header.Get(tokenHeader) == "" {
		t.Fatalf("POST /v1/stocks:upsert = %v, %s %q; want 200 with a token", r, tokenHeader, r.header.Get(tokenHeader))
	}
	ingest := e.gw.do(t, http.MethodPost, "/v1/prices:ingest",
		`{"prices":[{"symbol":"TOKN","time":"2019-01-02T00:00:00Z","open":"1.5","high":"1.5","low":"1.5","close":"1.5","volume":"7"}]}`, admin...)
	if ingest.code != http.StatusOK || ingest.header.Get(tokenHeader) == "" {
		t.Fatalf("POST /v1/prices:ingest = %v, %s %q; want 200 with a token", ingest, tokenHeader, ingest.header.Get(tokenHeader))
	}
	stream := e.gw.do(t, http.MethodGet, "/v1/stocks/TOKN/prices:stream", "", tokenHeader, ingest.header.Get(tokenHeader))
	if stream.code != http.StatusOK || !strings.Contains(string(stream.body), `"2019-01-02T00:00:00Z"`) {
		t.Errorf("GET /v1/stocks/TOKN/prices:stream with the ingest's token = %v, want 200 with the bar", stream)
	}

	// A page of another origin may send the header: the preflight allows it.
	r := e.gw.do(t, http.MethodOptions, "/v1/stocks/AAPL", "",
		"Origin", allowedOrigin,
		"Access-Control-Request-Method", http.MethodGet,
		"Access-Control-Request-Headers", strings.ToLower(tokenHeader))
	allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
	if r.code >= 300 || r.header.Get("Access-Control-Allow-Origin") != allowedOrigin || !strings.Contains(allowed, strings.ToLower(tokenHeader)) {
		t.Errorf("preflight of GET with %s = %v, Access-Control-Allow-Headers %q; want 2xx allowing it", tokenHeader, r, allowed)
	}
}

// testReadYourWrites: with the stock service reading on a hot standby (DATABASE_READ_URL) whose
// replay is paused, a REST read without a token is served by the standby and misses a write
// just made, and the same read sending the write's token back sees it (the service waits
// REPLICA_WAIT for the standby, then reads on the primary); once replay resumes, the token
// read is served by the standby. The lag bound is an hour, so the paused standby stays in use.
func testReadYourWrites(t *testing.T, e *env) {
	rc := pgtest.NewReplicatedCluster(t)
	primary, standby := rc.NewDBURLs(t)
	stock := apptest.StartProcess(t, filepath.Join(e.binDir, "stock"), "DATABASE_URL="+primary, "DATABASE_READ_URL="+standby,
		"MAX_REPLICA_LAG=1h", "REPLICA_CHECK_INTERVAL=100ms", "REPLICA_WAIT=1s")
	own := *e.fleet
	own.stock = stock
	gw := startGateway(t, &own, nil)
	metrics := "http://" + stock.MetricsAddr + "/metrics"
	pgtest.Poll(t, "the stock service's standby serves reads (pgfleet_db_replica_up 1)", func() bool {
		return scrape(t, metrics, "pgfleet_db_replica_up{") == 1
	})

	admin := bearer(t, "ryw-admin@pgfleet.test", auth.RoleAdmin)
	rc.WaitReplayed(t, rc.PrimaryLSN(t)) // the service's migrations
	rc.PauseReplay(t)
	// Until a check has seen the standby past the migrations (the router's floor), reads go to
	// the primary: wait for a read counted on the replica.
	onReplica := `pgfleet_db_reads_total{reason="replica",target="replica"}`
	pgtest.Poll(t, "a read served by the paused standby", func() bool {
		before := scrape(t, metrics, onReplica)
		gw.do(t, http.MethodGet, "/v1/stocks/NONE", "")
		return scrape(t, metrics, onReplica) > before
	})
	w := gw.do(t, http.MethodPost, "/v1/stocks:upsert", `{"stocks":[{"symbol":"RYW","name":"Read Your Writes Inc."}]}`, admin...)
	tok := w.header.Get(tokenHeader)
	if w.code != http.StatusOK || tok == "" {
		t.Fatalf("POST /v1/stocks:upsert = %v, %s %q; want 200 with a token", w, tokenHeader, tok)
	}
	if r := gw.do(t, http.MethodGet, "/v1/stocks/RYW", ""); r.code != http.StatusNotFound {
		t.Errorf("GET /v1/stocks/RYW without a token, replay paused = %v, want 404 (read on the standby, which has not replayed the write)", r)
	}
	if r := gw.do(t, http.MethodGet, "/v1/stocks/RYW", "", tokenHeader, tok); r.code != http.StatusOK {
		t.Errorf("GET /v1/stocks/RYW with the write's token, replay paused = %v, want 200 (read on the primary)", r)
	}

	rc.ResumeReplay(t)
	rc.WaitReplayed(t, rc.PrimaryLSN(t))
	before := scrape(t, metrics, onReplica)
	if r := gw.do(t, http.MethodGet, "/v1/stocks/RYW", "", tokenHeader, tok); r.code != http.StatusOK {
		t.Errorf("GET /v1/stocks/RYW with the write's token, replay resumed = %v, want 200", r)
	}
	if after := scrape(t, metrics, onReplica); after != before+1 {
		t.Errorf("%s went from %v to %v over the token read after replay resumed, want one more (served by the standby)", onReplica, before, after)
	}
}

// scrape returns the value of the first sample at url whose line starts with prefix, 0 if none.
func scrape(tb testing.TB, url, prefix string) float64 {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			tb.Fatalf("scrape %s: %q: %v", url, line, err)
		}
		return v
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("scrape %s: %v", url, err)
	}
	return 0
}
