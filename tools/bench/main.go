// Command bench measures pgfleet against the thinnest alternatives, on the same database, in
// the same run, with the same load generator: pgbench -M prepared, a Go loop over pgxpool, a
// bare gRPC server and a bare net/http JSON handler (this binary, run as a second process),
// psql \copy, and a pgbench trade script. It starts its own PostgreSQL cluster and the fleet
// from .tmp/bin, loads data, runs each scenario for a bounded time and prints one markdown
// table of absolute figures and ratios, also written to .tmp/bench/results.md.
//
//	make bench                                   # builds the services first
//	go run ./tools/bench -duration 10s -scenarios 1,2,3,4,5,6,7,8,9,10,11,12,13 [-profile]
//	BENCH_DURATION=2s make bench                 # a smoke run
//
// Scenarios: 1 GetStock over gRPC, 2 GetStock over REST through the gateway, 3 a filtered
// ListStocks page, 4 IngestPrices vs COPY, 5 StreamPrices (rows/s, peak RSS), 6 ExecuteTrade
// under contention, 7 1,000 REST clients (errors, p99, RSS, DB connections), 8 GetStock over
// gRPC and REST with tracing off, sampled 1% and 100% (OTEL_*, to an in-process receiver),
// 9 failover under a trade load: a primary with a synchronous, then an asynchronous, hot
// standby of its own; seconds from the primary's death to the first trade and to SERVING, and
// acknowledged trades lost (about 40 s),
// 10 a read mix on a primary only vs on its hot standby (throughput, each server's CPU), 11 a
// read right after a write with and without its consistency token (latency, stale reads),
// 12 WatchLatestPrices with 1,000 subscribers (500 gRPC, 500 SSE through the gateway) during an
// IngestPrices load: commit-to-delivery latency, the ingest rate against none attached, memory
// per idle subscriber of the stock service and the gateway, 13 snapshot exports of 2M rows
// (ExportPrices in protobuf and Arrow over gRPC, the Arrow REST download) against a pgx read and
// COPY TO of the same rows (rows/s, MiB/s).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// knownScenarios are the scenarios -scenarios may name.
var knownScenarios = []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}

