package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// root is a repository root for the runner under test: .tmp/bin with the binaries built from
// this tree, and deploy/local linked to the real one (bootstrap.sql, seeds).
var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

func testRoot(t *testing.T) string {
	t.Helper()
	rootOnce.Do(func() {
		rootDir, rootErr = os.MkdirTemp("", "pgfleet-run-test-")
		if rootErr != nil {
			return
		}
		repo, _ := filepath.Abs("../..")
		if rootErr = os.MkdirAll(filepath.Join(rootDir, "deploy"), 0o755); rootErr != nil {
			return
		}
		if rootErr = os.Symlink(filepath.Join(repo, "deploy/local"), filepath.Join(rootDir, "deploy/local")); rootErr != nil {
			return
		}
		for name, pkg := range map[string]string{"pgfleet-run": "./tools/run", "pgfleet-stock": "./services/stock",
			"pgfleet-portfolio": "./services/portfolio", "pgfleet-interview": "./services/interview", "pgfleet-gateway": "./services/gateway", "pgfleet": "./tools/doctor"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(rootDir, ".tmp/bin", name), pkg)
			cmd.Dir = repo
			if out, err := cmd.CombinedOutput(); err != nil {
				rootErr = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
				return
			}
		}
		// The postgres OS user runs the cluster when we are root: it must reach the data dir.
		rootErr = os.Chmod(rootDir, 0o755)
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return rootDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if rootDir != "" {
		_ = os.RemoveAll(rootDir)
	}
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// runner is a pgfleet-run under test and its output.
type runner struct {
	cmd     *exec.Cmd
	out     string // file with its stdout and stderr
	dataDir string
	done    chan struct{}
}

// startRunner starts pgfleet-run on a cluster of its own and free ports, through sh with
// SIGINT ignored if ignoreINT (as a script's background job starts it), and waits until it has
// printed its examples. env adds to (and overrides) its environment.
func startRunner(t *testing.T, ignoreINT bool, env ...string) *runner {
	t.Helper()
	root := testRoot(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &runner{out: filepath.Join(dir, "out"), dataDir: filepath.Join(dir, "data"), done: make(chan struct{})}
	bin := filepath.Join(root, ".tmp/bin/pgfleet-run")
	trap := ""
	if ignoreINT {
		trap = "trap '' INT; "
	}
	r.cmd = exec.Command("/bin/sh", "-c", trap+`exec "$0" -root "$1"`, bin, root)
	r.cmd.Env = append(os.Environ(), "PGFLEET_DATA_DIR="+r.dataDir, "PGFLEET_RUN_DIR="+filepath.Join(dir, "run"),
		"PGFLEET_PG_PORT="+freePort(t), "PGFLEET_SEED=0", "DRAIN_TIMEOUT=2s", "DATABASE_URL=", "JWT_SECRET=",
		"STOCK_GRPC_ADDR=127.0.0.1:"+freePort(t), "STOCK_METRICS_ADDR=127.0.0.1:"+freePort(t),
		"PORTFOLIO_GRPC_ADDR=127.0.0.1:"+freePort(t), "PORTFOLIO_METRICS_ADDR=127.0.0.1:"+freePort(t),
		"INTERVIEW_GRPC_ADDR=127.0.0.1:"+freePort(t), "INTERVIEW_METRICS_ADDR=127.0.0.1:"+freePort(t),
		"GATEWAY_HTTP_ADDR=127.0.0.1:"+freePort(t), "GATEWAY_METRICS_ADDR=127.0.0.1:"+freePort(t), "REPLICAS=")
	r.cmd.Env = append(r.cmd.Env, env...)
	f, err := os.Create(r.out)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout, r.cmd.Stderr = f, f
	// A process group of its own: the test's signals go to it alone.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); f.Close(); close(r.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.done
		if t.Failed() {
			t.Logf("pgfleet-run output:\n%s", r.output())
		}
	})
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if out := r.output(); strings.Contains(out, "Try it") && strings.HasSuffix(out, "\n\n") {
			return r
		}
		select {
		case <-r.done:
			t.Fatalf("pgfleet-run exited before printing its examples")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("pgfleet-run printed no examples within 5 minutes")
		}
	}
}

func (r *runner) output() string {
	b, _ := os.ReadFile(r.out)
	return string(b)
}

var startedLine = regexp.MustCompile(`==> started (\w+) \(pid (\d+)`)

// pids returns the processes the runner started: its services and the cluster.
func (r *runner) pids(t *testing.T) map[string]int {
	t.Helper()
	pids := map[string]int{}
	for _, m := range startedLine.FindAllStringSubmatch(r.output(), -1) {
		pids[m[1]], _ = strconv.Atoi(m[2])
	}
	pid, _, ok := pgserver.Running(r.dataDir)
	if !ok {
		t.Fatal("no PostgreSQL running in the runner's data directory")
	}
	pids["postgres"] = pid
	if len(pids) != 5 {
		t.Fatalf("started processes %v: want stock, portfolio, interview, gateway and postgres", pids)
	}
	return pids
}

