package client_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/client"
)

// peer is a DatabaseMonitor whose answers the test decides; handle gets the call's number.
type peer struct {
	opsv1.UnimplementedDatabaseMonitorServer
	calls  atomic.Int64
	handle func(ctx context.Context, n int64) error
}

func (p *peer) GetDatabaseStatus(ctx context.Context, _ *opsv1.GetDatabaseStatusRequest) (*opsv1.GetDatabaseStatusResponse, error) {
	if err := p.handle(ctx, p.calls.Add(1)); err != nil {
		return nil, err
	}
	return &opsv1.GetDatabaseStatusResponse{}, nil
}

func ok(context.Context, int64) error { return nil }

func fail(code codes.Code) func(context.Context, int64) error {
	return func(context.Context, int64) error { return status.Error(code, "test failure") }
}

// slow answers only when the call's context ends.
func slow(ctx context.Context, _ int64) error {
	<-ctx.Done()
	return status.FromContextError(ctx.Err()).Err()
}

// serve runs p and a health server on addr ("127.0.0.1:0": any port) until the test ends
// or stop is called, and returns the bound address.
func serve(t *testing.T, addr string, p *peer) (bound string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	opsv1.RegisterDatabaseMonitorServer(srv, p)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv) // a stream that ends, for latency_test.go
	go func() {
		if err := srv.Serve(lis); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv.Stop
}

// healthPeer answers grpc.health.v1.Health/Check as p decides.
type healthPeer struct {
	healthpb.UnimplementedHealthServer
	p *peer
}

