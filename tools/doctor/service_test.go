package main

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// checkCertificate reads the certificate a real TLS listener serves: one that expires within
// 14 days is a warning, one the given CA does not vouch for a failure.
func TestCheckCertificate(t *testing.T) {
	t.Parallel()
	certFile, keyFile := tlsfilestest.Write(t, t.TempDir()) // self-signed, valid for an hour
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	tests := []struct {
		name   string
		caFile string
		want   Status
		detail string
	}{
		{"expires_soon", certFile, Warn, "in 0 days"},
		{"unknown_authority", "", Fail, "handshake"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []Check
			checkCertificate(t.Context(), l.Addr().String(), tt.caFile, 30*time.Second, func(check string, st Status, format string, args ...any) {
				got = append(got, Check{Check: check, Status: st, Detail: fmt.Sprintf(format, args...)})
			})
			if len(got) != 1 || got[0].Status != tt.want || !strings.Contains(got[0].Detail, tt.detail) {
				t.Errorf("checkCertificate = %+v, want one %s check with %q", got, tt.want, tt.detail)
			}
		})
	}
}
