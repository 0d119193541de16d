package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"
)

// testRequestID: with tracing off, the gateway returns the client's X-Request-Id (a new id
// when it sends none or an unusable one), and passes it to the service, whose log line of
// the call carries it as request_id.
func testRequestID(t *testing.T, e *env) {
	const id = "req-test-7f3a"
	r := e.gw.do(t, http.MethodGet, "/v1/stocks/NOPE", "", "X-Request-Id", id)
	if r.code != http.StatusNotFound {
		t.Fatalf("GET /v1/stocks/NOPE = %v, want 404", r)
	}
	if got := r.header.Get("X-Request-Id"); got != id {
		t.Errorf("X-Request-Id = %q, want the client's %q", got, id)
	}
	for _, sent := range []string{"", `bad id "level=ERROR"`} {
		r := e.gw.do(t, http.MethodGet, "/v1/stocks/AAPL", "", "X-Request-Id", sent)
		if got := r.header.Get("X-Request-Id"); len(got) != 32 || got == sent {
			t.Errorf("X-Request-Id sent %q: answered %q, want a new 32-digit id", sent, got)
		}
	}
	// NOT_FOUND is logged at info, the services' default level.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if loggedRequestID(t, e.fleet.stock.Log, id) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stock logged no line with request_id %q", id)
		}
	}
}

// loggedRequestID reports whether the JSON log at path has a line with request_id id.
func loggedRequestID(t *testing.T, path, id string) bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var rec struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.RequestID == id {
			return true
		}
	}
	return false
}