func (h healthPeer) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if err := h.p.handle(ctx, h.p.calls.Add(1)); err != nil {
		return nil, err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// serveHealth runs a health server answering as p decides until the test ends.
func serveHealth(t *testing.T, p *peer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, healthPeer{p: p})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// testConfig keeps the breaker out of the way unless a test tunes it.
func testConfig(addr string) client.Config {
	return client.Config{
		Addr:        addr,
		Timeout:     2 * time.Second,
		MaxAttempts: 3,
		Breaker:     breaker.Config{MinRequests: new(uint32(1000)), FailureRatio: 0.5, OpenTimeout: new(200 * time.Millisecond), Window: time.Minute},
	}
}

func dial(t *testing.T, cfg client.Config, reg prometheus.Registerer) *client.Client {
	t.Helper()
	c, err := client.Dial("stock", cfg, reg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call(ctx context.Context, c *client.Client) error {
	_, err := opsv1.NewDatabaseMonitorClient(c).GetDatabaseStatus(ctx, &opsv1.GetDatabaseStatusRequest{})
	return err
}

// wantRejected checks that err is the open breaker's fail-fast error for the named peer.
func wantRejected(t *testing.T, err error, peer string) {
	t.Helper()
	msg := peer + " unavailable: circuit breaker open after repeated failures, retry in a few seconds"
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != msg {
		t.Errorf("got %v, want Unavailable %q", err, msg)
	}
	info := apierr.Info(status.Convert(err))
	if info.GetReason() != string(apierr.PeerUnavailable) || info.GetMetadata()["peer"] != peer {
		t.Errorf("ErrorInfo = %v, want reason PEER_UNAVAILABLE, peer %q", info, peer)
	}
}

func TestConfig_envPrefix(t *testing.T) {
	t.Parallel()
	type config struct { // as a service embeds its peers
		Stock     client.Config `env:", prefix=STOCK_"`
		Interview client.Config `env:", prefix=INTERVIEW_"`
	}
	var got config
	if err := envconfig.Process(t.Context(), &envconfig.Config{
		Target: &got,
		Lookuper: envconfig.MapLookuper(map[string]string{
			"STOCK_ADDR":                   "stock:50051",
			"STOCK_TIMEOUT":                "500ms",
			"STOCK_BREAKER_MIN_REQUESTS":   "10",
			"INTERVIEW_ADDR":               "interview:50051",
			"INTERVIEW_RETRY_MAX_ATTEMPTS": "1",
			"ADDR":                         "unprefixed:1", // read by neither
		}),
	}); err != nil {
		t.Fatalf("process: %v", err)
	}
	defaults := client.Config{
		Timeout:     2 * time.Second,
		MaxAttempts: 3,
		Breaker:     breaker.Config{FailureRatio: 0.5, Window: 30 * time.Second},
	}
	want := config{Stock: defaults, Interview: defaults}
	want.Stock.Addr = "stock:50051"
	want.Stock.Timeout = 500 * time.Millisecond
	want.Stock.Breaker.MinRequests = new(uint32(10))
	want.Interview.Addr = "interview:50051"
	want.Interview.MaxAttempts = 1
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
	// Unset, a peer breaker's MinRequests and OpenTimeout are 5 calls and 5s.
	wantBreaker := breaker.Config{MinRequests: new(uint32(5)), FailureRatio: 0.5, OpenTimeout: new(5 * time.Second), Window: 30 * time.Second}
	if diff := cmp.Diff(wantBreaker, got.Interview.Breaker.With(client.BreakerDefaults)); diff != "" {
		t.Errorf("breaker defaults mismatch (-want +got):\n%s", diff)
	}
}

func TestConfig_addrRequired(t *testing.T) {
	t.Parallel()
	var got struct {
		Stock client.Config `env:", prefix=STOCK_"`
	}
	err := envconfig.Process(t.Context(), &envconfig.Config{
		Target:   &got,
		Lookuper: envconfig.MapLookuper(map[string]string{"ADDR": "stock:50051"}),
	})
	if err == nil || !strings.Contains(err.Error(), "STOCK_ADDR") {
		t.Errorf("got %v, want an error naming STOCK_ADDR", err)
	}
}

func TestDial_invalid(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		peer string
		edit func(*client.Config)
	}{
		{name: "no name", peer: "", edit: func(*client.Config) {}},
		{name: "no addr", peer: "stock", edit: func(c *client.Config) { c.Addr = "" }},
		{name: "zero timeout", peer: "stock", edit: func(c *client.Config) { c.Timeout = 0 }},
		{name: "zero attempts", peer: "stock", edit: func(c *client.Config) { c.MaxAttempts = 0 }},
		{name: "ratio above 1", peer: "stock", edit: func(c *client.Config) { c.Breaker.FailureRatio = 1.5 }},
		{name: "zero open timeout", peer: "stock", edit: func(c *client.Config) { c.Breaker.OpenTimeout = new(time.Duration(0)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig("127.0.0.1:1")
			tc.edit(&cfg)
			if c, err := client.Dial(tc.peer, cfg, nil); err == nil {
				c.Close()
				t.Error("Dial succeeded, want an error")
			}
		})
	}
}

// TestDial_deadline reads the deadline the peer was given.
func TestDial_deadline(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		caller  time.Duration // 0: none
		timeout time.Duration
		want    time.Duration // the peer sees a little less
	}{
		{name: "caller has none", timeout: time.Second, want: time.Second},
		{name: "caller's earlier one kept", caller: 300 * time.Millisecond, timeout: time.Minute, want: 300 * time.Millisecond},
		{name: "caller's later one shortened", caller: time.Hour, timeout: time.Second, want: time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var remaining atomic.Int64
			addr, _ := serve(t, "127.0.0.1:0", &peer{handle: func(ctx context.Context, _ int64) error {
				if d, ok := ctx.Deadline(); ok {
					remaining.Store(int64(time.Until(d)))
				}
				return nil
			}})
			cfg := testConfig(addr)
			cfg.Timeout = tc.timeout
			c := dial(t, cfg, nil)
			ctx := t.Context()
			if tc.caller > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.caller)
				defer cancel()
			}
			if err := call(ctx, c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if got := time.Duration(remaining.Load()); got <= tc.want/2 || got > tc.want {
				t.Errorf("peer's deadline in %v, want in (%v, %v]", got, tc.want/2, tc.want)
			}
		})
	}
}

