package apptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
)

// CLI is a service binary whose command line TestCLI checks.
type CLI struct {
	Package string // the main package's import path, e.g. github.com/pgfleet/pgfleet/services/stock
	Config  any    // the binary's config struct (zero), whose settings --help must list
	// Env are the settings the binary needs beyond DATABASE_URL and auth (e.g. STOCK_ADDR).
	Env map[string]string
	// Database: the binary has DATABASE_URL and `migrate`.
	Database bool
	// Bad is a setting and an invalid value for it, which `config` must refuse.
	Bad [2]string
}

// Result is one run of a binary: its exit code and output.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// RunBinary runs bin with args and env (KEY=VALUE, added to the test process's environment)
// and returns its exit code and output; it fails tb if bin cannot run.
func RunBinary(tb testing.TB, bin string, env []string, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startupTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatalf("run %s %v: %v", bin, args, err)
	}
	return Result{Code: cmd.ProcessState.ExitCode(), Stdout: stdout.String(), Stderr: stderr.String()}
}

// TestCLI builds c's binary and holds it to the fleet's command-line contract: --help lists
// every setting of its config with its default and meaning, --version names the build,
// `config` prints the settings as JSON with secrets hidden and exits 2 on a bad value,
// unknown commands and flags exit 2, `healthcheck` exits 0 against the running binary and 1
// once it stopped, and `migrate status` exits 3 on a fresh database, 0 after `migrate up`.
func TestCLI(t *testing.T, c CLI) {
	t.Helper()
	dir := t.TempDir()
	if err := Build(dir, c.Package); err != nil {
		t.Fatal(err)
	}
	name := path.Base(c.Package)
	bin := filepath.Join(dir, name)
	settings, err := app.Settings(c.Config)
	if err != nil {
		t.Errorf("config of %s: %v", name, err)
	}
	env := func(extra ...string) []string {
		var e []string
		for k, v := range authtest.Env() {
			e = append(e, k+"="+v)
		}
		for k, v := range c.Env {
			e = append(e, k+"="+v)
		}
		return append(e, extra...)
	}

	t.Run("help", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
			r := RunBinary(t, bin, nil, args...)
			if r.Code != 0 || !strings.HasPrefix(r.Stdout, "pgfleet-"+name+": ") {
				t.Fatalf("%s %v = exit %d, stdout %q, want 0 and what the binary is", name, args, r.Code, r.Stdout)
			}
		}
		out := RunBinary(t, bin, nil, "--help").Stdout
		for _, s := range settings {
			want := "\n  " + s.Name + "\n"
			switch {
			case s.Required:
				want = "\n  " + s.Name + " (required)\n"
			case s.Default != "":
				want = "\n  " + s.Name + " (default " + s.Default + ")\n"
			}
			if !strings.Contains(out, want+"\t"+s.Help+"\n") {
				t.Errorf("--help lacks %q followed by its meaning %q", strings.TrimSpace(want), s.Help)
			}
		}
	})

	t.Run("version", func(t *testing.T) {
		t.Parallel()
		r := RunBinary(t, bin, nil, "--version")
		want := "pgfleet-" + name + " devel (unknown) " + runtime.Version() + "\n" // go build, no stamp
		if r.Code != 0 || r.Stdout != want {
			t.Errorf("--version = exit %d, %q, want 0, %q", r.Code, r.Stdout, want)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{{"serve-please"}, {"--verbose"}, {"config", "--bogus"}, {"healthcheck", "extra"},
			{"migrate"}, {"migrate", "sideways"}} {
			r := RunBinary(t, bin, env(), args...)
			if !c.Database && args[0] == "migrate" && r.Code == 2 && strings.Contains(r.Stderr, "unknown command") {
				continue // no database, no migrate
			}
			if r.Code != 2 || !strings.Contains(r.Stderr, "Usage") && !strings.Contains(r.Stderr, "flag provided but not defined") {
				t.Errorf("%s %v = exit %d, stderr %q, want 2 and the usage", name, args, r.Code, r.Stderr)
			}
		}
	})

	t.Run("config", func(t *testing.T) {
		t.Parallel()
		const password = "pw-not-to-print"
		extra := []string{"PAGE_TOKEN_KEY=key-not-to-print"}
		if c.Database {
			extra = append(extra, "DATABASE_URL=postgres://svc:"+password+"@db.example:5432/pgfleet?sslmode=disable")
		}
		r := RunBinary(t, bin, env(extra...), "config")
		if r.Code != 0 {
			t.Fatalf("config = exit %d, stderr %q, want 0", r.Code, r.Stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &got); err != nil {
			t.Fatalf("config printed %q: %v", r.Stdout, err)
		}
		for _, leak := range []string{password, "key-not-to-print", authtest.Config.Secret} {
			if strings.Contains(r.Stdout, leak) {
				t.Errorf("config prints the secret %q:\n%s", leak, r.Stdout)
			}
		}
		if got["JWT_SECRET"] != "(secret)" {
			t.Errorf("config JWT_SECRET = %v, want (secret)", got["JWT_SECRET"])
		}
		if want := "postgres://svc:xxxxx@db.example:5432/pgfleet?sslmode=disable"; c.Database && got["DATABASE_URL"] != want {
			t.Errorf("config DATABASE_URL = %v, want %s", got["DATABASE_URL"], want)
		}
		var names []string
		for _, s := range settings {
			names = append(names, s.Name)
		}
		for k := range got {
			if !slices.Contains(names, k) {
				t.Errorf("config prints %s, which is not a setting", k)
			}
		}
		if len(got) != len(names) {
			t.Errorf("config prints %d settings, want %d", len(got), len(names))
		}

		// What serving refuses, config refuses: no way to check tokens.
		if r := RunBinary(t, bin, env(append(extra, "JWT_SECRET=")...), "config"); r.Code != 2 || !strings.Contains(r.Stderr, "JWT_SECRET") {
			t.Errorf("config without JWT_SECRET = exit %d, stderr %q, want 2 and a message naming it", r.Code, r.Stderr)
		}
		bad := RunBinary(t, bin, env(append(extra, c.Bad[0]+"="+c.Bad[1])...), "config")
		if bad.Code != 2 || !strings.Contains(bad.Stderr, c.Bad[0]) || bad.Stdout != "" {
			t.Errorf("config with %s=%s = exit %d, stdout %q, stderr %q, want 2 and a message naming it",
				c.Bad[0], c.Bad[1], bad.Code, bad.Stdout, bad.Stderr)
		}
	})

	t.Run("healthcheck", func(t *testing.T) {
		t.Parallel()
		e := env("GRPC_ADDR="+FreeAddr(t), "METRICS_ADDR="+FreeAddr(t), "HTTP_ADDR="+FreeAddr(t),
			"DB_HEALTH_INTERVAL=200ms", "DRAIN_TIMEOUT=1s")
		if c.Database {
			e = append(e, "DATABASE_URL="+pgtest.NewDBURL(t))
		}
		healthcheckServing(t, bin, e, nil)
	})

	if c.Database {
		t.Run("healthcheck over TLS", func(t *testing.T) {
			t.Parallel()
			cert, key := tlsfilestest.Write(t, t.TempDir())
			e := env("GRPC_ADDR="+FreeAddr(t), "METRICS_ADDR="+FreeAddr(t), "DRAIN_TIMEOUT=1s",
				"TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key, "DATABASE_URL="+pgtest.NewDBURL(t))
			healthcheckServing(t, bin, e, func() {
				// The check pins the server's own certificate: another one is refused.
				otherCert, otherKey := tlsfilestest.Write(t, t.TempDir())
				if r := RunBinary(t, bin, append(e, "TLS_CERT_FILE="+otherCert, "TLS_KEY_FILE="+otherKey), "healthcheck"); r.Code != 1 ||
					!strings.Contains(r.Stderr, "not TLS_CERT_FILE's") {
					t.Errorf("healthcheck against a server with another certificate = exit %d, stderr %q, want 1", r.Code, r.Stderr)
				}
			})
		})

		t.Run("healthcheck on HEALTH_ADDR", func(t *testing.T) {
			t.Parallel()
			cert, key := tlsfilestest.Write(t, t.TempDir())
			healthAddr := FreeAddr(t)
			e := env("GRPC_ADDR="+FreeAddr(t), "METRICS_ADDR="+FreeAddr(t), "DRAIN_TIMEOUT=1s", "HEALTH_ADDR="+healthAddr,
				"TLS_CERT_FILE="+cert, "TLS_KEY_FILE="+key, "DATABASE_URL="+pgtest.NewDBURL(t))
			healthcheckServing(t, bin, e, func() {
				// HEALTH_ADDR is plaintext; --addr names any listener.
				if r := RunBinary(t, bin, e, "healthcheck", "--addr", healthAddr, "--service", "liveness"); r.Code != 0 {
					t.Errorf("healthcheck --addr %s --service liveness = exit %d, stderr %q, want 0", healthAddr, r.Code, r.Stderr)
				}
				if r := RunBinary(t, bin, e, "healthcheck", "--service", "no.such.Service"); r.Code != 1 {
					t.Errorf("healthcheck --service no.such.Service = exit %d, stderr %q, want 1", r.Code, r.Stderr)
				}
			})
		})

		t.Run("migrate", func(t *testing.T) {
			t.Parallel()
			e := env("DATABASE_URL=" + pgtest.NewDBURL(t)) // empty: nothing applied
			r := RunBinary(t, bin, e, "migrate", "status")
			if r.Code != 3 || !strings.Contains(r.Stdout, "applied  0\n") || strings.Contains(r.Stdout, "pending  none") {
				t.Errorf("migrate status on a fresh database = exit %d, %q (stderr %q), want 3, applied 0, pending versions",
					r.Code, r.Stdout, r.Stderr)
			}
			if r := RunBinary(t, bin, e, "migrate", "up"); r.Code != 0 || !strings.Contains(r.Stdout, "pending  none\nunknown  none\n") {
				t.Errorf("migrate up = exit %d, %q (stderr %q), want 0, nothing pending", r.Code, r.Stdout, r.Stderr)
			}
			r = RunBinary(t, bin, e, "migrate", "status", "--json")
			var v struct {
				Schema           string
				Applied, Latest  int64
				Pending, Unknown []int64
				Current          bool
			}
			if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
				t.Fatalf("migrate status --json printed %q: %v", r.Stdout, err)
			}
			if r.Code != 0 || !v.Current || v.Applied == 0 || v.Applied != v.Latest || len(v.Pending) != 0 || v.Schema != name {
				t.Errorf("migrate status --json after up = exit %d, %+v, want 0, current, schema %s", r.Code, v, name)
			}
			down := env("DATABASE_URL=postgres://nobody:x@127.0.0.1:1/none?connect_timeout=5")
			if r := RunBinary(t, bin, down, "migrate", "status"); r.Code != 1 || r.Stderr == "" {
				t.Errorf("migrate status without a database = exit %d, stderr %q, want 1 and why", r.Code, r.Stderr)
			}
		})
	}
}

// healthcheckServing starts bin with env, polls `healthcheck` until it says SERVING, runs
// serving (if not nil), stops bin with SIGTERM and expects `healthcheck` to fail.
func healthcheckServing(t *testing.T, bin string, env []string, serving func()) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), env...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed when bin has exited, whatever its code
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(bin), log.String())
		}
	})
	deadline := time.Now().Add(startupTimeout)
	var last Result
	for {
		last = RunBinary(t, bin, env, "healthcheck")
		if last.Code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthcheck never passed: exit %d, stderr %q", last.Code, last.Stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last.Stdout != "SERVING\n" {
		t.Errorf("healthcheck = %q, want SERVING", last.Stdout)
	}
	if serving != nil {
		serving()
	}
	stop()
	if r := RunBinary(t, bin, env, "healthcheck", "--timeout", "5s"); r.Code != 1 || r.Stderr == "" {
		t.Errorf("healthcheck of a stopped server = exit %d, stderr %q, want 1 and why", r.Code, r.Stderr)
	}
}
