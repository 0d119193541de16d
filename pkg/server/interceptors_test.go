package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/emptypb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// finished returns the "finished call" log lines for method.
func finished(t *testing.T, logs *logBuffer, method string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, rec := range logs.lines(t) {
		if rec["msg"] == "finished call" && rec["grpc.method"] == method {
			out = append(out, rec)
		}
	}
	return out
}

func TestServer_recovery(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv, logs := start(t, server.Options{}, func(context.Context) error {
		if calls.Add(1) == 1 {
			panic("secret detail")
		}
		return nil
	})
	conn := dial(t, srv.GRPCAddr())

	err := getStatus(t.Context(), conn)
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Fatalf("panicking call = %v, want Internal \"internal error\"", err)
	}
	if err := getStatus(t.Context(), conn); err != nil {
		t.Errorf("call after the panic = %v, want OK", err)
	}

	if got := counter(t, srv.Registry(), "pgfleet_grpc_panics_total", nil); got != 1 {
		t.Errorf("pgfleet_grpc_panics_total = %v, want 1", got)
	}
	handled := map[string]string{"grpc_method": "GetDatabaseStatus", "grpc_code": "Internal"}
	if got := counter(t, srv.Registry(), "grpc_server_handled_total", handled); got != 1 {
		t.Errorf("grpc_server_handled_total%v = %v, want 1", handled, got)
	}
	var panicLogged bool
	for _, rec := range logs.lines(t) {
		if rec["msg"] == "panic in handler" {
			panicLogged = rec["level"] == "ERROR" && rec["panic"] == "secret detail" &&
				rec["grpc.method"] == "GetDatabaseStatus" &&
				strings.Contains(fmt.Sprint(rec["stack"]), "GetDatabaseStatus")
		}
	}
	if !panicLogged {
		t.Errorf("no ERROR \"panic in handler\" line with the panic and its stack in logs:\n%v", logs.lines(t))
	}
	var codesLogged []any
	for _, rec := range finished(t, logs, "GetDatabaseStatus") {
		codesLogged = append(codesLogged, rec["grpc.code"])
	}
	if diff := cmp.Diff([]any{"Internal", "OK"}, codesLogged); diff != "" {
		t.Errorf("logged codes mismatch (-want +got):\n%s", diff)
	}
}

// panicker is a hand-written service with one server-streaming method that panics.
var panicker = grpc.ServiceDesc{
	ServiceName: "pgfleet.test.Panicker",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Boom",
		ServerStreams: true,
		Handler:       func(any, grpc.ServerStream) error { panic("stream secret") },
	}},
}

func TestServer_recovery_stream(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{}, nil)
	srv.RegisterService(&panicker, struct{}{})
	run(t, srv)

	conn := dial(t, srv.GRPCAddr())
	stream, err := conn.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true}, "/pgfleet.test.Panicker/Boom")
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatalf("SendMsg: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	err = stream.RecvMsg(&emptypb.Empty{})
	if st := status.Convert(err); st.Code() != codes.Internal || st.Message() != "internal error" {
		t.Errorf("panicking stream = %v, want Internal \"internal error\"", err)
	}
	if got := counter(t, srv.Registry(), "pgfleet_grpc_panics_total", nil); got != 1 {
		t.Errorf("pgfleet_grpc_panics_total = %v, want 1", got)
	}
}

func TestServer_logging(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		wantCode  string
		wantLevel string
	}{
		{"ok", nil, "OK", "DEBUG"},
		{"invalid_argument", status.Error(codes.InvalidArgument, "bad"), "InvalidArgument", "INFO"},
		{"unavailable", status.Error(codes.Unavailable, "down"), "Unavailable", "WARN"},
		{"internal", status.Error(codes.Internal, "boom"), "Internal", "ERROR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, logs := start(t, server.Options{}, func(context.Context) error { return tt.err })
			if err := getStatus(t.Context(), dial(t, srv.GRPCAddr())); status.Code(err).String() != tt.wantCode {
				t.Fatalf("GetDatabaseStatus = %v, want %s", err, tt.wantCode)
			}
			lines := finished(t, logs, "GetDatabaseStatus")
			if len(lines) != 1 {
				t.Fatalf("got %d \"finished call\" lines, want 1:\n%v", len(lines), logs.lines(t))
			}
			rec := lines[0]
			got := map[string]any{
				"level":        rec["level"],
				"service":      rec["service"],
				"grpc.service": rec["grpc.service"],
				"grpc.code":    rec["grpc.code"],
			}
			want := map[string]any{
				"level":        tt.wantLevel,
				"service":      "test",
				"grpc.service": "pgfleet.ops.v1.DatabaseMonitor",
				"grpc.code":    tt.wantCode,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("log line mismatch (-want +got):\n%s", diff)
			}
			if ms, ok := rec["grpc.time_ms"].(float64); !ok || ms < 0 {
				t.Errorf("grpc.time_ms = %v, want a duration in ms", rec["grpc.time_ms"])
			}
		})
	}
}

