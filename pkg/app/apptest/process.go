package apptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
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
	Name string // the binary's base name, for messages
	Addr string // its gRPC address

	bin  string
	env  []string
	log  *os.File
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// StartProcess runs bin with env (KEY=VALUE, DATABASE_URL among them) on free ports, with the
// test auth config and short health and drain intervals, waits until it is SERVING, and
// stops it when tb ends. Its output goes to a file, shown when tb fails.
func StartProcess(tb testing.TB, bin string, env ...string) *Process {
	tb.Helper()
	p := &Process{Name: filepath.Base(bin), Addr: FreeAddr(tb), bin: bin}
	p.env = append(os.Environ(), "GRPC_ADDR="+p.Addr, "METRICS_ADDR="+FreeAddr(tb),
		"DB_HEALTH_INTERVAL=200ms", "DRAIN_TIMEOUT=1s")
	for k, v := range authtest.Env() {
		p.env = append(p.env, k+"="+v)
	}
	p.env = append(p.env, env...)
	var err error
	if p.log, err = os.Create(filepath.Join(tb.TempDir(), p.Name+".log")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.Stop(tb)
		if tb.Failed() {
			out, _ := os.ReadFile(p.log.Name())
			tb.Logf("%s log (last 4 KiB):\n%s", p.Name, out[max(0, len(out)-4096):])
		}
		p.log.Close()
	})
	p.Start(tb)
	return p
}

// Start runs the process (again, after Stop) and waits until it reports SERVING, failing
// fast if it exits.
func (p *Process) Start(tb testing.TB) {
	tb.Helper()
	p.cmd = exec.Command(p.bin)
	p.cmd.Env = p.env
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", p.Name, err)
	}
	done := make(chan struct{})
	p.done = done
	go func() { _ = p.cmd.Wait(); close(done) }()

	conn := Dial(tb, p.Addr)
	hc := healthpb.NewHealthClient(conn)
	for deadline := time.Now().Add(startupTimeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			tb.Fatalf("%s exited during startup", p.Name)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return
		}
	}
	tb.Fatalf("%s not SERVING within %v", p.Name, startupTimeout)
}

// Stop ends the process with SIGTERM, as an orchestrator would, and waits for its drain.
func (p *Process) Stop(tb testing.TB) {
	tb.Helper()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		tb.Errorf("%s did not stop within %v of SIGTERM; killed", p.Name, stopTimeout)
	}
	p.cmd = nil
}
