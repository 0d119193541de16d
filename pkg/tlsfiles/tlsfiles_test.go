package tlsfiles_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// TestConfig_reloads: a renewed pair written over the files is served to new handshakes,
// and a half-written renewal leaves the last good certificate in use.
func TestConfig_reloads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := tlsfilestest.Write(t, dir)
	cfg, err := tlsfiles.Server{CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	first, err := cfg.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}

	newCert, newKey := tlsfilestest.Write(t, t.TempDir())
	later := time.Now().Add(time.Minute)
	copyFile(t, newCert, certFile, later) // the key is still the old one: a pair mid-renewal
	if got, err := cfg.GetCertificate(nil); err != nil || !bytes.Equal(got.Certificate[0], first.Certificate[0]) {
		t.Fatalf("mid-renewal: got a different certificate or %v; want the last good one", err)
	}
	copyFile(t, newKey, keyFile, later.Add(time.Second))
	renewed, err := cfg.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(renewed.Certificate[0], first.Certificate[0]) {
		t.Error("the renewed certificate was not picked up")
	}
}

func copyFile(t *testing.T, from, to string, mtime time.Time) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(to, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestConfig_errors(t *testing.T) {
	t.Parallel()
	if cfg, err := (tlsfiles.Server{}).Config(); cfg != nil || err != nil {
		t.Errorf("no files: got %v, %v; want plaintext (nil, nil)", cfg, err)
	}
	if _, err := (tlsfiles.Server{CertFile: "tls.crt"}).Config(); err == nil {
		t.Error("cert without key: want an error")
	}
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := (tlsfiles.Server{CertFile: missing, KeyFile: missing}).Config(); err == nil {
		t.Error("missing files: want an error at start")
	}
}
