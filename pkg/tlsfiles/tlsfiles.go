// Package tlsfiles serves TLS from certificate files named in the environment, the way
// cert-manager or a mounted Kubernetes Secret provides them, and picks up a renewed
// certificate without a restart.
package tlsfiles

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Server is a listener's certificate and key (PEM files). Both empty means plaintext.
type Server struct {
	CertFile string `env:"TLS_CERT_FILE" help:"PEM certificate (chain) of the listener; with TLS_KEY_FILE turns TLS on, re-read when renewed; empty: plaintext"`
	KeyFile  string `env:"TLS_KEY_FILE" help:"PEM private key of TLS_CERT_FILE"`
}

// Enabled reports whether TLS is configured.
func (s Server) Enabled() bool { return s.CertFile != "" || s.KeyFile != "" }

// Config returns the server TLS config (TLS 1.2 or later), or nil when TLS is off. The pair is
// read now, so a bad file fails at start, and read again on a handshake once either file has
// changed, so a renewed certificate is used by new connections.
func (s Server) Config() (*tls.Config, error) {
	if !s.Enabled() {
		return nil, nil
	}
	if s.CertFile == "" || s.KeyFile == "" {
		return nil, errors.New("tls: set both TLS_CERT_FILE and TLS_KEY_FILE")
	}
	r := &reloader{Server: s}
	if _, err := r.certificate(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return r.certificate() },
		NextProtos:     []string{"h2", "http/1.1"},
	}, nil
}

type reloader struct {
	Server
	mu      sync.Mutex
	cert    *tls.Certificate
	modTime time.Time // the later of the two files' modification times when cert was read
}

func (r *reloader) certificate() (*tls.Certificate, error) {
	mod, err := r.latestModTime()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cert != nil && (err != nil || !mod.After(r.modTime)) {
		return r.cert, nil // unchanged, or being replaced right now: keep serving the last good one
	}
	cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		if r.cert != nil {
			return r.cert, nil
		}
		return nil, fmt.Errorf("tls: load TLS_CERT_FILE/TLS_KEY_FILE: %w", err)
	}
	r.cert, r.modTime = &cert, mod
	return r.cert, nil
}

func (r *reloader) latestModTime() (time.Time, error) {
	var latest time.Time
	for _, f := range []string{r.CertFile, r.KeyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return time.Time{}, err
		}
		if fi.ModTime().After(latest) {
			latest = fi.ModTime()
		}
	}
	return latest, nil
}