// config is what the flags (and BENCH_* variables) choose.
type config struct {
	root       string // repository root: deploy/local/bootstrap.sql and .tmp/bin live under it
	bin        string // the fleet's binaries
	baseBin    string // scenario 8: stock and gateway binaries of another build, run with tracing off
	work       string // cluster, logs, CSV, profiles, results.md
	duration   time.Duration
	warmup     time.Duration
	soak       time.Duration // scenario 7's measured window
	clients    []int         // scenarios 1 and 2
	soakConns  int           // scenario 7's clients
	soakRate   float64       // scenario 7's paced run: calls per second of each client
	watchSubs  int           // scenario 12's subscribers, half gRPC, half SSE
	exportBars int           // scenario 13's daily bars per symbol
	pool       int           // DB_POOL_SIZE of the services, and the pool of every Go baseline
	stocks     int
	scenarios  []int
	profile    bool
	auth       bool
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bare" {
		if err := runBare(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench bare:", err)
			os.Exit(1)
		}
		return
	}
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err = run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	dur := envDuration("BENCH_DURATION", 10*time.Second)
	var cfg config
	var clients, scenarios string
	fs.StringVar(&cfg.root, "root", ".", "repository root")
	fs.StringVar(&cfg.bin, "bin", "", "directory of the pgfleet-* binaries (default ROOT/.tmp/bin)")
	fs.StringVar(&cfg.baseBin, "base-bin", os.Getenv("BENCH_BASE_BIN"), "scenario 8: also run pgfleet-stock and pgfleet-gateway from this directory (another build, e.g. before a change) as a tracing-off baseline (env BENCH_BASE_BIN)")
	fs.DurationVar(&cfg.duration, "duration", dur, "measured window of each run (env BENCH_DURATION)")
	warmup, soak := envDuration("BENCH_WARMUP", dur/5), envDuration("BENCH_SOAK", 2*dur)
	fs.DurationVar(&cfg.warmup, "warmup", warmup, "warm-up before each window, not counted (env BENCH_WARMUP; default duration/5)")
	fs.DurationVar(&cfg.soak, "soak", soak, "measured window of scenario 7 (env BENCH_SOAK; default 2 x duration)")
	fs.StringVar(&clients, "clients", "1,32,256", "concurrent clients of scenarios 1 and 2")
	fs.IntVar(&cfg.soakConns, "soak-clients", 1000, "concurrent REST clients of scenario 7")
	fs.Float64Var(&cfg.soakRate, "soak-rate", 2, "scenario 7's paced run: requests per second of each client")
	fs.IntVar(&cfg.watchSubs, "watch-subscribers", 1000, "scenario 12's WatchLatestPrices subscribers, half over gRPC, half SSE through the gateway")
	fs.IntVar(&cfg.exportBars, "export-bars", envInt("BENCH_EXPORT_BARS", exportBarsFor(dur)), "scenario 13: daily bars per symbol of its 200 (10000: 2M rows; default scales with -duration below 10s) (env BENCH_EXPORT_BARS)")
	fs.IntVar(&cfg.pool, "pool", 20, "DB_POOL_SIZE of the services and pool size of the Go baselines")
	fs.IntVar(&cfg.stocks, "stocks", 5000, "stocks loaded (point reads pick among them at random)")
	fs.StringVar(&scenarios, "scenarios", envString("BENCH_SCENARIOS", "1,2,3,4,5,6,7,8,9,10,11,12,13"), "scenarios to run (env BENCH_SCENARIOS)")
	fs.BoolVar(&cfg.profile, "profile", envBool("BENCH_PROFILE"), "save 10 s CPU profiles of each process in the 32-client runs of scenarios 1, 2 and 6 (env BENCH_PROFILE=1)")
	fs.BoolVar(&cfg.auth, "auth", true, "run the fleet with JWT auth on and send tokens (false: AUTH_DISABLED=true)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var err error
	if cfg.clients, err = intList(clients); err != nil {
		return config{}, fmt.Errorf("-clients: %w", err)
	}
	if cfg.scenarios, err = intList(scenarios); err != nil {
		return config{}, fmt.Errorf("-scenarios: %w", err)
	}
	for _, s := range cfg.scenarios {
		if !slices.Contains(knownScenarios, s) {
			return config{}, fmt.Errorf("-scenarios: no scenario %d (%v)", s, knownScenarios)
		}
	}
	// A -duration on the command line moves the defaults that follow from it.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["duration"] && !set["warmup"] && os.Getenv("BENCH_WARMUP") == "" {
		cfg.warmup = cfg.duration / 5
	}
	if set["duration"] && !set["soak"] && os.Getenv("BENCH_SOAK") == "" {
		cfg.soak = 2 * cfg.duration
	}
	if set["duration"] && !set["export-bars"] && os.Getenv("BENCH_EXPORT_BARS") == "" {
		cfg.exportBars = exportBarsFor(cfg.duration)
	}
	if cfg.exportBars < 1 || cfg.exportBars > 20_000 {
		return config{}, errors.New("need 1 <= -export-bars <= 20000")
	}
	if cfg.duration <= 0 || cfg.warmup < 0 || cfg.soak <= 0 || cfg.pool < 1 || cfg.stocks < 500 || cfg.stocks > 10000 || cfg.soakRate <= 0 || cfg.watchSubs < 2 {
		return config{}, errors.New("need -duration > 0, -warmup >= 0, -soak > 0, -pool >= 1, 500 <= -stocks <= 10000, -soak-rate > 0, -watch-subscribers >= 2")
	}
	if cfg.root, err = filepath.Abs(cfg.root); err != nil {
		return config{}, err
	}
	if _, err := os.Stat(filepath.Join(cfg.root, "deploy/local/bootstrap.sql")); err != nil {
		return config{}, fmt.Errorf("-root %s is not the pgfleet repository (no deploy/local/bootstrap.sql)", cfg.root)
	}
	if cfg.bin == "" {
		cfg.bin = filepath.Join(cfg.root, ".tmp/bin")
	}
	if cfg.bin, err = filepath.Abs(cfg.bin); err != nil {
		return config{}, err
	}
	cfg.work = filepath.Join(cfg.root, ".tmp/bench")
	return cfg, nil
}

// exportBarsFor is scenario 13's default bars per symbol for a measured window of d: 10,000
// (2M rows) from 10 s up, fewer below, so that a smoke run (BENCH_DURATION=2s: 2,000) stays short.
func exportBarsFor(d time.Duration) int {
	return int(min(10_000, max(1_000, 10_000*d/(10*time.Second))))
}

func (c config) runs(scenario int) bool { return slices.Contains(c.scenarios, scenario) }

func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		fmt.Fprintf(os.Stderr, "bench: ignoring %s=%q: not a duration such as 10s\n", name, v)
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		fmt.Fprintf(os.Stderr, "bench: ignoring %s=%q: not a number\n", name, v)
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envBool(name string) bool {
	v, _ := strconv.ParseBool(os.Getenv(name))
	return v
}

// raiseFileLimit sets the soft limit on open files to the hard one: 1,000 clients need as
// many sockets here and in the gateway, which inherits the limit.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
