package deploy

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestMonitoring_namesExported starts the fleet as it runs in production, the four binaries
// each on a database of its own (interview's with a hot standby in DATABASE_READ_URL: the
// pgfleet_db_replica_* series exist only for a configured replica), makes calls that give the labelled series samples (a REST
// trade among them, and calls that fail), scrapes every /metrics, and checks that every metric
// name the alert rules and dashboards read is exported by some process, recorded by a rule, or
// one of the documented outside names (cnpgMetrics, tlsOnly).
func TestMonitoring_namesExported(t *testing.T) {
	t.Parallel()
	groups, exprs := componentExprs(t)
	// Where each name comes from, and the labels its series carry (nil: not checked).
	known := map[string]map[string]bool{"up": nil}
	for _, n := range slices.Concat(cnpgMetrics, tlsOnly) {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} { // histograms, some
			known[n+suffix] = nil
		}
	}
	for _, g := range groups {
		for _, rg := range g.Groups {
			for _, r := range rg.Rules {
				if r.Record != "" {
					known[r.Record] = nil
				}
			}
		}
	}

	f := startFleet(t)
	f.exercise(t)
	// The replica's gauges get their figures at its first check: wait for it, not for a time.
	pgtest.Poll(t, "interview's read replica checked and usable in its /metrics", func() bool {
		return f.hasLine(t, "interview", "pgfleet_db_replica_up{", "} 1")
	})
	for _, name := range components {
		for n, labels := range scrape(t, f.metrics[name]) {
			if known[n] == nil {
				known[n] = map[string]bool{}
			}
			maps.Copy(known[n], labels)
		}
	}

	for _, where := range mapKeys(exprs) {
		sels, err := selectors(exprs[where])
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
		for _, s := range sels {
			labels, ok := known[s.name]
			if !ok {
				t.Errorf("%s: %s is exported by no process of the fleet (nor recorded by a rule, nor CloudNativePG's)", where, s.name)
				continue
			}
			for _, l := range s.labels {
				if labels != nil && !labels[l] && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: %s has no label %s", where, s.name, l)
				}
			}
		}
	}
}

// targetLabels are the labels Prometheus adds to every series of a target (PodMonitor's job
// and the pod's namespace and pod), which no process exports itself.
var targetLabels = []string{"job", "namespace", "pod", "instance", "container", "endpoint"}

// fleet is the four binaries running, with their metrics addresses by component.
type fleet struct {
	gateway string // http://host:port of the REST API
	metrics map[string]string
	client  *http.Client
}

// startFleet builds the four binaries as `make build` does and starts them: stock, then
// portfolio (which prices trades with it) and interview, then the gateway in front of them.
func startFleet(t *testing.T) *fleet {
	t.Helper()
	bin := t.TempDir()
	var pkgs []string
	for _, c := range components {
		pkgs = append(pkgs, "github.com/pgfleet/pgfleet/services/"+c)
	}
	if err := apptest.Build(bin, pkgs...); err != nil {
		t.Fatal(err)
	}
	f := &fleet{metrics: map[string]string{}, client: &http.Client{Timeout: time.Minute}}
	t.Cleanup(f.client.CloseIdleConnections)
	start := func(name string, env ...string) *apptest.Process {
		p := apptest.StartProcess(t, filepath.Join(bin, name), append(env, "DATABASE_URL="+pgtest.NewDBURL(t))...)
		f.metrics[name] = p.MetricsAddr
		return p
	}
	stock := start("stock", "INGEST_DIR="+t.TempDir()) // an empty drop directory: a files job's run succeeds
	// MAX_PRICE_AGE=0: trades execute at the test's prices, however old.
	portfolio := start("portfolio", "STOCK_ADDR="+stock.Addr, "STOCK_TIMEOUT=30s", "MAX_PRICE_AGE=0")
	// interview reads on a hot standby (its question lists are replica-safe): the fleet's one
	// source of the pgfleet_db_replica_* series.
	replicated := pgtest.NewReplicatedCluster(t)
	primaryURL, standbyURL := replicated.NewDBURLs(t) // the binary migrates the primary itself
	interview := apptest.StartProcess(t, filepath.Join(bin, "interview"), "DATABASE_URL="+primaryURL, "DATABASE_READ_URL="+standbyURL)
	f.metrics["interview"] = interview.MetricsAddr

	gw := apptest.StartGatewayProcess(t, filepath.Join(bin, "gateway"),
		"STOCK_ADDR="+stock.Addr, "PORTFOLIO_ADDR="+portfolio.Addr, "INTERVIEW_ADDR="+interview.Addr, "DRAIN_TIMEOUT=2s")
	f.gateway, f.metrics["gateway"] = "http://"+gw.Addr, gw.MetricsAddr
	return f
}

