package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
	bin  string // the binaries' directory; "": the fleet's
}

var tracingModes = []tracingMode{
	{name: "off", env: func(string) []string { return nil }}, // no endpoint: no provider, no instrumentation
	{name: "sampled 1%", env: func(ep string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01"}
	}},
	{name: "sampled 100%", env: func(ep string) []string {
		return []string{"OTEL_EXPORTER_OTLP_ENDPOINT=" + ep, "OTEL_TRACES_SAMPLER=parentbased_always_on"}
	}},
}

// --- scenario 8: the cost of tracing -----------------------------------------------------

// tracingRounds is how many times each mode is measured, the modes taking turns, so that a
// machine whose load drifts during the scenario weighs on every mode alike; the median counts.
const tracingRounds = 3

// tracedPair is a stock service and a gateway in front of it, started for one tracing mode.
type tracedPair struct{ stock, gateway *proc }

// scenarioTracing measures GetStock over gRPC and over REST against a stock service and a
// gateway started for each tracing mode (the same binaries, one pair per mode, all running at
// once but loaded one at a time), in this run, and gives each mode's median throughput as a
// ratio of tracing off's.
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
	modes := slices.Clone(tracingModes)
	if b.cfg.baseBin != "" {
		modes = append(modes, tracingMode{name: "off, base build", env: func(string) []string { return nil }, bin: b.cfg.baseBin})
	}
	pairs := make([]tracedPair, len(modes))
	for i, m := range modes {
		p, err := b.startTracedPair(ctx, cmp.Or(m.bin, b.cfg.bin), fmt.Sprintf("trace%d", i), m.env(sink.Endpoint()))
		if p.stock != nil {
			defer p.stock.stop()
		}
		if p.gateway != nil {
			defer p.gateway.stop()
		}
		if err != nil {
			return fmt.Errorf("tracing %s: %w", m.name, err)
		}
		pairs[i] = p
	}
	grpcRuns := make([][]result, len(modes))
	restRuns := make([][]result, len(modes))
	grpcCPU := make([][]time.Duration, len(modes)) // per call: stock's CPU
	restCPU := make([][]time.Duration, len(modes)) // per call: the gateway's and stock's
	spans := make([]int, len(modes))
	for round := range tracingRounds {
		for i, m := range modes {
			b.logf("scenario 8: GetStock with tracing %s, %d clients, round %d of %d", m.name, tracingClients, round+1, tracingRounds)
			before := sink.Count()
			gm := cpuMeter{procs: []*proc{pairs[i].stock}}
			g, err := b.grpcGetStock(ctx, pairs[i].stock.grpcAddr, tracingClients, gm.hooks())
			if err != nil {
				return fmt.Errorf("tracing %s: %w", m.name, err)
			}
			rm := cpuMeter{procs: []*proc{pairs[i].gateway, pairs[i].stock}}
			r, err := b.restGetStock(ctx, pairs[i].gateway.httpAddr, tracingClients, b.cfg.warmup, b.cfg.duration, rm.hooks())
			if err != nil {
				return fmt.Errorf("tracing %s: %w", m.name, err)
			}
			grpcRuns[i], restRuns[i] = append(grpcRuns[i], g), append(restRuns[i], r)
			grpcCPU[i], restCPU[i] = append(grpcCPU[i], gm.perCall(g)), append(restCPU[i], rm.perCall(r))
			spans[i] += sink.Count() - before // spans still buffered arrive in the next turn's count
		}
	}
	add := func(path, who string, runs [][]result, cpu [][]time.Duration) {
		off, offCPU := median(runs[0]), medianDuration(cpu[0])
		for i, m := range modes {
			res, ratio := median(runs[i]), "baseline"
			c := medianDuration(cpu[i])
			cpuNote := fmt.Sprintf("; %s CPU per call %.1f µs", who, float64(c)/1e3)
			if i > 0 {
				ratio = ratios(res, "tracing off", off)
				if offCPU > 0 {
					cpuNote += fmt.Sprintf(" (%.2f of tracing off)", float64(c)/float64(offCPU))
				}
			}
			b.add(row{scenario: "8", path: path + ", tracing " + m.name, res: res, unit: "req/s", ratio: ratio,
				extra: "median of " + rates(runs[i]) + cpuNote})
		}
	}
	add("GetStock, gRPC → stock", "stock's", grpcRuns, grpcCPU)
	add("GetStock, REST → gateway → stock", "gateway's + stock's", restRuns, restCPU)
	b.note("scenario 8: one stock service and gateway per mode (OTEL_* as named; spans exported over OTLP/gRPC to a receiver inside the bench that drops them), %d clients, %d rounds with the modes taking turns; the receiver got %v spans (by mode, warm-ups included)",
		tracingClients, tracingRounds, spans)
	if b.cfg.baseBin != "" {
		b.note("scenario 8, off, base build: pgfleet-stock and pgfleet-gateway from %s", b.cfg.baseBin)
	}
	return nil
}

// startTracedPair starts bin's stock service and gateway in front of it with env and waits
// until both serve; the caller stops what it returns, even with an error.
func (b *bench) startTracedPair(ctx context.Context, bin, name string, env []string) (tracedPair, error) {
	var p tracedPair
	var err error
	if p.stock, err = b.startService(bin, "stock", "stock-"+name, env...); err != nil {
		return p, err
	}
	if err := p.stock.waitServing(ctx, 60*time.Second); err != nil {
		return p, err
	}
	if p.gateway, err = b.startGatewayProc(bin, "gateway-"+name, p.stock.grpcAddr, env...); err != nil {
		return p, err
	}
	return p, p.gateway.waitHTTP(ctx, "http://"+p.gateway.httpAddr+"/health", 60*time.Second)
}

// cpuMeter measures the CPU time its processes use in a run's measured window (/proc, so a
// figure less moved by a busy machine than throughput: work done per call, not its speed).
type cpuMeter struct {
	procs      []*proc
	start, end time.Duration
}

func (m *cpuMeter) total() time.Duration {
	var t time.Duration
	for _, p := range m.procs {
		t += cpuTime(p.p.Pid())
	}
	return t
}

func (m *cpuMeter) hooks() hooks {
	return hooks{start: func() { m.start = m.total() }, end: func() { m.end = m.total() }}
}

// perCall is the CPU time per call of r, 0 when the window saw no call.
func (m *cpuMeter) perCall(r result) time.Duration {
	if r.ops == 0 {
		return 0
	}
	return (m.end - m.start) / time.Duration(r.ops)
}

// medianDuration returns the median of ds.
func medianDuration(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

// median returns the run of median throughput.
func median(runs []result) result {
	sorted := slices.Clone(runs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
	return sorted[len(sorted)/2]
}

// rates lists the runs' throughputs, e.g. "8.1k 9.0k 8.7k".
func rates(runs []result) string {
	var parts []string
	for _, r := range runs {
		parts = append(parts, fmt.Sprintf("%.2fk", r.rate()/1000))
	}
	return strings.Join(parts, " ")
}