func TestDial_slowPeer(t *testing.T) {
	t.Parallel()
	p := &peer{handle: slow}
	addr, _ := serve(t, "127.0.0.1:0", p)
	cfg := testConfig(addr)
	cfg.Timeout = 200 * time.Millisecond
	c := dial(t, cfg, nil)

	start := time.Now()
	err := call(t.Context(), c)
	elapsed := time.Since(start)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("got %v, want DeadlineExceeded", err)
	}
	if elapsed < cfg.Timeout || elapsed > 10*cfg.Timeout {
		t.Errorf("returned after %v, want about %v", elapsed, cfg.Timeout)
	}
	if got := p.calls.Load(); got != 1 {
		t.Errorf("peer got %d calls, want 1 (DeadlineExceeded is not retried)", got)
	}
}

func TestDial_retries(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		edit      func(*client.Config)
		check     bool  // call grpc.health.v1.Health/Check instead of GetDatabaseStatus
		failures  int64 // the first calls fail with code
		code      codes.Code
		wantCode  codes.Code
		wantCalls int64
	}{
		{name: "unavailable twice then ok", failures: 2, code: codes.Unavailable, wantCode: codes.OK, wantCalls: 3},
		{
			name: "attempts run out", edit: func(c *client.Config) { c.MaxAttempts = 2 },
			failures: 2, code: codes.Unavailable, wantCode: codes.Unavailable, wantCalls: 2,
		},
		{
			name: "retries off", edit: func(c *client.Config) { c.MaxAttempts = 1 },
			failures: 1, code: codes.Unavailable, wantCode: codes.Unavailable, wantCalls: 1,
		},
		{
			// gRPC caps attempts at 5 unless told otherwise.
			name:     "more attempts than grpc's default cap",
			edit:     func(c *client.Config) { c.MaxAttempts = 7; c.Timeout = 30 * time.Second },
			failures: 6, code: codes.Unavailable, wantCode: codes.OK, wantCalls: 7,
		},
		{name: "not found is not retried", failures: 1, code: codes.NotFound, wantCode: codes.NotFound, wantCalls: 1},
		// grpc.health.v1's Check declares no idempotency_level, as a write that is not
		// IDEMPOTENT does not: tried once. (GetDatabaseStatus, above, is NO_SIDE_EFFECTS.)
		{
			name: "method without idempotency_level", check: true,
			failures: 2, code: codes.Unavailable, wantCode: codes.Unavailable, wantCalls: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &peer{handle: func(_ context.Context, n int64) error {
				if n <= tc.failures {
					return status.Error(tc.code, "test failure")
				}
				return nil
			}}
			do := call
			var addr string
			if tc.check {
				addr = serveHealth(t, p)
				do = func(ctx context.Context, c *client.Client) error {
					_, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
					return err
				}
			} else {
				addr, _ = serve(t, "127.0.0.1:0", p)
			}
			cfg := testConfig(addr)
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			c := dial(t, cfg, nil)
			if err := do(t.Context(), c); status.Code(err) != tc.wantCode {
				t.Errorf("got %v, want code %v", err, tc.wantCode)
			}
			if got := p.calls.Load(); got != tc.wantCalls {
				t.Errorf("peer got %d calls, want %d", got, tc.wantCalls)
			}
		})
	}
}

func TestDial_breakerOpens(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		handle       func(context.Context, int64) error
		timeout      time.Duration
		wantCode     codes.Code
		callsPerCall int64 // peer calls per client call
	}{
		// The breaker counts calls after gRPC's retries, not attempts.
		{name: "unavailable", handle: fail(codes.Unavailable), timeout: 2 * time.Second, wantCode: codes.Unavailable, callsPerCall: 3},
		{name: "resource exhausted", handle: fail(codes.ResourceExhausted), timeout: 2 * time.Second, wantCode: codes.ResourceExhausted, callsPerCall: 1},
		{name: "our deadline", handle: slow, timeout: 100 * time.Millisecond, wantCode: codes.DeadlineExceeded, callsPerCall: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &peer{handle: tc.handle}
			addr, _ := serve(t, "127.0.0.1:0", p)
			cfg := testConfig(addr)
			cfg.Timeout = tc.timeout
			cfg.Breaker.MinRequests = new(uint32(3))
			cfg.Breaker.OpenTimeout = new(time.Minute)
			c := dial(t, cfg, nil)

			for i := range 3 {
				if err := call(t.Context(), c); status.Code(err) != tc.wantCode {
					t.Fatalf("call %d: got %v, want code %v", i, err, tc.wantCode)
				}
			}
			if got := c.BreakerState(); got != "open" {
				t.Fatalf("breaker %s after 3 failures, want open", got)
			}
			start := time.Now()
			err := call(t.Context(), c)
			elapsed := time.Since(start)
			wantRejected(t, err, "stock")
			if elapsed > 100*time.Millisecond {
				t.Errorf("rejection took %v, want it at once", elapsed)
			}
			if got, want := p.calls.Load(), 3*tc.callsPerCall; got != want {
				t.Errorf("peer got %d calls, want %d: the rejected call reached it", got, want)
			}
		})
	}
}

