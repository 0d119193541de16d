package tlsfiles_test

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// TestNewExpiryCollector: the expiry is the served certificate's NotAfter, read through a
// reloading config or a static one; a config with no certificate reports nothing.
func TestNewExpiryCollector(t *testing.T) {
	t.Parallel()
	certFile, keyFile := tlsfilestest.Write(t, t.TempDir())
	reloading, err := tlsfiles.Server{CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	static := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	want := fmt.Sprintf(`
# HELP pgfleet_tls_certificate_expiry_timestamp_seconds When the certificate the listener serves now expires (its NotAfter), in Unix seconds.
# TYPE pgfleet_tls_certificate_expiry_timestamp_seconds gauge
pgfleet_tls_certificate_expiry_timestamp_seconds{listener="grpc"} %d
`, tlsfilestest.NotAfter(t, certFile).Unix())
	for name, cfg := range map[string]*tls.Config{"reloading": reloading, "static": static} {
		if err := testutil.CollectAndCompare(tlsfiles.NewExpiryCollector("grpc", cfg), strings.NewReader(want)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	empty := &tls.Config{MinVersion: tls.VersionTLS12}
	if n := testutil.CollectAndCount(tlsfiles.NewExpiryCollector("grpc", empty)); n != 0 {
		t.Errorf("no certificate: %d series, want none", n)
	}
}