func TestServer_validate(t *testing.T) {
	t.Parallel()
	violation := validate.Field("symbol", "must be 1 to %d characters", 10)
	info := func(reason string, md map[string]string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Reason: reason, Domain: apierr.Domain, Metadata: md}
	}
	badRequest := []any{info("INVALID_FIELD", map[string]string{"fields": "symbol"}),
		&errdetails.BadRequest{FieldViolations: violation.Violations}}
	tests := []struct {
		name        string
		err         error
		wantCode    codes.Code
		wantMsg     string
		wantDetails []any
	}{
		{"ok", nil, codes.OK, "", nil},
		{"field_violation", violation, codes.InvalidArgument, violation.Error(), badRequest},
		{"wrapped_violation", fmt.Errorf("check: %w", violation), codes.InvalidArgument,
			"check: " + violation.Error(), badRequest},
		{"plain_error", errors.New("symbol is required"), codes.InvalidArgument, "symbol is required",
			[]any{info("INVALID_ARGUMENT", nil)}},
		// A status without an ErrorInfo keeps its code and message and gets the code's reason.
		{"status_kept", status.Error(codes.FailedPrecondition, "not now"), codes.FailedPrecondition, "not now",
			[]any{info("FAILED_PRECONDITION", nil)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var handled atomic.Int32
			opts := server.Options{Validate: func(req any) error {
				switch req.(type) {
				case *opsv1.GetDatabaseStatusRequest, *healthpb.HealthCheckRequest:
					return tt.err
				}
				return nil
			}}
			srv, _ := start(t, opts, func(context.Context) error {
				handled.Add(1)
				return nil
			})
			conn := dial(t, srv.GRPCAddr())
			check := func(call string, err error) {
				t.Helper()
				st := status.Convert(err)
				if st.Code() != tt.wantCode || st.Message() != tt.wantMsg {
					t.Errorf("%s = %v, want %v %q", call, err, tt.wantCode, tt.wantMsg)
				}
				if diff := cmp.Diff(tt.wantDetails, st.Details(), protocmp.Transform(), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s details mismatch (-want +got):\n%s", call, diff)
				}
			}

			check("unary GetDatabaseStatus", getStatus(t.Context(), conn))
			wantHandled := int32(0)
			if tt.err == nil {
				wantHandled = 1
			}
			if got := handled.Load(); got != wantHandled {
				t.Errorf("handler ran %d times, want %d", got, wantHandled)
			}

			// Server streaming: the one request is validated too.
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			watch, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			_, err = watch.Recv()
			check("stream Watch", err)
		})
	}
}

// TestServer_validateFailsClosed: a request the service's Validate has no case for
// (validate.NoRule) is refused UNIMPLEMENTED before its handler runs; grpc's own services
// (health), which no service's Validate knows, are served.
func TestServer_validateFailsClosed(t *testing.T) {
	t.Parallel()
	var handled atomic.Int32
	srv, _ := start(t, server.Options{Validate: validate.NoRule}, func(context.Context) error {
		handled.Add(1)
		return nil
	})
	conn := dial(t, srv.GRPCAddr())
	err := getStatus(t.Context(), conn)
	st := status.Convert(err)
	want := "pgfleet.ops.v1.GetDatabaseStatusRequest has no validation rule, so the method is not served"
	if st.Code() != codes.Unimplemented || st.Message() != want || apierr.Info(st).GetReason() != string(apierr.Unimplemented) {
		t.Errorf("GetDatabaseStatus = %v, want UNIMPLEMENTED %q with reason UNIMPLEMENTED", err, want)
	}
	if got := handled.Load(); got != 0 {
		t.Errorf("handler ran %d times, want 0", got)
	}
	health := healthpb.NewHealthClient(conn)
	if _, err := health.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("health Check = %v, want it served", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	watch, err := health.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err == nil {
		_, err = watch.Recv()
	}
	if err != nil {
		t.Errorf("health Watch = %v, want it served", err)
	}
}

func TestServer_defaultDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		defaultTimeout time.Duration
		callTimeout    time.Duration // 0: the caller sends no deadline
		wantMin        time.Duration // 0: want no deadline at all
		wantMax        time.Duration
	}{
		{"applied", time.Minute, 0, 50 * time.Second, time.Minute},
		{"caller_shorter_kept", time.Minute, 5 * time.Second, 3 * time.Second, 5 * time.Second},
		{"caller_longer_kept", time.Second, time.Minute, 50 * time.Second, time.Minute},
		{"disabled", 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			type deadline struct {
				left time.Duration
				set  bool
			}
			seen := make(chan deadline, 1)
			srv, _ := start(t, server.Options{DefaultTimeout: tt.defaultTimeout}, func(ctx context.Context) error {
				d, ok := ctx.Deadline()
				seen <- deadline{time.Until(d), ok}
				return nil
			})
			ctx := t.Context()
			if tt.callTimeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.callTimeout)
				defer cancel()
			}
			if err := getStatus(ctx, dial(t, srv.GRPCAddr())); err != nil {
				t.Fatalf("GetDatabaseStatus: %v", err)
			}
			got := <-seen
			if tt.wantMin == 0 {
				if got.set {
					t.Errorf("handler deadline in %v, want none", got.left)
				}
				return
			}
			if !got.set || got.left < tt.wantMin || got.left > tt.wantMax {
				t.Errorf("handler deadline in %v (set: %t), want %v to %v", got.left, got.set, tt.wantMin, tt.wantMax)
			}
		})
	}
}

