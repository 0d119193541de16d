package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// TestDial_TLS: with TLS_CA_FILE the client verifies the peer's certificate against it.
func TestDial_TLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := tlsfilestest.Write(t, t.TempDir())
	tlsCfg, err := tlsfiles.Server{CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	opsv1.RegisterDatabaseMonitorServer(srv, &peer{handle: ok})
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(srv.Stop)

	cfg := testConfig(lis.Addr().String())
	cfg.TLSCAFile = certFile
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := call(ctx, dial(t, cfg, nil)); err != nil {
		t.Errorf("call with the peer's CA: %v", err)
	}

	other, _ := tlsfilestest.Write(t, t.TempDir()) // a CA that did not sign the peer's certificate
	cfg.TLSCAFile = other
	cfg.MaxAttempts = 1
	quick, cancelQuick := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancelQuick()
	if err := call(quick, dial(t, cfg, nil)); err == nil {
		t.Error("call with another CA succeeded")
	}
}
