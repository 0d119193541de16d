package server_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/server"
)

func TestClientAddr(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name string
		peer net.Addr // nil: no peer
		xff  []string // x-forwarded-for values
		want string
	}{
		{"no peer", nil, nil, "unknown"},
		{"direct", &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4000}, nil, "203.0.113.7"},
		{"direct header ignored", &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 4000}, []string{"198.51.100.1"}, "203.0.113.7"},
		{"ipv4 in ipv6", &net.TCPAddr{IP: net.ParseIP("::ffff:203.0.113.7"), Port: 4000}, nil, "203.0.113.7"},
		{"ipv6 by its /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 4000}, nil, "2001:db8:1:2::/64"},
		{"proxy without header", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}, nil, "127.0.0.1"},
		{"through the gateway", &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}, []string{"198.51.100.1"}, "198.51.100.1"},
		// A client's own header comes first; the gateway appends the address it saw.
		{"forged header", &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 4000}, []string{"192.0.2.9, 198.51.100.1"}, "198.51.100.1"},
		{"through a balancer and the gateway", &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 4000},
			[]string{"198.51.100.1, 10.2.2.2"}, "198.51.100.1"},
		{"values joined", &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 4000}, []string{"192.0.2.9", "198.51.100.1"}, "198.51.100.1"},
		{"only proxies", &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 4000}, []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3"},
		{"garbage before a proxy", &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 4000}, []string{"nonsense, 10.2.2.2"}, "10.2.2.2"},
		{"with port", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 4000}, []string{"198.51.100.1:5555"}, "198.51.100.1"},
		{"ipv6 client", &net.TCPAddr{IP: net.ParseIP("::1"), Port: 4000}, []string{"[2001:db8::9]:5555"}, "2001:db8::/64"},
		{"unix socket", &net.UnixAddr{Name: "/run/stock.sock", Net: "unix"}, nil, "/run/stock.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			if tt.peer != nil {
				ctx = peer.NewContext(ctx, &peer.Peer{Addr: tt.peer})
			}
			md := metadata.MD{}
			for _, v := range tt.xff {
				md.Append("x-forwarded-for", v)
			}
			ctx = metadata.NewIncomingContext(ctx, md)
			if got := server.ClientAddr(ctx, trusted); got != tt.want {
				t.Errorf("ClientAddr = %q, want %q", got, tt.want)
			}
		})
	}
}

// holder is a hand-written service with one server-streaming method that sends a message,
// then holds the stream open until its client goes.
var holder = grpc.ServiceDesc{
	ServiceName: "pgfleet.test.Holder",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Hold",
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			if err := ss.RecvMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			if err := ss.SendMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			<-ss.Context().Done()
			return nil
		},
	}},
}

// byHeader names callers by their "caller" metadata; "service" is exempt, none is anonymous.
func byHeader(ctx context.Context) (string, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("caller")
	if len(v) == 0 {
		return "", false
	}
	return v[0], v[0] == "service"
}

func as(ctx context.Context, caller string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "caller", caller)
}

// hold opens a Hold stream as caller and returns it once its first message came, or the
// error that ended it.
func hold(ctx context.Context, conn *grpc.ClientConn, caller string) error {
	stream, err := conn.NewStream(as(ctx, caller), &grpc.StreamDesc{ServerStreams: true}, "/pgfleet.test.Holder/Hold")
	if err != nil {
		return err
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	return stream.RecvMsg(&emptypb.Empty{})
}

// wantExhausted fails t unless err is RESOURCE_EXHAUSTED with reason and a RetryInfo.
func wantExhausted(t *testing.T, err error, reason apierr.Reason, md map[string]string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || apierr.ReasonOf(err) != reason {
		t.Fatalf("error = %v (reason %q), want RESOURCE_EXHAUSTED %s", err, apierr.ReasonOf(err), reason)
	}
	info := apierr.Info(st)
	for k, v := range md {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("metadata %q = %q, want %q", k, got, v)
		}
	}
	var retry bool
	for _, d := range st.Details() {
		_, ok := d.(*errdetails.RetryInfo)
		retry = retry || ok
	}
	if !retry {
		t.Errorf("error = %v without RetryInfo", err)
	}
}

