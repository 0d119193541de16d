package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	scenario, path string
	res            result // a measured run; its rate is the figure unless figure is set
	unit           string // of res's rate: req/s, rows/s, tps, ...
	figure         string // a figure that is not a rate (RSS, connections)
	ratio          string
	target         string // the goal for this line, met or missed
	extra          string // what else the line measured (retries, peak RSS, time)
	missing        string // why the line did not run
}

func (b *bench) add(r row) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rows = append(b.rows, r)
	if r.res.errs > 0 {
		b.notes = append(b.notes, fmt.Sprintf("scenario %s, %s, %d clients: %d errors, the first: %s", r.scenario, r.path, r.res.clients, r.res.errs, r.res.firstErr))
	}
}

// table renders the rows as markdown.
func (b *bench) table() string {
	var s strings.Builder
	s.WriteString("| # | path | clients | result | p50 | p99 | errors | ratio | target | notes |\n")
	s.WriteString("|---|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, r := range b.rows {
		if r.missing != "" {
			fmt.Fprintf(&s, "| %s | %s | | %s | | | | | | |\n", r.scenario, r.path, r.missing)
			continue
		}
		clients, fig, p50, p99, errs := "", r.figure, "", "", ""
		if fig == "" {
			clients = fmt.Sprint(r.res.clients)
			fig = rate(r.res.rate()) + " " + r.unit
			p50, p99 = latency(r.res.p50), latency(r.res.p99)
			errs = fmt.Sprint(r.res.errs)
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			r.scenario, r.path, clients, fig, p50, p99, errs, r.ratio, r.target, r.extra)
	}
	return s.String()
}

// ratios renders "0.82 of bare gRPC · 0.31 of pgx loop": r's rate over each baseline's.
func ratios(r result, pairs ...any) string {
	var parts []string
	for i := 0; i+1 < len(pairs); i += 2 {
		name, base := pairs[i].(string), pairs[i+1].(result)
		if base.rate() == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%.2f of %s", r.rate()/base.rate(), name))
	}
	return strings.Join(parts, " · ")
}

func targetRatio(got, want float64) string {
	return fmt.Sprintf("≥ %.2f: %s", want, metOrMissed(got >= want))
}

func targetMiB(bytes int64, limit int64) string {
	return fmt.Sprintf("< %d MiB: %s", limit, metOrMissed(bytes < limit<<20))
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// rate renders a throughput: 950, 12.3k, 1.07M.
func rate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.2fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// latency renders a duration in µs below a millisecond, else in ms.
func latency(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

// machine describes the machine and the software measured.
func (b *bench) machine(ctx context.Context) []string {
	var out []string
	cpu := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	memTotal := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				memTotal = fmt.Sprintf("%.1f GiB", float64(kib(v))/(1<<30))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	osName := ""
	if raw, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				osName = strings.Trim(v, `"`)
			}
		}
	}
	var pgVersion string
	if err := b.admin.QueryRow(ctx, "SHOW server_version").Scan(&pgVersion); err != nil {
		pgVersion = err.Error()
	}
	var sb, fsync string
	_ = b.admin.QueryRow(ctx, "SELECT current_setting('shared_buffers'), current_setting('fsync')").Scan(&sb, &fsync) //nolint:errcheck // informative only
	out = append(out,
		fmt.Sprintf("CPU: %d × %s (runtime.NumCPU %d); memory %s", runtime.NumCPU(), cpu, runtime.NumCPU(), memTotal),
		fmt.Sprintf("OS: %s, Linux %s", osName, strings.TrimSpace(string(kernel))),
		fmt.Sprintf("PostgreSQL %s (throwaway cluster, pkg/pgserver Throwaway settings: fsync=%s, synchronous_commit=off, shared_buffers=%s, max_connections=400)", pgVersion, fsync, sb),
		fmt.Sprintf("Go %s (bench binary; the services are built by make build with the same toolchain)", strings.TrimPrefix(runtime.Version(), "go")),
		fmt.Sprintf("DB_POOL_SIZE=%d for every service and every Go baseline pool; pgbench uses one connection per client", b.cfg.pool),
	)
	return out
}

// report prints the header, the table and the notes, and writes them to results.md.
func (b *bench) report(ctx context.Context) error {
	var s strings.Builder
	fmt.Fprintf(&s, "## pgfleet bench, %s\n\n", time.Now().Format("2006-01-02 15:04 MST"))
	for _, l := range b.machineID {
		fmt.Fprintf(&s, "- %s\n", l)
	}
	fmt.Fprintf(&s, "- load average (1, 5, 15 min) before the scenarios: %s; after: %s\n",
		strings.Join(b.startLoad, " "), strings.Join(loadAvg(), " "))
	fmt.Fprintf(&s, "- runs: %s warm-up (not counted), then %s measured; scenario 7: %s measured\n", b.cfg.warmup, b.cfg.duration, b.cfg.soak)
	fmt.Fprintf(&s, "- logs of every process, PostgreSQL's included: %s\n\n", b.rel(filepath.Join(b.cfg.work, "logs")))
	s.WriteString("Commands:\n\n```\n")
	s.WriteString(b.commandLine() + "\n")
	for _, c := range b.commands {
		s.WriteString(c + "\n")
	}
	s.WriteString("```\n\n")
	s.WriteString(b.table())
	s.WriteString("\nRatios are this line's throughput over the named baseline's, same run, same database, same load generator (the Go closed loop here, or pgbench for its own lines).\n")
	for _, n := range b.notes {
		fmt.Fprintf(&s, "\n- %s", n)
	}
	s.WriteString("\n")
	if b.cfg.profile {
		s.WriteString("\nCPU profiles (the 32-client figures of this run include the profiler's cost; take the table from a run without -profile):\n")
		for _, p := range b.profiles {
			fmt.Fprintf(&s, "\n- %s", p)
		}
		s.WriteString("\n")
	}
	out := s.String()
	fmt.Print("\n" + out)
	path := filepath.Join(b.cfg.work, "results.md")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return err
	}
	b.logf("wrote %s", path)
	if b.cfg.profile {
		b.summarizeProfiles(ctx)
	}
	return nil
}

// summarizeProfiles writes `go tool pprof -top` of each saved profile next to it.
func (b *bench) summarizeProfiles(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(b.cfg.work, "profiles", "*.pprof"))
	for _, f := range files {
		if top := pprofTop(ctx, f, 30); top != "" {
			_ = os.WriteFile(strings.TrimSuffix(f, ".pprof")+".top.txt", []byte(top), 0o644) //nolint:errcheck // a convenience
		}
	}
}

// commandLine is how this run was started, as a reader would type it.
func (b *bench) commandLine() string {
	args := strings.Join(os.Args[1:], " ")
	args = strings.TrimSpace(strings.ReplaceAll(args, "-root "+b.cfg.root, ""))
	c := strings.TrimSpace("go run ./tools/bench " + args)
	if os.Getenv("MAKELEVEL") != "" {
		c = "make bench   # = make build, then " + c
	}
	for _, v := range []string{"BENCH_DURATION", "BENCH_WARMUP", "BENCH_SOAK", "BENCH_SCENARIOS", "BENCH_PROFILE", "BENCH_EXPORT_BARS"} {
		if val := os.Getenv(v); val != "" {
			c = v + "=" + val + " " + c
		}
	}
	return c
}

// rel names path relative to the repository root, as commands run from there see it.
func (b *bench) rel(path string) string {
	if r, err := filepath.Rel(b.cfg.root, path); err == nil {
		return r
	}
	return path
}