// waitGone waits (bounded generously: a loaded machine is slow, not wrong) until none of pids runs.
func waitGone(t *testing.T, pids map[string]int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var running []string
		for name, pid := range pids {
			if supervise.Alive(pid) {
				running = append(running, name)
			}
		}
		if len(running) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running 2 minutes after the runner ended: %v", running)
		}
	}
}

// Killed outright, the runner takes its services and its cluster down with it: before
// pkg/supervise, run.sh's services ran in sessions of their own and survived it.
func TestRunner_killedTakesFleetDown(t *testing.T) {
	t.Parallel()
	r := startRunner(t, false)
	pids := r.pids(t)
	if err := r.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-r.done
	waitGone(t, pids)
}

var stoppingLine = regexp.MustCompile(`(?m)^stopping (\w+)`)

// SIGINT or SIGTERM stops the gateway and the services in reverse start order, then the
// cluster, and the runner exits 0; SIGINT works also when the runner was started with SIGINT
// ignored, as a script's background job is (run.sh then ran on).
func TestRunner_signalStopsInReverse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		sig       syscall.Signal
		ignoreINT bool
	}{
		{"sigint", syscall.SIGINT, false},
		{"sigterm", syscall.SIGTERM, false},
		{"sigint_background_job", syscall.SIGINT, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := startRunner(t, tt.ignoreINT)
			pids := r.pids(t)
			if err := r.cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case <-r.done:
			case <-time.After(3 * time.Minute):
				t.Fatalf("pgfleet-run still runs 3 minutes after %v", tt.sig)
			}
			if code := r.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("exit code %d, want 0", code)
			}
			var stopped []string
			for _, m := range stoppingLine.FindAllStringSubmatch(r.output(), -1) {
				stopped = append(stopped, m[1])
			}
			want := []string{"gateway", "interview", "portfolio", "stock", "PostgreSQL"}
			if diff := cmp.Diff(want, stopped); diff != "" {
				t.Errorf("stop order (-want +got):\n%s", diff)
			}
			waitGone(t, pids)
			if !slices.Contains(strings.Split(r.output(), "\n"), "==> shutting down") {
				t.Error(`no "==> shutting down" line`)
			}
		})
	}
}

// The runner writes the fleet file of the fleet it started and prints the command that checks
// it, and that command, run as printed, finds the fleet healthy: warnings at most (its cluster
// trusts local logins, which doctor reports), exit 0.
func TestRunner_fleetFileForDoctor(t *testing.T) {
	t.Parallel()
	r := startRunner(t, false)
	m := regexp.MustCompile(`(?m)^  doctor +(\S+) doctor --fleet (\S+)`).FindStringSubmatch(r.output())
	if m == nil {
		t.Fatalf("no doctor command among the printed lines:\n%s", r.output())
	}
	cmd := exec.Command(filepath.Join(testRoot(t), m[1]), "doctor", "--fleet", m[2], "--timeout", "30s")
	cmd.Dir = testRoot(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	for _, check := range []string{"stock", "portfolio", "interview", "gateway"} {
		if !regexp.MustCompile(`(?m)^` + check + ` +health(z)? +ok `).Match(out) {
			t.Errorf("no ok health line of %s:\n%s", check, out)
		}
	}
}

// REPLICAS=1 starts a streaming standby of the runner's cluster, prints its URL, and stops it
// with the fleet, before the primary.
func TestRunner_replicas(t *testing.T) {
	t.Parallel()
	r := startRunner(t, false, "REPLICAS=1", "PGFLEET_STANDBY_PORT="+freePort(t))
	m := regexp.MustCompile(`(?m)^  standby +(postgres://\S+) `).FindStringSubmatch(r.output())
	if m == nil {
		t.Fatalf("no standby URL among the printed lines:\n%s", r.output())
	}
	if l := regexp.MustCompile(`==> standby streaming.*`).FindString(r.output()); l != "" {
		t.Log(l)
	}
	conn, err := pgx.Connect(t.Context(), m[1])
	if err != nil {
		t.Fatalf("connect to the standby: %v", err)
	}
	var inRecovery bool
	var stocks int
	err = conn.QueryRow(t.Context(), "SELECT pg_is_in_recovery(), (SELECT count(*) FROM pg_namespace WHERE nspname = 'stock')").Scan(&inRecovery, &stocks)
	conn.Close(t.Context())
	if err != nil || !inRecovery || stocks != 1 {
		t.Errorf("standby: in recovery %v, schema stock %d, err %v; want true, 1 (replayed from the primary)", inRecovery, stocks, err)
	}
	checkReadsOnStandby(t, r, m[1])
	pid, _, ok := pgserver.Running(filepath.Join(filepath.Dir(r.dataDir), "run", "standby"))
	if !ok {
		t.Fatal("no standby running in the run directory")
	}
	if err := r.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("pgfleet-run still runs 3 minutes after SIGINT")
	}
	var stopped []string
	for _, m := range stoppingLine.FindAllStringSubmatch(r.output(), -1) {
		stopped = append(stopped, m[1])
	}
	want := []string{"gateway", "interview", "portfolio", "stock", "standby", "PostgreSQL"}
	if diff := cmp.Diff(want, stopped); diff != "" {
		t.Errorf("stop order (-want +got):\n%s", diff)
	}
	waitGone(t, map[string]int{"standby": pid})
}