// TestServer_limits_streams: a caller's stream beyond StreamsPerCaller is refused at once;
// other callers, exempt callers and grpc's own streams are not; a closed stream frees its
// place.
func TestServer_limits_streams(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{Limits: &server.Limits{StreamsPerCaller: 2}, Identify: byHeader}, nil)
	srv.RegisterService(&holder, struct{}{})
	run(t, srv)
	conn := dial(t, srv.GRPCAddr())

	first, cancelFirst := context.WithCancel(t.Context())
	if err := hold(first, conn, "alice"); err != nil {
		t.Fatalf("alice's first stream: %v", err)
	}
	if err := hold(t.Context(), conn, "alice"); err != nil {
		t.Fatalf("alice's second stream: %v", err)
	}
	wantExhausted(t, hold(t.Context(), conn, "alice"), apierr.TooManyStreams,
		map[string]string{"scope": "caller", "limit": "2", "caller": "subject alice"})
	if got := counter(t, srv.Registry(), "pgfleet_grpc_limited_total", map[string]string{"reason": "TOO_MANY_STREAMS"}); got != 1 {
		t.Errorf("pgfleet_grpc_limited_total = %v, want 1", got)
	}

	for _, caller := range []string{"bob", "bob"} {
		if err := hold(t.Context(), conn, caller); err != nil {
			t.Errorf("%s's stream beside alice's: %v", caller, err)
		}
	}
	for range 3 {
		if err := hold(t.Context(), conn, "service"); err != nil {
			t.Errorf("an exempt caller's stream: %v", err)
		}
	}
	// Anonymous callers are known by address: these all come from 127.0.0.1.
	for range 2 {
		if err := hold(t.Context(), conn, ""); err != nil {
			t.Errorf("anonymous stream: %v", err)
		}
	}
	wantExhausted(t, hold(t.Context(), conn, ""), apierr.TooManyStreams,
		map[string]string{"scope": "caller", "caller": "address 127.0.0.1"})
	for range 3 {
		watch, err := healthpb.NewHealthClient(conn).Watch(as(t.Context(), "alice"), &healthpb.HealthCheckRequest{})
		if err == nil {
			_, err = watch.Recv()
		}
		if err != nil {
			t.Errorf("alice's health Watch: %v", err)
		}
	}

	// Once one of alice's streams ends, she may open another. The server sees the end a
	// moment after the client, so this waits for it.
	cancelFirst()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := hold(t.Context(), conn, "alice")
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("alice's stream after closing one: %v", err)
		}
	}
}

// TestServer_limits_calls: a caller's unary calls beyond CallsPerCaller wait for its
// running ones, until their deadline at most; beyond CallQueuePerCaller more are refused at
// once; other callers' calls run meanwhile.
func TestServer_limits_calls(t *testing.T) {
	t.Parallel()
	entered := make(chan string, 10)
	release := map[string]chan struct{}{"alice": make(chan struct{}), "carol": make(chan struct{})}
	srv, _ := start(t, server.Options{Limits: &server.Limits{CallsPerCaller: 1, CallQueuePerCaller: 1}, Identify: byHeader},
		func(ctx context.Context) error {
			caller, _ := byHeader(ctx)
			entered <- caller
			if ch, ok := release[caller]; ok {
				<-ch
			}
			return nil
		})
	conn := dial(t, srv.GRPCAddr())

	results := make(chan error, 2)
	go func() { results <- getStatus(as(t.Context(), "alice"), conn) }()
	if got := <-entered; got != "alice" {
		t.Fatalf("entered by %q, want alice", got)
	}
	go func() { results <- getStatus(as(t.Context(), "alice"), conn) }()
	awaitGauge(t, srv.Registry(), "pgfleet_grpc_calls_waiting", 1)

	wantExhausted(t, getStatus(as(t.Context(), "alice"), conn), apierr.TooManyRequests,
		map[string]string{"caller": "subject alice", "running_limit": "1", "queue_limit": "1"})
	if got := counter(t, srv.Registry(), "pgfleet_grpc_limited_total", map[string]string{"reason": "TOO_MANY_REQUESTS"}); got != 1 {
		t.Errorf("pgfleet_grpc_limited_total = %v, want 1", got)
	}
	if err := getStatus(as(t.Context(), "bob"), conn); err != nil {
		t.Errorf("bob's call while alice's wait: %v", err)
	}
	if got := <-entered; got != "bob" {
		t.Errorf("entered by %q, want bob", got)
	}

	close(release["alice"])
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("alice's call: %v", err)
		}
	}
	if got := <-entered; got != "alice" {
		t.Errorf("entered by %q, want alice", got)
	}

	// A call whose deadline passes while it waits in line gives up without running.
	go func() { results <- getStatus(as(t.Context(), "carol"), conn) }()
	if got := <-entered; got != "carol" {
		t.Fatalf("entered by %q, want carol", got)
	}
	ctx, cancel := context.WithTimeout(as(t.Context(), "carol"), 100*time.Millisecond)
	defer cancel()
	if err := getStatus(ctx, conn); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("carol's call in line past its deadline = %v, want DEADLINE_EXCEEDED", err)
	}
	awaitGauge(t, srv.Registry(), "pgfleet_grpc_calls_waiting", 0) // the server's side gave up too
	close(release["carol"])
	if err := <-results; err != nil {
		t.Errorf("carol's call: %v", err)
	}
	select {
	case got := <-entered:
		t.Errorf("entered by %q after its deadline", got)
	default:
	}
}

// awaitGauge waits until the gauge called name reads want, and fails t if it does not
// within 10 s.
func awaitGauge(t *testing.T, reg *prometheus.Registry, name string, want float64) {
	t.Helper()
	var got float64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() == name {
				got = f.GetMetric()[0].GetGauge().GetValue()
			}
		}
		if got == want {
			return
		}
	}
	t.Fatalf("%s = %v, want %v", name, got, want)
}
