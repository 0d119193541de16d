package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"google.golang.org/grpc/grpclog"
)

// logGRPCErrors sends gRPC's and grpc-gateway's own error lines (a client that hung up in
// the middle of a stream, say) to stderr as JSON at level WARN, like every other log line,
// and drops their info and warning chatter. grpclog is global, so only main calls this.
func logGRPCErrors() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("service", "gateway", "component", "grpc")
	grpclog.SetLoggerV2(grpclog.NewLoggerV2(io.Discard, io.Discard, grpcLogWriter{log}))
}

// grpcLogWriter turns one grpclog line ("2026/11/23 22:02:55 ERROR: Failed to ...") into a
// log record with the text after the severity as its message.
type grpcLogWriter struct{ log *slog.Logger }

func (w grpcLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if _, after, ok := strings.Cut(msg, "ERROR: "); ok {
		msg = after
	}
	w.log.Log(context.Background(), slog.LevelWarn, msg)
	return len(p), nil
}
