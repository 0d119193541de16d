package main

import (
	"context"
	"fmt"
	"time"

	"github.com/pgfleet/pgfleet/pkg/telemetry/telemetrytest"
)

// tracingClients is scenario 8's concurrency: the one the targets are set at.
const tracingClients = 32

// tracingMode is how a stock service and a gateway of scenario 8 trace: the standard OTEL_*
// variables, exporting to the bench's own OTLP receiver, which counts and drops the spans.
type tracingMode struct {
	name string
	env  func(endpoint string) []string
}

var tracingModes = []tracingMode{
	{"off", func(string) []string { return nil }}, // no endpoint: no provider, no instrumentation
	{"sampled 1%", func(ep string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01"}
	}},
	{"sampled 100%", func(ep string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_TRACES_SAMPLER=parentbased_always_on"}
	}},
}

// --- scenario 8: the cost of tracing -----------------------------------------------------

// scenarioTracing measures GetStock over gRPC and over REST against a stock service and a
// gateway started for each tracing mode (the same binaries, fresh processes, one mode at a
// time), all in this run, and gives each mode's throughput as a ratio of tracing off.
func (b *bench) scenarioTracing(ctx context.Context) error {
	if b.gateway == nil {
		b.add(row{scenario: "8", path: "GetStock with tracing off, 1%, 100%", missing: "not run: gateway not built"})
		return nil
	}
	sink, err := telemetrytest.Start(false)
	if err != nil {
		return err
	}
	defer sink.Close()
	type measured struct{ grpc, rest result }
	var got []measured
	for i, m := range tracingModes {
		b.logf("scenario 8: GetStock with tracing %s, %d clients", m.name, tracingClients)
		before := sink.Count()
		res, err := b.tracedGetStock(ctx, fmt.Sprintf("trace%d", i), m.env(sink.Endpoint()))
		if err != nil {
			return fmt.Errorf("tracing %s: %w", m.name, err)
		}
		got = append(got, res)
		if i > 0 {
			b.note("scenario 8, tracing %s: the receiver got %d spans (warm-up included)", m.name, sink.Count()-before)
		}
	}
	off := got[0]
	for i, m := range tracingModes {
		ratio := "baseline"
		if i > 0 {
			ratio = ratios(got[i].grpc, "tracing off", off.grpc)
		}
		b.add(row{scenario: "8", path: "GetStock, gRPC → stock, tracing " + m.name, res: got[i].grpc, unit: "req/s", ratio: ratio})
	}
	for i, m := range tracingModes {
		ratio := "baseline"
		if i > 0 {
			ratio = ratios(got[i].rest, "tracing off", off.rest)
		}
		b.add(row{scenario: "8", path: "GetStock, REST → gateway → stock, tracing " + m.name, res: got[i].rest, unit: "req/s", ratio: ratio})
	}
	b.note("scenario 8: each mode runs its own stock service and gateway (OTEL_* as named, spans exported over OTLP/gRPC to a receiver inside the bench that drops them), %d clients", tracingClients)
	return nil
}

// tracedGetStock starts a stock service and a gateway in front of it with env, runs GetStock
// over gRPC and over REST against them, and stops them.
func (b *bench) tracedGetStock(ctx context.Context, name string, env []string) (res struct{ grpc, rest result }, err error) {
	stock, err := b.startService("stock", "stock-"+name, env...)
	if err != nil {
		return res, err
	}
	defer stock.stop()
	if err := stock.waitServing(ctx, 60*time.Second); err != nil {
		return res, err
	}
	gw, err := b.startGatewayProc("gateway-"+name, stock.grpcAddr, env...)
	if err != nil {
		return res, err
	}
	defer gw.stop()
	if err := gw.waitHTTP(ctx, "http://"+gw.httpAddr+"/health", 60*time.Second); err != nil {
		return res, err
	}
	if res.grpc, err = b.grpcGetStock(ctx, stock.grpcAddr, tracingClients, hooks{}); err != nil {
		return res, err
	}
	res.rest, err = b.restGetStock(ctx, gw.httpAddr, tracingClients, b.cfg.warmup, b.cfg.duration, hooks{})
	return res, err
}
