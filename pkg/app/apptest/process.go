package apptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// startupTimeout bounds a process's start, migrations included, on a machine busy with the
// rest of the tests; stopTimeout its drain after SIGTERM.
const (
	startupTimeout = 60 * time.Second
	stopTimeout    = 30 * time.Second
)

// Build builds the main packages (import paths) from the workspace, as `make build` does,
// into dir; each binary is named after its package's last path element.
func Build(dir string, pkgs ...string) error {
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %v: %w\n%s", pkgs, err, out)
	}
	return nil
}

// Process is a service binary running as a process of its own, as it runs in production:
// for tests that stop and start a peer, or drive it from another module.
type Process struct {
	Name        string // the binary's base name, for messages
	Addr        string // its gRPC address (the gateway's: its REST address)
	MetricsAddr string // /metrics and /healthz
	Log         string // the file its output goes to

	proc  *supervise.Process
	ready supervise.Probe
}

// StartProcess runs bin with env (KEY=VALUE, DATABASE_URL among them) on free ports, with the
// test auth config and short health and drain intervals, waits until it is SERVING, and
// stops it when tb ends. Its output goes to a file, shown when tb fails.
func StartProcess(tb testing.TB, bin string, env ...string) *Process {
	tb.Helper()
	p := newProcess(tb, bin, "GRPC_ADDR")
	p.ready = supervise.GRPCServing(p.Addr)
	p.run(tb, env)
	return p
}

// StartGatewayProcess runs the gateway binary bin as StartProcess runs a service: Addr is
// its REST listener (HTTP_ADDR), and it is ready once its /healthz answers. env names the
// services behind it (STOCK_ADDR, ...).
func StartGatewayProcess(tb testing.TB, bin string, env ...string) *Process {
	tb.Helper()
	p := newProcess(tb, bin, "HTTP_ADDR")
	p.ready = supervise.HTTPAnswers("http://" + p.MetricsAddr + "/healthz")
	p.run(tb, append([]string{"STOCK_TIMEOUT=30s", "PORTFOLIO_TIMEOUT=30s", "INTERVIEW_TIMEOUT=30s"}, env...))
	return p
}

// newProcess is bin on free ports: addrVar (its main listener) and METRICS_ADDR.
func newProcess(tb testing.TB, bin, addrVar string) *Process {
	p := &Process{Name: filepath.Base(bin), Addr: FreeAddr(tb), MetricsAddr: FreeAddr(tb)}
	p.Log = filepath.Join(tb.TempDir(), p.Name+".log")
	spec := supervise.Spec{Name: p.Name, Path: bin, Log: p.Log, StopTimeout: stopTimeout}
	spec.Env = append(os.Environ(), addrVar+"="+p.Addr, "METRICS_ADDR="+p.MetricsAddr,
		"DB_HEALTH_INTERVAL=200ms", "DRAIN_TIMEOUT=1s")
	for k, v := range authtest.Env() {
		spec.Env = append(spec.Env, k+"="+v)
	}
	p.proc = supervise.New(spec)
	return p
}

// run adds env to the process's environment (a variable set twice: the last value counts),
// starts it, and stops it when tb ends.
func (p *Process) run(tb testing.TB, env []string) {
	tb.Helper()
	p.proc.Env = append(p.proc.Env, env...)
	tb.Cleanup(func() {
		p.Stop(tb)
		if tb.Failed() {
			out, _ := os.ReadFile(p.Log)
			tb.Logf("%s log (last 4 KiB):\n%s", p.Name, out[max(0, len(out)-4096):])
		}
	})
	p.Start(tb)
}

// Start runs the process (again, after Stop) and waits until it reports SERVING, failing
// fast if it exits.
func (p *Process) Start(tb testing.TB) {
	tb.Helper()
	if err := p.proc.Start(); err != nil {
		tb.Fatal(err)
	}
	// Not tb.Context(): a Cleanup may restart a process, and by then that context is done.
	if err := p.proc.WaitReady(context.Background(), p.ready, startupTimeout); err != nil {
		tb.Fatal(err)
	}
}

// Pid returns the process's id while it runs: a test that expects a service to recover by
// itself checks that it is still the same process.
func (p *Process) Pid() int { return p.proc.Pid() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return p.proc.Exited() }

// Stop ends the process with SIGTERM, as an orchestrator would, and waits for its drain.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	if p.proc == nil { // a Process{Addr} standing for a peer a test serves itself
		return
	}
	if err := p.proc.Stop(); err != nil {
		tb.Error(err)
	}
}