// TestDial_breakerRecovers opens the breaker, then lets exactly one probe through once
// Breaker.OpenTimeout has passed; its success closes the breaker.
func TestDial_breakerRecovers(t *testing.T) {
	t.Parallel()
	const (
		failing = iota
		blocking
	)
	var mode atomic.Int32
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	p := &peer{handle: func(ctx context.Context, _ int64) error {
		if mode.Load() == failing {
			return status.Error(codes.Unavailable, "down")
		}
		select {
		case entered <- struct{}{}:
		default:
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}}
	addr, _ := serve(t, "127.0.0.1:0", p)
	cfg := testConfig(addr)
	cfg.MaxAttempts = 1
	cfg.Breaker.MinRequests = new(uint32(2))
	c := dial(t, cfg, nil)

	for range 2 {
		if err := call(t.Context(), c); status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want Unavailable", err)
		}
	}
	wantRejected(t, call(t.Context(), c), "stock")

	mode.Store(blocking)
	time.Sleep(*cfg.Breaker.OpenTimeout + 50*time.Millisecond)
	if got := c.BreakerState(); got != "half-open" {
		t.Fatalf("breaker %s after the open timeout, want half-open", got)
	}
	probe := make(chan error, 1)
	go func() { probe <- call(t.Context(), c) }()
	<-entered
	wantRejected(t, call(t.Context(), c), "stock") // only one probe at a time
	close(release)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := c.BreakerState(); got != "closed" {
		t.Errorf("breaker %s after a good probe, want closed", got)
	}
	if got := p.calls.Load(); got != 3 {
		t.Errorf("peer got %d calls, want 3 (2 failures and the probe)", got)
	}
	if err := call(t.Context(), c); err != nil {
		t.Errorf("call after recovery: %v", err)
	}
}

// TestDial_breakerPeerStopped stops the peer's server, then brings it back on the same port.
func TestDial_breakerPeerStopped(t *testing.T) {
	t.Parallel()
	p := &peer{handle: ok}
	addr, stop := serve(t, "127.0.0.1:0", p)
	cfg := testConfig(addr)
	cfg.Breaker.MinRequests = new(uint32(3))
	c := dial(t, cfg, nil)
	if err := call(t.Context(), c); err != nil {
		t.Fatalf("call: %v", err)
	}

	stop()
	for i := range 3 {
		if err := call(t.Context(), c); status.Code(err) != codes.Unavailable {
			t.Fatalf("call %d to a stopped peer: got %v, want Unavailable", i, err)
		}
	}
	// 1 success and 3 failures: a 0.75 failure ratio over 4 calls.
	if got := c.BreakerState(); got != "open" {
		t.Fatalf("breaker %s, want open", got)
	}
	start := time.Now()
	wantRejected(t, call(t.Context(), c), "stock")
	if elapsed := time.Since(start); elapsed > 100*time.Millisecond {
		t.Errorf("rejection took %v, want it at once", elapsed)
	}

	serve(t, addr, p)
	c.ResetConnectBackoff() // reconnect now rather than after gRPC's backoff
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call(t.Context(), c)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer back but calls still fail: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.BreakerState(); got != "closed" {
		t.Errorf("breaker %s after the peer came back, want closed", got)
	}
}

