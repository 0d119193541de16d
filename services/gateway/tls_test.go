package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files and returns their
// paths and a pool that trusts the certificate.
func selfSigned(tb testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	tb.Helper()
	certFile, keyFile = tlsfilestest.Write(tb, tb.TempDir())
	pem, err := os.ReadFile(certFile)
	if err != nil {
		tb.Fatal(err)
	}
	pool = x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		tb.Fatal("no certificate in " + certFile)
	}
	return certFile, keyFile, pool
}

// testTLS: with TLS_CERT_FILE and TLS_KEY_FILE the gateway serves HTTPS (HTTP/2 included)
// and nothing in plaintext on that port.
func testTLS(t *testing.T, e *env) {
	certFile, keyFile, pool := selfSigned(t)
	gw := startGateway(t, e.fleet, map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
	}}
	t.Cleanup(client.CloseIdleConnections)
	https := "https://" + strings.TrimPrefix(gw.url, "http://")

	resp, err := client.Get(https + "/v1/stocks/AAPL")
	if err != nil {
		t.Fatalf("GET over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Errorf("GET /v1/stocks/AAPL over TLS = %d over %s, want 200 over HTTP/2", resp.StatusCode, resp.Proto)
	}
	// A plaintext request to the TLS port is answered 400 by net/http, never served.
	if r := gw.do(t, http.MethodGet, "/v1/stocks/AAPL", ""); r.code != http.StatusBadRequest {
		t.Errorf("plaintext GET to the TLS port = %v, want 400", r)
	}

	// The metrics listener reports the served certificate's expiry.
	mresp, err := gw.client.Get(gw.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	body, err := io.ReadAll(mresp.Body)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pgfleet_tls_certificate_expiry_timestamp_seconds{listener=%q} %s", "https",
		strconv.FormatFloat(float64(tlsfilestest.NotAfter(t, certFile).Unix()), 'g', -1, 64))
	if !slices.Contains(strings.Split(string(body), "\n"), want) {
		t.Errorf("/metrics lacks %q", want)
	}
}
