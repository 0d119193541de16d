package server_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// TestServer_TLS: with TLS on, the API answers only over TLS, while HealthAddr answers
// health checks, and nothing else, in plaintext, as Kubernetes gRPC probes need.
func TestServer_TLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile := tlsfilestest.Write(t, t.TempDir())
	cfg, err := tlsfiles.Server{CertFile: certFile, KeyFile: keyFile}.Config()
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := start(t, server.Options{TLS: cfg, HealthAddr: "127.0.0.1:0"}, func(context.Context) error { return nil })

	creds, err := credentials.NewClientTLSFromFile(certFile, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	secure, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { secure.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := opsv1.NewDatabaseMonitorClient(secure).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{}); err != nil {
		t.Errorf("call over TLS: %v", err)
	}

	quick, cancelQuick := context.WithTimeout(t.Context(), time.Second)
	defer cancelQuick()
	_, err = opsv1.NewDatabaseMonitorClient(dial(t, srv.GRPCAddr())).GetDatabaseStatus(quick, &opsv1.GetDatabaseStatusRequest{})
	if err == nil {
		t.Error("plaintext call to the TLS listener succeeded")
	}

	probe := dial(t, srv.HealthAddr())
	resp, err := healthpb.NewHealthClient(probe).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("plaintext health check = %v, %v; want SERVING", resp, err)
	}
	_, err = opsv1.NewDatabaseMonitorClient(probe).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("API call on the health port = %v, want Unimplemented", err)
	}

	_, body := httpGet(t, "http://"+srv.MetricsAddr()+"/metrics")
	want := fmt.Sprintf("pgfleet_tls_certificate_expiry_timestamp_seconds{listener=%q} %s", "grpc",
		strconv.FormatFloat(float64(tlsfilestest.NotAfter(t, certFile).Unix()), 'g', -1, 64))
	if !slices.Contains(strings.Split(body, "\n"), want) {
		t.Errorf("GET /metrics lacks %q", want)
	}
}
