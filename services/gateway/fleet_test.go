package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// startupTimeout bounds a service's or the gateway's start, migrations included, on a
// machine busy with the rest of the tests.
const startupTimeout = 60 * time.Second

// buildServices builds the three service binaries from the workspace, as `make build` does,
// into a directory removed when tb ends.
func buildServices(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator),
		"github.com/pgfleet/pgfleet/services/stock",
		"github.com/pgfleet/pgfleet/services/portfolio",
		"github.com/pgfleet/pgfleet/services/interview")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build services: %v\n%s", err, out)
	}
	return dir
}

// service is one service binary running on a pgtest database of its own.
type service struct {
	name string
	addr string // gRPC
	bin  string
	env  []string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// startService runs binDir/name with its own database, the test JWT secret and env (KEY=VALUE
// pairs), waits until it is SERVING, and stops it when tb ends.
func startService(tb testing.TB, binDir, name string, env ...string) *service {
	tb.Helper()
	s := &service{name: name, addr: apptest.FreeAddr(tb), bin: filepath.Join(binDir, name)}
	s.env = append(os.Environ(), "DATABASE_URL="+pgtest.NewDBURL(tb), "GRPC_ADDR="+s.addr,
		"METRICS_ADDR="+apptest.FreeAddr(tb), "DB_HEALTH_INTERVAL=200ms", "DRAIN_TIMEOUT=1s")
	for k, v := range authtest.Env() {
		s.env = append(s.env, k+"="+v)
	}
	s.env = append(s.env, env...)
	var err error
	if s.log, err = os.Create(filepath.Join(tb.TempDir(), name+".log")); err != nil {
		tb.Fatal(err)
	}
	s.cmd = exec.Command(s.bin)
	s.cmd.Env = s.env
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() {
		s.stop(tb)
		if tb.Failed() {
			out, _ := os.ReadFile(s.log.Name())
			tb.Logf("%s log (last 4 KiB):\n%s", name, tail(out, 4096))
		}
		s.log.Close()
	})
	s.awaitServing(tb)
	return s
}

// awaitServing waits until the service reports SERVING, failing fast if it exits.
func (s *service) awaitServing(tb testing.TB) {
	tb.Helper()
	conn, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(startupTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-s.done:
			tb.Fatalf("%s exited during startup", s.name)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
	tb.Fatalf("%s not SERVING within %v", s.name, startupTimeout)
}

// stop ends the service with SIGTERM, as an orchestrator would, and waits for it.
func (s *service) stop(tb testing.TB) {
	tb.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
		tb.Errorf("%s did not stop within 30s of SIGTERM; killed", s.name)
	}
	s.cmd = nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// fleet is the three services, each on its own database.
type fleet struct {
	stock, portfolio, interview *service
}

// startFleet starts stock, then portfolio (which prices trades with it) and interview.
func startFleet(tb testing.TB, binDir string) *fleet {
	tb.Helper()
	f := &fleet{stock: startService(tb, binDir, "stock")}
	f.portfolio = startService(tb, binDir, "portfolio", "STOCK_ADDR="+f.stock.addr, "STOCK_TIMEOUT=10s")
	f.interview = startService(tb, binDir, "interview")
	return f
}

// testGateway is the gateway under test, run in-process by apptest through run.
type testGateway struct {
	url     string // http://127.0.0.1:port
	metrics string // http://127.0.0.1:port
	client  *http.Client
}

// allowedOrigin is the one origin the test gateways let call cross-origin.
const allowedOrigin = "http://app.example.test"

// startGateway runs the gateway in front of f with env added to the test defaults, and
// waits until it answers.
func startGateway(tb testing.TB, f *fleet, env map[string]string) *testGateway {
	tb.Helper()
	vars := map[string]string{
		"HTTP_ADDR":            apptest.FreeAddr(tb),
		"STOCK_ADDR":           f.stock.addr,
		"PORTFOLIO_ADDR":       f.portfolio.addr,
		"INTERVIEW_ADDR":       f.interview.addr,
		"STOCK_TIMEOUT":        "10s", // a race-detector build on a busy machine is slow
		"PORTFOLIO_TIMEOUT":    "10s",
		"INTERVIEW_TIMEOUT":    "10s",
		"HEALTH_TIMEOUT":       "5s",
		"CORS_ALLOWED_ORIGINS": allowedOrigin,
		"DRAIN_TIMEOUT":        "2s",
	}
	for k, v := range env {
		vars[k] = v
	}
	svc := apptest.Start(tb, run, vars)
	g := &testGateway{
		url:     "http://" + vars["HTTP_ADDR"],
		metrics: "http://" + svc.MetricsAddr,
		client:  &http.Client{Timeout: 30 * time.Second}, // no test request may hang
	}
	tb.Cleanup(g.client.CloseIdleConnections)
	for deadline := time.Now().Add(startupTimeout); ; time.Sleep(20 * time.Millisecond) {
		resp, err := g.client.Get(g.metrics + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("gateway not up within %v: %v", startupTimeout, err)
		}
	}
}

// response is an answer read whole.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends method path with body ("": none) and headers given as name, value pairs.
func (g *testGateway) do(tb testing.TB, method, path, body string, headers ...string) response {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tb.Context(), method, g.url+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return g.send(tb, req)
}

func (g *testGateway) send(tb testing.TB, req *http.Request) response {
	tb.Helper()
	resp, err := g.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: b}
}

// bearer returns an Authorization header pair for subject with roles.
func bearer(tb testing.TB, subject string, roles ...string) []string {
	tb.Helper()
	return []string{"Authorization", "Bearer " + authtest.Token(tb, subject, roles...)}
}

func (r response) String() string { return fmt.Sprintf("HTTP %d %s", r.code, r.body) }