// checkReadsOnStandby: with REPLICAS=1 each service gets DATABASE_READ_URL, the standby
// (standbyURL) with its own role and database, printed and in fleet.json; the stock service
// reads on it (its router finds it usable, and a REST list through the gateway is counted as
// a read on the replica); and pgfleet doctor, run as printed, checks each service's replica.
func checkReadsOnStandby(t *testing.T, r *runner, standbyURL string) {
	t.Helper()
	out := r.output()
	standby, err := pgx.ParseConfig(standbyURL)
	if err != nil {
		t.Fatal(err)
	}
	at := regexp.QuoteMeta("@127.0.0.1:" + strconv.Itoa(int(standby.Port)) + "/")
	for _, svc := range []string{"stock", "portfolio", "interview"} {
		if !regexp.MustCompile(`(?m)^ +DATABASE_READ_URL=postgres://` + svc + `:\S*` + at + `pgfleet\S* `).MatchString(out) {
			t.Errorf("no DATABASE_READ_URL line of %s on the standby among the printed lines:\n%s", svc, out)
		}
	}

	doctor := regexp.MustCompile(`(?m)^  doctor +(\S+) doctor --fleet (\S+)`).FindStringSubmatch(out)
	if doctor == nil {
		t.Fatalf("no doctor command among the printed lines:\n%s", out)
	}
	raw, err := os.ReadFile(doctor[2])
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			DatabaseReadURL string `json:"database_read_url"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"stock", "portfolio", "interview"} {
		u := file.Services[svc].DatabaseReadURL
		if !regexp.MustCompile(`^postgres://` + svc + `:\S*` + at).MatchString(u) {
			t.Errorf("fleet.json: %s's database_read_url = %q, want the standby with role %s", svc, u, svc)
		}
	}

	m := regexp.MustCompile(`(?m)^  stock +gRPC \S+, metrics (\S+), log`).FindStringSubmatch(out)
	gw := regexp.MustCompile(`(?m)^  gateway +HTTP (\S+) `).FindStringSubmatch(out)
	if m == nil || gw == nil {
		t.Fatalf("no stock metrics or gateway address among the printed lines:\n%s", out)
	}
	metrics := "http://" + m[1] + "/metrics"
	pgtest.Poll(t, "stock's router finds the standby usable (pgfleet_db_replica_up 1)", func() bool {
		return scrape(t, metrics, "pgfleet_db_replica_up{") == 1
	})
	onReplica := `pgfleet_db_reads_total{reason="replica",target="replica"}`
	before := scrape(t, metrics, onReplica)
	code, _ := get(t, "http://"+gw[1]+"/v1/stocks?page_size=1")
	if after := scrape(t, metrics, onReplica); code != http.StatusOK || after <= before {
		t.Errorf("GET /v1/stocks = %d; %s %v then %v, want 200 and more (read on the standby)", code, onReplica, before, after)
	}

	cmd := exec.Command(filepath.Join(testRoot(t), doctor[1]), "doctor", "--fleet", doctor[2], "--timeout", "30s")
	cmd.Dir = testRoot(t)
	report, _ := cmd.CombinedOutput() // exit 1 when a check warns: the cluster trusts local logins
	for _, svc := range []string{"stock", "portfolio", "interview"} {
		// warn allowed: a standby of an idle primary may be behind it by WAL with no commit to
		// date its lag, which doctor and the router then judge by the last commit's age.
		if !regexp.MustCompile(`(?m)^` + svc + ` +read-replica +(ok|warn) +127\.0\.0\.1:` + strconv.Itoa(int(standby.Port)) + `, role ` + svc + `, in recovery`).Match(report) {
			t.Errorf("no read-replica line of %s on the standby in the doctor's report:\n%s", svc, report)
		}
	}
}

// get returns the status and body of GET url, bounded by 30 seconds.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// scrape returns the value of the first sample at url whose line starts with prefix, 0 if none.
func scrape(t *testing.T, url, prefix string) float64 {
	t.Helper()
	_, b := get(t, url)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("scrape %s: %q: %v", url, line, err)
			}
			return v
		}
	}
	return 0
}
