package server_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/server"
)

// feedDesc is a service with one watch stream, as the services declare theirs: it sends one
// message, then waits for its context like a watch with nothing new.
var feedDesc = grpc.ServiceDesc{
	ServiceName: "test.Feed",
	HandlerType: (*any)(nil),
	Streams: []grpc.StreamDesc{{
		StreamName:    "WatchThings",
		ServerStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error {
			if err := ss.RecvMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			if err := ss.SendMsg(&emptypb.Empty{}); err != nil {
				return err
			}
			<-ss.Context().Done()
			return status.FromContextError(ss.Context().Err()).Err()
		},
	}},
}

// TestServer_Run_endsWatchStreams: a drain ends the services' Watch* streams at once with
// UNAVAILABLE SHUTTING_DOWN (so their clients reconnect elsewhere) instead of holding the
// shutdown for the whole Drain, a minute here.
func TestServer_Run_endsWatchStreams(t *testing.T) {
	t.Parallel()
	srv, _ := newServer(t, server.Options{Drain: time.Minute}, nil)
	srv.RegisterService(&feedDesc, struct{}{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()

	conn := dial(t, srv.GRPCAddr())
	stream, err := conn.NewStream(t.Context(), &feedDesc.Streams[0], "/test.Feed/WatchThings")
	if err != nil {
		t.Fatalf("NewStream: %v", err)
	}
	if err := stream.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatalf("SendMsg: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatalf("CloseSend: %v", err)
	}
	if err := stream.RecvMsg(&emptypb.Empty{}); err != nil {
		t.Fatalf("first message: %v", err)
	}
	cancel()
	err = stream.RecvMsg(&emptypb.Empty{})
	if status.Code(err) != codes.Unavailable || apierr.ReasonOf(err) != apierr.ShuttingDown {
		t.Errorf("watch stream at shutdown = %v (reason %q), want UNAVAILABLE SHUTTING_DOWN", err, apierr.ReasonOf(err))
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil", err)
	}
}
