package server

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// TestRun_listenerFails: a gRPC listener that dies makes Run stop everything and return its error.
func TestRun_listenerFails(t *testing.T) {
	t.Parallel()
	s, err := New(Options{GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0", Drain: time.Minute,
		Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.grpcLis.Close()
	if err := s.Run(t.Context()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Run with a closed listener = %v, want an error wrapping net.ErrClosed", err)
	}
	if c, err := net.Dial("tcp", s.MetricsAddr()); err == nil {
		c.Close()
		t.Errorf("metrics listener still accepts after Run failed")
	}
}

// cancelledStream is a server stream whose client went away before sending its request.
type cancelledStream struct{ grpc.ServerStream }

func (cancelledStream) RecvMsg(any) error { return status.Error(codes.Canceled, "context canceled") }

// TestValidatingStream_cancelledBeforeRequest: the request's RecvMsg error, which the generated
// handler returns as is, carries exactly one ErrorInfo (CI saw a StreamPrices cancelled before
// its request answer CANCELLED without one).
func TestValidatingStream_cancelledBeforeRequest(t *testing.T) {
	v := &validatingStream{ServerStream: cancelledStream{}, validate: func(any) error { return nil }, method: "/pkg.S/M"}
	err := v.RecvMsg(nil)
	st, _ := status.FromError(err)
	if st.Code() != codes.Canceled || apierr.Count(st) != 1 {
		t.Errorf("RecvMsg = %v with %d ErrorInfos, want CANCELLED with 1", err, apierr.Count(st))
	}
}
