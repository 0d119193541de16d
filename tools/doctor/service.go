package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
)

// tlsConfig trusts the CA in caFile; "" means no TLS (nil).
func tlsConfig(caFile string) (*tls.Config, error) {
	if caFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

// dial returns a client of addr (TLS when caFile is set) that sends token, if any.
func dial(addr, caFile, token string) (*grpc.ClientConn, error) {
	tc, err := tlsConfig(caFile)
	if err != nil {
		return nil, err
	}
	creds := insecure.NewCredentials()
	if tc != nil {
		creds = credentials.NewTLS(tc)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.Bearer(token)))
	}
	return grpc.NewClient(addr, opts...)
}

// checkHealth asks grpc.health.v1 for the server's overall status: on HEALTH_ADDR if the
// service has one (plaintext, for probes), else on its gRPC listener.
func checkHealth(ctx context.Context, s Service, conn *grpc.ClientConn, timeout time.Duration, add addFunc) {
	where := s.GRPCAddr
	if s.HealthAddr != "" {
		c, err := dial(s.HealthAddr, "", "")
		if err != nil {
			add("health", Fail, "gRPC health %s: %v", s.HealthAddr, err)
			return
		}
		defer c.Close()
		conn, where = c, s.HealthAddr
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	switch {
	case err != nil:
		add("health", Fail, "gRPC health on %s: %s", where, grpcMessage(err))
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		add("health", Fail, "gRPC health on %s: %s", where, resp.GetStatus())
	default:
		add("health", OK, "SERVING on %s", where)
	}
}

func grpcMessage(err error) string {
	s := status.Convert(err)
	msg := s.Message()
	// grpc wraps a refused dial in two layers of prose; the dial error says it all.
	if i := strings.LastIndex(msg, "Error while dialing: "); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len("Error while dialing: "):], `"`)
	}
	return fmt.Sprintf("%s: %s", s.Code(), msg)
}

// checkMonitor asks the service's DatabaseMonitor how it sees its database, and returns its
// pool's maximum size (0 when it did not answer).
func checkMonitor(ctx context.Context, conn *grpc.ClientConn, haveToken bool, timeout time.Duration, add addFunc) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := opsv1.NewDatabaseMonitorClient(conn).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{})
	if err != nil {
		hint := ""
		if !haveToken {
			hint = " (the fleet file has no admin_token)"
		}
		add("monitor", Fail, "DatabaseMonitor: %s%s", grpcMessage(err), hint)
		return 0
	}
	st := resp.GetStatus()
	p := st.GetPool()
	breaker := st.GetRetry().GetBreakerState()
	detail := fmt.Sprintf("database %s in %s, pool %d/%d busy (%d open), breaker %s",
		strings.TrimPrefix(st.GetHealth().String(), "HEALTH_"), st.GetResponseTime().AsDuration().Round(time.Microsecond),
		p.GetAcquiredConns(), p.GetMaxConns(), p.GetTotalConns(), breaker)
	switch {
	case st.GetHealth() != opsv1.Health_HEALTH_SERVING:
		add("monitor", Fail, "%s: %s", detail, st.GetError())
	case breaker == "open":
		add("monitor", Fail, "%s", detail)
	case breaker == "half-open":
		add("monitor", Warn, "%s", detail)
	default:
		add("monitor", OK, "%s", detail)
	}
	return int(p.GetMaxConns())
}

// get fetches url and returns its status code and the time it says it is (its Date header)
// against this machine's clock at the middle of the call.
func get(ctx context.Context, url, caFile string, timeout time.Duration) (code int, skew time.Duration, err error) {
	tc, err := tlsConfig(caFile)
	if err != nil {
		return 0, 0, err
	}
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		var uerr interface{ Unwrap() error }
		if errors.As(err, &uerr) {
			err = uerr.Unwrap() // drop the repeated method and URL
		}
		return 0, 0, err
	}
	resp.Body.Close()
	rtt := time.Since(t0)
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return resp.StatusCode, 0, fmt.Errorf("no Date header")
	}
	// Date has whole seconds: the peer's clock was in [date, date+1s) when it answered.
	mid := t0.Add(rtt / 2)
	switch {
	case mid.Before(date.Add(-rtt / 2)):
		skew = date.Add(-rtt / 2).Sub(mid)
	case mid.After(date.Add(time.Second + rtt/2)):
		skew = date.Add(time.Second + rtt/2).Sub(mid)
	}
	return resp.StatusCode, skew, nil
}

// checkClock compares the clock of the server at url with this machine's.
func checkClock(ctx context.Context, url string, timeout time.Duration, add addFunc) {
	_, skew, err := get(ctx, url, "", timeout)
	if err != nil {
		add("clock", Warn, "%s: %v", url, err)
		return
	}
	add("clock", skewStatus(skew), "%s this machine (Date header of %s)", skewText(skew, time.Second), url)
}

// checkGateway checks the gateway's /healthz and its clock.
func checkGateway(ctx context.Context, url, caFile string, timeout time.Duration, add addFunc) {
	code, skew, err := get(ctx, url, caFile, timeout)
	switch {
	case code == 0 && err != nil:
		add("healthz", Fail, "%s: %v", url, err)
		return
	case code != http.StatusOK:
		add("healthz", Fail, "%s answered %d %s", url, code, http.StatusText(code))
	default:
		add("healthz", OK, "%s answered 200 OK", url)
	}
	if err != nil {
		add("clock", Warn, "%s: %v", url, err)
		return
	}
	add("clock", skewStatus(skew), "%s this machine (Date header of %s)", skewText(skew, time.Second), url)
}

// checkCertificate reads the certificate a TLS listener serves and checks its expiry.
func checkCertificate(ctx context.Context, addr, caFile string, timeout time.Duration, add addFunc) {
	tc, err := tlsConfig(caFile)
	if err != nil {
		add("tls", Fail, "%v", err)
		return
	}
	if tc == nil {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	host, _, _ := net.SplitHostPort(addr)
	tc.ServerName = host
	tc.NextProtos = []string{"h2"}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: tc}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		add("tls", Fail, "handshake with %s: %v", addr, err)
		return
	}
	defer c.Close()
	certs := c.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		add("tls", Fail, "%s served no certificate", addr)
		return
	}
	end := certs[0].NotAfter
	left := time.Until(end)
	detail := fmt.Sprintf("certificate of %s (%s) expires %s", addr, certs[0].Subject.CommonName, end.UTC().Format(time.DateOnly))
	switch {
	case left <= 0:
		add("tls", Fail, "%s: expired", detail)
	case left < certWarn:
		add("tls", Warn, "%s, in %d days", detail, int(left.Hours()/24))
	default:
		add("tls", OK, "%s, in %d days", detail, int(left.Hours()/24))
	}
}
