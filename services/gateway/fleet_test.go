package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// startupTimeout bounds the gateway's start on a machine busy with the rest of the tests.
const startupTimeout = 60 * time.Second

// buildServices builds the three service binaries from the workspace, as `make build` does,
// into a directory removed when tb ends.
func buildServices(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := apptest.Build(dir, "github.com/pgfleet/pgfleet/services/stock",
		"github.com/pgfleet/pgfleet/services/portfolio", "github.com/pgfleet/pgfleet/services/interview"); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// startService runs binDir/name on a database of its own with env (KEY=VALUE pairs), waits
// until it is SERVING, and stops it when tb ends.
func startService(tb testing.TB, binDir, name string, env ...string) *apptest.Process {
	tb.Helper()
	return apptest.StartProcess(tb, filepath.Join(binDir, name), append([]string{"DATABASE_URL=" + pgtest.NewDBURL(tb)}, env...)...)
}

// fleet is the three services, each on its own database.
type fleet struct {
	stock, portfolio, interview *apptest.Process
}

// startFleet starts stock, then portfolio (which prices trades with it) and interview.
func startFleet(tb testing.TB, binDir string) *fleet {
	tb.Helper()
	// The ingestion leader stays off: a run it took would change the stock tables while the
	// bad-input pass compares them; INGEST_DIR makes files jobs creatable (they stay queued).
	f := &fleet{stock: startService(tb, binDir, "stock", "INGEST_ENABLED=false", "INGEST_DIR="+tb.TempDir())}
	// MAX_PRICE_AGE=0: the fixtures' prices are from 2018, and trades must execute at them.
	f.portfolio = startService(tb, binDir, "portfolio", "STOCK_ADDR="+f.stock.Addr, "STOCK_TIMEOUT=10s", "MAX_PRICE_AGE=0")
	f.interview = startService(tb, binDir, "interview")
	return f
}

// testGateway is the gateway under test, run in-process by apptest through run.
type testGateway struct {
	url     string // http://127.0.0.1:port
	metrics string // http://127.0.0.1:port
	client  *http.Client
}

// allowedOrigin is the one origin the test gateways let call cross-origin.
const allowedOrigin = "http://app.example.test"

// startGateway runs the gateway in front of f with env added to the test defaults, and
// waits until it answers.
func startGateway(tb testing.TB, f *fleet, env map[string]string) *testGateway {
	tb.Helper()
	vars := map[string]string{
		"HTTP_ADDR":            apptest.FreeAddr(tb),
		"STOCK_ADDR":           f.stock.Addr,
		"PORTFOLIO_ADDR":       f.portfolio.Addr,
		"INTERVIEW_ADDR":       f.interview.Addr,
		"STOCK_TIMEOUT":        "30s", // a race-detector build on a busy machine is slow
		"PORTFOLIO_TIMEOUT":    "30s",
		"INTERVIEW_TIMEOUT":    "30s",
		"HEALTH_TIMEOUT":       "5s",
		"CORS_ALLOWED_ORIGINS": allowedOrigin,
		"DRAIN_TIMEOUT":        "2s",
	}
	for k, v := range env {
		vars[k] = v
	}
	svc := apptest.Start(tb, run, vars)
	g := &testGateway{
		url:     "http://" + vars["HTTP_ADDR"],
		metrics: "http://" + svc.MetricsAddr,
		client:  &http.Client{Timeout: 30 * time.Second}, // no test request may hang
	}
	tb.Cleanup(g.client.CloseIdleConnections)
	for deadline := time.Now().Add(startupTimeout); ; time.Sleep(20 * time.Millisecond) {
		resp, err := g.client.Get(g.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gateway not up within %v: %v", startupTimeout, err)
		}
	}
}

// response is an answer read whole.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends method path with body ("": none) and headers given as name, value pairs.
func (g *testGateway) do(tb testing.TB, method, path, body string, headers ...string) response {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tb.Context(), method, g.url+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return g.send(tb, req)
}

func (g *testGateway) send(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := g.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := readAnswer(resp)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	checkContract(tb, req, resp.StatusCode, resp.Header, b)
	switch resp.Header.Get("Content-Type") {
	case "application/json":
		noNulls(tb, req.Method+" "+req.URL.Path, b)
	case "text/event-stream":
		for i, line := range bytes.Split(b, []byte("\n")) {
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				noNulls(tb, fmt.Sprintf("%s %s line %d", req.Method, req.URL.Path, i), data)
			}
		}
	case "application/x-ndjson":
		for i, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
			noNulls(tb, fmt.Sprintf("%s %s line %d", req.Method, req.URL.Path, i), line)
		}
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// firstEvent reads an event stream up to its first event (comments before it included),
// or to its end if it ends first: a Watch stream may never end.
func firstEvent(body io.Reader) ([]byte, error) {
	var b []byte
	br := bufio.NewReader(body)
	for {
		line, err := br.ReadBytes('\n')
		b = append(b, line...)
		if errors.Is(err, io.EOF) {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		hasData := bytes.HasPrefix(b, []byte("data: ")) || bytes.Contains(b, []byte("\ndata: "))
		if hasData && bytes.HasSuffix(b, []byte("\n\n")) {
			return b, nil
		}
	}
}

// readAnswer reads a whole answer, but an event stream only to its first event.
func readAnswer(resp *http.Response) ([]byte, error) {
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return firstEvent(resp.Body)
	}
	return io.ReadAll(resp.Body)
}

// noNulls fails tb if the JSON document b holds a null anywhere: the gateway leaves unset
// message fields out, as the OpenAPI document, which types none of them nullable, requires.
// Every answer send reads is checked, success or error.
func noNulls(tb testing.TB, what string, b []byte) {
	tb.Helper()
	if len(b) == 0 {
		return
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		tb.Errorf("%s: answer is not JSON: %v: %.200s", what, err, b)
		return
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case nil:
			tb.Errorf("%s: %s is null, want it left out: %.300s", what, path, b)
		case map[string]any:
			for k, e := range v {
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range v {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("$", doc)
}

// bearer returns an Authorization header pair for subject with roles.
func bearer(tb testing.TB, subject string, roles ...string) []string {
	tb.Helper()
	return []string{"Authorization", "Bearer " + authtest.Token(tb, subject, roles...)}
}

func (r response) String() string { return fmt.Sprintf("HTTP %d %s", r.code, r.body) }