// TestDial_breakerIgnores checks that answers from a live peer, and calls the caller gave
// up on, leave the breaker closed.
func TestDial_breakerIgnores(t *testing.T) {
	t.Parallel()
	cancels := make(chan context.CancelFunc, 1)
	cases := []struct {
		name     string
		handle   func(context.Context, int64) error
		ctx      func(t *testing.T) context.Context
		wantCode codes.Code
	}{
		{name: "not found", handle: fail(codes.NotFound), wantCode: codes.NotFound},
		{name: "invalid argument", handle: fail(codes.InvalidArgument), wantCode: codes.InvalidArgument},
		{name: "internal", handle: fail(codes.Internal), wantCode: codes.Internal},
		{
			name: "caller cancels",
			// The peer cancels the caller's context, so the call has surely reached it.
			handle: func(ctx context.Context, n int64) error {
				(<-cancels)()
				return slow(ctx, n)
			},
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithCancel(t.Context())
				cancels <- cancel
				return ctx
			},
			wantCode: codes.Canceled,
		},
		{
			name:   "caller's deadline",
			handle: slow,
			ctx: func(t *testing.T) context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
				t.Cleanup(cancel)
				return ctx
			},
			wantCode: codes.DeadlineExceeded,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := &peer{handle: tc.handle}
			addr, _ := serve(t, "127.0.0.1:0", p)
			cfg := testConfig(addr)
			cfg.Breaker.MinRequests = new(uint32(2))
			c := dial(t, cfg, nil)
			// Connected first, so that a short caller deadline is not spent on dialing
			// (under -race on a busy machine it was: one call never reached the peer).
			c.Connect()
			for st := c.GetState(); st != connectivity.Ready; st = c.GetState() {
				if !c.WaitForStateChange(t.Context(), st) {
					t.Fatalf("connection never ready: %v", st)
				}
			}
			for i := range 4 {
				ctx := t.Context()
				if tc.ctx != nil {
					ctx = tc.ctx(t)
				}
				if err := call(ctx, c); status.Code(err) != tc.wantCode {
					t.Fatalf("call %d: got %v, want code %v", i, err, tc.wantCode)
				}
			}
			if got := c.BreakerState(); got != "closed" {
				t.Errorf("breaker %s, want closed", got)
			}
			if got := p.calls.Load(); got != 4 {
				t.Errorf("peer got %d calls, want 4", got)
			}
		})
	}
}

func TestDial_streams(t *testing.T) {
	t.Parallel()
	watch := func(ctx context.Context, c *client.Client) (healthpb.Health_WatchClient, error) {
		return healthpb.NewHealthClient(c).Watch(ctx, &healthpb.HealthCheckRequest{})
	}

	t.Run("deadline when the caller has none", func(t *testing.T) {
		t.Parallel()
		addr, _ := serve(t, "127.0.0.1:0", &peer{handle: ok})
		cfg := testConfig(addr)
		cfg.Timeout = 200 * time.Millisecond
		c := dial(t, cfg, nil)
		start := time.Now()
		s, err := watch(t.Context(), c)
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if _, err := s.Recv(); err != nil { // the current status
			t.Fatalf("recv: %v", err)
		}
		// Nothing changes, so this waits for the deadline. The health server may answer
		// Canceled first, when it sees its side of the deadline pass.
		_, err = s.Recv()
		if code := status.Code(err); code != codes.DeadlineExceeded && code != codes.Canceled {
			t.Errorf("got %v, want DeadlineExceeded", err)
		}
		if elapsed := time.Since(start); elapsed < cfg.Timeout/2 || elapsed > 10*cfg.Timeout {
			t.Errorf("stream ended after %v, want about %v", elapsed, cfg.Timeout)
		}
	})

	t.Run("caller's later deadline kept", func(t *testing.T) {
		t.Parallel()
		addr, _ := serve(t, "127.0.0.1:0", &peer{handle: ok})
		cfg := testConfig(addr)
		cfg.Timeout = 100 * time.Millisecond
		c := dial(t, cfg, nil)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		s, err := watch(ctx, c)
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("recv: %v", err)
		}
		_, err = s.Recv()
		if elapsed := time.Since(start); elapsed < 900*time.Millisecond {
			t.Errorf("stream ended after %v (%v), want the caller's 1s", elapsed, err)
		}
	})

	t.Run("rejected while open", func(t *testing.T) {
		t.Parallel()
		addr, _ := serve(t, "127.0.0.1:0", &peer{handle: fail(codes.Unavailable)})
		cfg := testConfig(addr)
		cfg.MaxAttempts = 1
		cfg.Breaker.MinRequests = new(uint32(1))
		cfg.Breaker.OpenTimeout = new(time.Minute)
		c := dial(t, cfg, nil)
		if err := call(t.Context(), c); status.Code(err) != codes.Unavailable {
			t.Fatalf("got %v, want Unavailable", err)
		}
		_, err := watch(t.Context(), c)
		wantRejected(t, err, "stock")
	})
}

