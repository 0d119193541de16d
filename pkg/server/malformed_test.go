package server_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/server"
)

// rawCodec sends the bytes it is given as the message, whatever the method's type: a client
// that sends what no generated client would. Answers are decoded as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}

func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

func (rawCodec) Name() string { return "proto" }

// Bytes that are not a grpc.health.v1.HealthCheckRequest (field 1: string service).
var malformedRequests = []struct {
	name  string
	bytes []byte
}{
	{"truncated_varint", []byte{0x10, 0x80}},               // field 2, varint without its end
	{"invalid_wire_type", []byte{0x0e}},                    // field 1, wire type 6
	{"truncated_length", []byte{0x0a, 0x05, 'a'}},          // 5 bytes announced, 1 sent
	{"invalid_utf8", []byte{0x0a, 0x02, 0xff, 0xfe}},       // proto3 string that is not UTF-8
	{"mark_forged", []byte{0x0f, 'n', 'o', ' ', 'w', 'a'}}, // what the server's codec marks with
}

// wantMalformed fails t unless err is INVALID_ARGUMENT with one ErrorInfo, reason
// MALFORMED_REQUEST, naming the message type.
func wantMalformed(t *testing.T, call string, err error) {
	t.Helper()
	st := status.Convert(err)
	info := apierr.Info(st)
	if st.Code() != codes.InvalidArgument || apierr.Count(st) != 1 || info.GetReason() != string(apierr.MalformedRequest) {
		t.Fatalf("%s = %v (%d ErrorInfos, reason %q), want INVALID_ARGUMENT MALFORMED_REQUEST", call, err, apierr.Count(st), info.GetReason())
	}
	const want = "grpc.health.v1.HealthCheckRequest"
	if got := info.GetMetadata()["message"]; got != want || !strings.HasPrefix(st.Message(), "request is not a valid "+want+" message: ") {
		t.Errorf("%s = %q, metadata message %q; want it to name %s", call, st.Message(), got, want)
	}
}

// TestServer_malformed sends bytes that are not protobuf of the method's request type, over a
// real connection: unary calls, the request of a server stream and a client stream's
// messages answer INVALID_ARGUMENT MALFORMED_REQUEST (grpc alone answers INTERNAL without an
// ErrorInfo), no validator or handler sees them, and the call is logged and counted.
func TestServer_malformed(t *testing.T) {
	t.Parallel()
	for _, tt := range malformedRequests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var validated []string
			opts := server.Options{Validate: func(req any) error {
				mu.Lock()
				defer mu.Unlock()
				validated = append(validated, fmt.Sprintf("%T", req))
				return nil
			}}
			srv, logs := newServer(t, opts, nil)
			received := make(chan int, 1)
			srv.RegisterService(&collector, received)
			run(t, srv)
			conn := dial(t, srv.GRPCAddr())
			raw := grpc.ForceCodec(rawCodec{})

			err := conn.Invoke(t.Context(), healthpb.Health_Check_FullMethodName, tt.bytes, &healthpb.HealthCheckResponse{}, raw)
			wantMalformed(t, "unary Check", err)

			watch, err := conn.NewStream(t.Context(), &healthpb.Health_ServiceDesc.Streams[0], healthpb.Health_Watch_FullMethodName, raw)
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			if err := watch.SendMsg(tt.bytes); err != nil {
				t.Fatalf("Watch SendMsg: %v", err)
			}
			wantMalformed(t, "server stream Watch", watch.RecvMsg(&healthpb.HealthCheckResponse{}))

			// A client stream: a good message, then the bad one ends the call.
			collect, err := conn.NewStream(t.Context(), &collector.Streams[0], "/pgfleet.test.Collector/Collect", raw)
			if err != nil {
				t.Fatalf("Collect: %v", err)
			}
			good, _ := proto.Marshal(&healthpb.HealthCheckRequest{Service: "x"})
			for _, m := range [][]byte{good, tt.bytes} {
				if err := collect.SendMsg(m); err != nil && !errors.Is(err, io.EOF) {
					t.Fatalf("Collect SendMsg: %v", err)
				}
			}
			wantMalformed(t, "client stream Collect", collect.RecvMsg(&emptypb.Empty{}))
			if got := <-received; got != 1 {
				t.Errorf("Collect handler received %d messages, want 1 (the good one)", got)
			}

			mu.Lock()
			defer mu.Unlock()
			if len(validated) != 0 {
				t.Errorf("validator saw %v, want nothing: no request was readable", validated)
			}
			for _, method := range []string{"Check", "Watch", "Collect"} {
				handled := map[string]string{"grpc_method": method, "grpc_code": "InvalidArgument"}
				if got := counter(t, srv.Registry(), "grpc_server_handled_total", handled); got != 1 {
					t.Errorf("grpc_server_handled_total%v = %v, want 1", handled, got)
				}
				var codesLogged []any
				for _, rec := range finished(t, logs, method) {
					codesLogged = append(codesLogged, rec["grpc.code"])
				}
				if diff := cmp.Diff([]any{"InvalidArgument"}, codesLogged); diff != "" {
					t.Errorf("%s logged codes mismatch (-want +got):\n%s", method, diff)
				}
			}
		})
	}
}

// TestServer_malformed_valid checks that the server's codec still reads what is protobuf,
// unknown fields included, which a newer client may send.
func TestServer_malformed_valid(t *testing.T) {
	t.Parallel()
	srv, _ := start(t, server.Options{}, nil)
	conn := dial(t, srv.GRPCAddr())
	tests := []struct {
		name  string
		bytes []byte
		want  codes.Code
	}{
		{"empty", nil, codes.OK},
		{"service_empty", []byte{0x0a, 0x00}, codes.OK},
		{"service_utf8", []byte{0x0a, 0x03, 0xc3, 0xa9, 'x'}, codes.NotFound}, // no service "éx"
		{"unknown_varint", []byte{0x0a, 0x00, 0x78, 0x2a}, codes.OK},          // field 15 = 42
		{"unknown_bytes", []byte{0x7a, 0x01, 0xff}, codes.OK},                 // not a string: any bytes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var resp healthpb.HealthCheckResponse
			err := conn.Invoke(t.Context(), healthpb.Health_Check_FullMethodName, tt.bytes, &resp, grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != tt.want {
				t.Errorf("Check(% x) = %v, want %v", tt.bytes, err, tt.want)
			}
		})
	}
}

// collector is a hand-written service with one client-streaming method, Collect, which
// reads HealthCheckRequests until the client closes, then sends the count to the channel it
// is registered with and answers Empty.
var collector = grpc.ServiceDesc{
	ServiceName: "pgfleet.test.Collector",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Collect",
		ClientStreams: true,
		Handler: func(srv any, ss grpc.ServerStream) error {
			n := 0
			defer func() { srv.(chan int) <- n }()
			for {
				err := ss.RecvMsg(&healthpb.HealthCheckRequest{})
				if errors.Is(err, io.EOF) {
					return ss.SendMsg(&emptypb.Empty{})
				}
				if err != nil {
					return err
				}
				n++
			}
		},
	}},
}