// exercise makes the calls whose series the rules and dashboards read: stocks and prices
// loaded, a user who deposits and trades (portfolio calls stock), interview questions listed,
// calls that fail (an unknown stock, a trade beyond the cash), and an ingestion run.
func (f *fleet) exercise(t *testing.T) {
	t.Helper()
	admin := authtest.Token(t, "admin@pgfleet.test", auth.RoleAdmin)
	user := authtest.Token(t, "trader@example.com")
	steps := []struct {
		method, path, body, token string
		want                      int
	}{
		{"POST", "/v1/stocks:upsert", `{"stocks":[{"symbol":"AAPL","name":"Apple Inc.","sector":"Technology","exchange":"NASDAQ","currency":"USD","market_cap":"3000000000000"}]}`, admin, 200},
		{"POST", "/v1/prices:ingest", `{"prices":[{"symbol":"AAPL","time":"2024-01-02T00:00:00Z","open":"100","high":"101","low":"99","close":"100.5","volume":"1000"}]}`, admin, 200},
		{"GET", "/v1/stocks/AAPL", "", user, 200},
		{"GET", "/v1/stocks/ZZZZ", "", user, 404},
		{"POST", "/v1/users", `{"email":"trader@example.com","display_name":"Trader"}`, user, 200},
		{"GET", "/v1/questions", "", user, 200},
	}
	for _, s := range steps {
		f.call(t, s.method, s.path, s.body, s.token, s.want)
	}
	var created struct {
		Portfolio struct {
			ID string `json:"id"`
		} `json:"portfolio"`
	}
	f.decode(t, f.call(t, "POST", "/v1/portfolios", `{"name":"Main"}`, user, 200), &created)
	p := "/v1/portfolios/" + created.Portfolio.ID
	f.call(t, "POST", p+":deposit", `{"amount":"10000","request_id":"seed"}`, user, 200)
	f.call(t, "POST", p+"/trades", `{"symbol":"AAPL","side":"SIDE_BUY","quantity":"10","request_id":"buy-1"}`, user, 200)
	// Beyond the cash: refused inside the transaction, after its lock.
	f.call(t, "POST", p+"/trades", `{"symbol":"AAPL","side":"SIDE_BUY","quantity":"1000","request_id":"buy-2"}`, user, 0)
	f.call(t, "GET", p, "", user, 200)
	// An ingestion run, whose counters appear once a run has ended.
	f.call(t, "POST", "/v1/ingestionJobs", `{"job_id":"drop","source":"INGESTION_SOURCE_FILES","schedule":"@daily"}`, admin, 200)
	f.call(t, "POST", "/v1/ingestionJobs/drop:run", `{"request_id":"monitoring"}`, admin, 200)
	pgtest.Poll(t, "an ingestion run ended, in stock's /metrics", func() bool {
		return f.hasLine(t, "stock", `pgfleet_ingest_runs_total{ingestion_job="drop",state="succeeded"}`, "")
	})
}

// hasLine reports whether component's /metrics has a line starting with prefix and ending
// with suffix.
func (f *fleet) hasLine(t *testing.T, component, prefix, suffix string) bool {
	t.Helper()
	resp, err := f.client.Get("http://" + f.metrics[component] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, prefix) && strings.HasSuffix(line, suffix) {
			return true
		}
	}
	return false
}

// call sends a request and checks its status (want 0: any status but 5xx).
func (f *fleet) call(t *testing.T, method, path, body, token string, want int) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, f.gateway+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if want == 0 && resp.StatusCode >= 500 || want != 0 && resp.StatusCode != want {
		t.Fatalf("%s %s = HTTP %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return b
}

func (f *fleet) decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
}

// scrape reads addr's /metrics and returns the names a query can select, with the labels of
// their series: a histogram's _bucket (with le), _sum and _count series, a summary's _sum and
// _count, any other family's own name.
func scrape(t *testing.T, addr string) map[string]map[string]bool {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: HTTP %d", addr, resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("%s/metrics: %v", addr, err)
	}
	names := map[string]map[string]bool{}
	for n, fam := range families {
		labels := map[string]bool{}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		switch fam.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			names[n+"_bucket"] = maps.Clone(labels)
			names[n+"_bucket"]["le"] = true
			names[n+"_sum"], names[n+"_count"] = labels, labels
		case dto.MetricType_SUMMARY:
			names[n+"_sum"], names[n+"_count"] = labels, labels
		}
		names[n] = labels
	}
	if len(names) == 0 {
		t.Fatalf("%s/metrics: no metrics", addr)
	}
	return names
}