// TestDial_metrics registers two peers on one registry; a third Dial under a name already
// there fails and leaves the registry as it was.
func TestDial_metrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	stockAddr, _ := serve(t, "127.0.0.1:0", &peer{handle: func(_ context.Context, n int64) error {
		if n == 2 {
			return status.Error(codes.NotFound, "no such stock")
		}
		return nil
	}})
	stock := dial(t, testConfig(stockAddr), reg)

	interviewAddr, _ := serve(t, "127.0.0.1:0", &peer{handle: fail(codes.Unavailable)})
	cfg := testConfig(interviewAddr)
	cfg.MaxAttempts = 1
	cfg.Breaker.MinRequests = new(uint32(1))
	cfg.Breaker.OpenTimeout = new(time.Minute)
	interview, err := client.Dial("interview", cfg, reg)
	if err != nil {
		t.Fatalf("dial interview: %v", err)
	}
	t.Cleanup(func() { interview.Close() })

	for i, want := range []codes.Code{codes.OK, codes.NotFound} {
		if err := call(t.Context(), stock); status.Code(err) != want {
			t.Fatalf("stock call %d: got %v, want code %v", i, err, want)
		}
	}
	if err := call(t.Context(), interview); status.Code(err) != codes.Unavailable {
		t.Fatalf("interview call: got %v, want Unavailable", err)
	}
	wantRejected(t, call(t.Context(), interview), "interview")
	const want = `
# HELP pgfleet_client_breaker_rejections_total Calls and streams refused by the open circuit breaker without reaching the peer.
# TYPE pgfleet_client_breaker_rejections_total counter
pgfleet_client_breaker_rejections_total{peer="interview"} 1
pgfleet_client_breaker_rejections_total{peer="stock"} 0
# HELP pgfleet_client_breaker_state Circuit breaker state: 0 closed, 1 half-open, 2 open.
# TYPE pgfleet_client_breaker_state gauge
pgfleet_client_breaker_state{peer="interview"} 2
pgfleet_client_breaker_state{peer="stock"} 0
# HELP pgfleet_client_calls_total Unary calls to the peer by the code the caller got, breaker rejections included.
# TYPE pgfleet_client_calls_total counter
pgfleet_client_calls_total{code="NotFound",peer="stock"} 1
pgfleet_client_calls_total{code="OK",peer="stock"} 1
pgfleet_client_calls_total{code="Unavailable",peer="interview"} 2
`
	// pgfleet_client_call_duration_seconds has its own test (latency_test.go).
	counters := []string{"pgfleet_client_breaker_rejections_total", "pgfleet_client_breaker_state", "pgfleet_client_calls_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), counters...); err != nil {
		t.Error(err)
	}

	again, err := client.Dial("stock", testConfig(stockAddr), reg)
	var are prometheus.AlreadyRegisteredError
	if !errors.As(err, &are) {
		if again != nil {
			again.Close()
		}
		t.Errorf("second Dial of stock: got %v, want an AlreadyRegisteredError", err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), counters...); err != nil {
		t.Errorf("after the failed Dial: %v", err)
	}
}
