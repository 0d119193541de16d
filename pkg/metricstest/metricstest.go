// Package metricstest reads metrics as Prometheus does, for tests: a registry served on a real
// listener, scraped over HTTP, its lines checked in the text format.
package metricstest

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Serve serves g's /metrics on a loopback listener until tb ends and returns its URL.
func Serve(tb testing.TB, g prometheus.Gatherer) string {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(g, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(lis) //nolint:errcheck // ErrServerClosed at cleanup
	tb.Cleanup(func() { srv.Close() })
	return "http://" + lis.Addr().String() + "/metrics"
}

// Scrape returns the body of a GET of url.
func Scrape(tb testing.TB, url string) string {
	tb.Helper()
	resp, err := http.Get(url) //nolint:noctx // a local scrape, bounded by the test's deadline
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read %s: %v", url, err)
	}
	return string(b)
}

// HasLine reports whether a line of body starts with prefix.
func HasLine(body, prefix string) bool {
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// WantLine fails tb unless a line of body starts with want, showing the lines of want's
// metric (its name up to the labels) when none does.
func WantLine(tb testing.TB, body, want string) {
	tb.Helper()
	if !HasLine(body, want) {
		tb.Errorf("scrape lacks a line starting %q; the metric's lines:\n%s", want, Lines(body, metricName(want)))
	}
}

// Lines returns the lines of body that start with prefix.
func Lines(body, prefix string) string {
	var out []string
	for line := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// metricName is the series name a sample line starts with.
func metricName(line string) string {
	if i := strings.IndexAny(line, "{ "); i >= 0 {
		return line[:i]
	}
	return line
}
