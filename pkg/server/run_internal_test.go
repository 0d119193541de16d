package server

import (
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"
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