// TestServer_reasons checks the safety net: every error status leaves with exactly one
// ErrorInfo, unary and streaming, whatever the handler returned; a status that lacked one is
// counted, logged at debug and reported to MissingReason, and one that had it is left alone.
func TestServer_reasons(t *testing.T) {
	t.Parallel()
	conflict := apierr.New(apierr.ConcurrencyConflict, "conflict", map[string]string{"sqlstate": "40001"})
	twice, err := status.New(codes.NotFound, "gone").WithDetails(
		&errdetails.ErrorInfo{Reason: "STOCK_NOT_FOUND", Domain: apierr.Domain},
		&errdetails.ErrorInfo{Reason: "NOT_FOUND", Domain: apierr.Domain})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		err         error
		wantReason  apierr.Reason
		wantMissing bool
	}{
		{"reason_kept", fmt.Errorf("in tx: %w", conflict), apierr.ConcurrencyConflict, false},
		{"plain_status", status.Error(codes.Unavailable, "down"), apierr.Unavailable, true},
		{"context_error", context.Canceled, apierr.Unknown, true}, // grpc sends a bare error as UNKNOWN
		{"two_infos", twice.Err(), apierr.StockNotFound, true},
		{"panic", nil, apierr.Internal, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var missing []string
			var mu sync.Mutex
			opts := server.Options{MissingReason: func(_ context.Context, method string, st *status.Status) {
				mu.Lock()
				defer mu.Unlock()
				missing = append(missing, method+" "+st.Code().String())
			}}
			srv, logs := newServer(t, opts, func(context.Context) error {
				if tt.err == nil {
					panic("boom")
				}
				return tt.err
			})
			srv.RegisterService(&failingStream, tt.err)
			run(t, srv)
			conn := dial(t, srv.GRPCAddr())

			check := func(call string, err error) {
				t.Helper()
				st := status.Convert(err)
				if n := apierr.Count(st); n != 1 {
					t.Errorf("%s = %v with %d ErrorInfos, want 1", call, err, n)
				}
				if got := apierr.ReasonOf(err); got != tt.wantReason {
					t.Errorf("%s reason = %q, want %q", call, got, tt.wantReason)
				}
			}
			check("unary", getStatus(t.Context(), conn))
			if tt.err != nil {
				stream, err := conn.NewStream(t.Context(), &grpc.StreamDesc{ServerStreams: true}, "/pgfleet.test.Failing/Fail")
				if err != nil {
					t.Fatalf("NewStream: %v", err)
				}
				if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
					t.Fatalf("SendMsg: %v", err)
				}
				check("stream", stream.RecvMsg(&emptypb.Empty{}))
			}

			wantCount := 0.0
			if tt.wantMissing {
				wantCount = 2
			}
			if got := counter(t, srv.Registry(), "pgfleet_grpc_errors_without_reason_total", nil); got != wantCount {
				t.Errorf("pgfleet_grpc_errors_without_reason_total = %v, want %v", got, wantCount)
			}
			mu.Lock()
			if got := len(missing); got != int(wantCount) {
				t.Errorf("MissingReason heard %v, want %v calls", missing, wantCount)
			}
			mu.Unlock()
			var logged int
			for _, rec := range logs.lines(t) {
				if rec["msg"] == "status without exactly one ErrorInfo" && rec["level"] == "DEBUG" {
					logged++
				}
			}
			if logged != int(wantCount) {
				t.Errorf("%d debug lines about a missing ErrorInfo, want %v", logged, wantCount)
			}
		})
	}
}

// failingStream is a hand-written service whose one server-streaming method fails with the
// error it was registered with.
var failingStream = grpc.ServiceDesc{
	ServiceName: "pgfleet.test.Failing",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "Fail",
		ServerStreams: true,
		Handler:       func(srv any, _ grpc.ServerStream) error { return srv.(error) },
	}},
}
