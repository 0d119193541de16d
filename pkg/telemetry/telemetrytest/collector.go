// Package telemetrytest is an OTLP/gRPC trace receiver that runs in the caller's process:
// tests point a fleet's OTEL_EXPORTER_OTLP_ENDPOINT at it and read the spans it got; the
// bench points one at it that only counts them.
package telemetrytest

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sync"

	collectortracev1 "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
)

// Span is a received span with the service.name and service.version of the resource that
// sent it.
type Span struct {
	Service, Version string
	*tracev1.Span
}

// TraceID returns the span's trace id in hex, as logs print it.
func (s Span) TraceID() string { return hex.EncodeToString(s.GetTraceId()) }

// ID returns the span's id in hex.
func (s Span) ID() string { return hex.EncodeToString(s.GetSpanId()) }

// Parent returns the parent span's id in hex, "" for a root span.
func (s Span) Parent() string { return hex.EncodeToString(s.GetParentSpanId()) }

// Collector receives OTLP/gRPC trace exports on a loopback port.
type Collector struct {
	collectortracev1.UnimplementedTraceServiceServer

	// Addr is host:port, for OTEL_EXPORTER_OTLP_ENDPOINT=http://Addr.
	Addr string

	keep  bool
	srv   *grpc.Server
	mu    sync.Mutex
	spans []Span
	count int
}

// Start serves a Collector on 127.0.0.1; keep false only counts spans (a bench's sink).
func Start(keep bool) (*Collector, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("telemetrytest: listen: %w", err)
	}
	c := &Collector{Addr: lis.Addr().String(), keep: keep, srv: grpc.NewServer()}
	collectortracev1.RegisterTraceServiceServer(c.srv, c)
	go c.srv.Serve(lis) //nolint:errcheck // ends with Close
	return c, nil
}

// Endpoint is the value of OTEL_EXPORTER_OTLP_ENDPOINT that reaches c in plaintext.
func (c *Collector) Endpoint() string { return "http://" + c.Addr }

// Close stops serving.
func (c *Collector) Close() { c.srv.Stop() }

// Export receives one batch.
func (c *Collector) Export(_ context.Context, req *collectortracev1.ExportTraceServiceRequest) (*collectortracev1.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		var service, version string
		for _, a := range rs.GetResource().GetAttributes() {
			switch a.GetKey() {
			case "service.name":
				service = a.GetValue().GetStringValue()
			case "service.version":
				version = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.count += len(ss.GetSpans())
			if !c.keep {
				continue
			}
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, Span{Service: service, Version: version, Span: s})
			}
		}
	}
	return &collectortracev1.ExportTraceServiceResponse{}, nil
}

// Spans returns the spans kept so far.
func (c *Collector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Span(nil), c.spans...)
}

// Count returns how many spans arrived, kept or not.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}
