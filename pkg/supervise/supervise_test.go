package supervise_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// The test binary doubles as the processes under test: SUPERVISE_ROLE picks what it does.
//   - child: writes "ready" to its log, and on SIGTERM appends its name to $SUPERVISE_STOPS
//     and exits 0;
//   - parent: starts children a and b in a Group (b after a), writes their pids to
//     $SUPERVISE_PIDS, and on SIGINT or SIGTERM stops the group and exits 0.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISE_ROLE") {
	case "child":
		child()
	case "parent":
		parent()
	default:
		os.Exit(m.Run())
	}
}

func child() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Println("ready")
	<-sig
	f, err := os.OpenFile(os.Getenv("SUPERVISE_STOPS"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, os.Getenv("SUPERVISE_NAME"))
		f.Close()
	}
	os.Exit(0)
}

func parent() {
	if err := runParent(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func runParent() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	dir := os.Getenv("SUPERVISE_DIR")
	var g supervise.Group
	var pids []string
	for _, name := range []string{"a", "b"} {
		p := childProcess(dir, name)
		if err := g.Start(ctx, p, logSays(p.Log, "ready"), time.Minute); err != nil {
			return err
		}
		pids = append(pids, strconv.Itoa(p.Pid()))
	}
	if err := os.WriteFile(filepath.Join(dir, "pids"), []byte(strings.Join(pids, " ")), 0o644); err != nil {
		return err
	}
	<-ctx.Done()
	return g.Stop(nil)
}

func childProcess(dir, name string) *supervise.Process {
	self, _ := os.Executable()
	return supervise.New(supervise.Spec{
		Name: name, Path: self, Log: filepath.Join(dir, name+".log"),
		Env: append(os.Environ(), "SUPERVISE_ROLE=child", "SUPERVISE_NAME="+name,
			"SUPERVISE_STOPS="+filepath.Join(dir, "stops")),
	})
}

// logSays passes once the file at path contains s.
func logSays(path, s string) supervise.Probe {
	return func(context.Context) error {
		b, _ := os.ReadFile(path)
		if !strings.Contains(string(b), s) {
			return errors.New("not yet")
		}
		return nil
	}
}

// startParent runs the parent role and returns it with its children's pids.
func startParent(t *testing.T) (*supervise.Process, string, []int) {
	t.Helper()
	dir := t.TempDir()
	self, _ := os.Executable()
	p := supervise.New(supervise.Spec{Name: "parent", Path: self, Log: filepath.Join(dir, "parent.log"),
		Env: append(os.Environ(), "SUPERVISE_ROLE=parent", "SUPERVISE_DIR="+dir)})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	if err := p.WaitReady(t.Context(), logSays(filepath.Join(dir, "pids"), " "), time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "pids"))
	var pids []int
	for f := range strings.FieldsSeq(string(raw)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return p, dir, pids
}

// waitGone waits (bounded generously: a loaded machine is slow, not wrong) until no pid runs.
func waitGone(t *testing.T, pids []int) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		running := false
		for _, pid := range pids {
			running = running || supervise.Alive(pid)
		}
		if !running {
			return
		}
	}
	t.Fatalf("children %v still run a minute after their parent was killed", pids)
}

func TestGroup_parentKilledTakesChildrenDown(t *testing.T) {
	t.Parallel()
	parent, _, pids := startParent(t)
	if err := syscall.Kill(parent.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pids)
}

func TestGroup_stopsInReverseOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  syscall.Signal
	}{
		{"sigint", syscall.SIGINT},
		{"sigterm", syscall.SIGTERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			parent, dir, pids := startParent(t)
			if err := syscall.Kill(parent.Pid(), tt.sig); err != nil {
				t.Fatal(err)
			}
			if err := parent.Err(); err != nil {
				t.Fatalf("parent: %v\n%s", err, supervise.Tail(parent.Log, 20))
			}
			waitGone(t, pids)
			raw, _ := os.ReadFile(filepath.Join(dir, "stops"))
			if diff := cmp.Diff([]string{"b", "a"}, strings.Fields(string(raw))); diff != "" {
				t.Errorf("stop order (-want +got):\n%s", diff)
			}
		})
	}
}

func TestProcess_stopKillsGroupAfterTimeout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// sh ignores SIGTERM and waits for a child of its own, in its process group.
	p := supervise.New(supervise.Spec{Name: "stubborn", Path: "/bin/sh",
		Args:        []string{"-c", `trap '' TERM; sleep 600 & echo $! > ` + filepath.Join(dir, "sleep") + `; wait`},
		StopTimeout: 200 * time.Millisecond})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(t.Context(), logSays(filepath.Join(dir, "sleep"), "\n"), time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "sleep"))
	sleepPid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err := p.Stop(); err == nil {
		t.Error("Stop of a process that ignores SIGTERM: nil error, want one saying it was killed")
	}
	waitGone(t, []int{sleepPid})
}

func TestProcess_waitReadyFailsWhenItExits(t *testing.T) {
	t.Parallel()
	log := filepath.Join(t.TempDir(), "false.log")
	p := supervise.New(supervise.Spec{Name: "quitter", Path: "/bin/sh", Args: []string{"-c", "echo bad config; exit 3"}, Log: log})
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	err := p.WaitReady(t.Context(), func(context.Context) error { return errors.New("never") }, time.Hour)
	if err == nil || !strings.Contains(err.Error(), "bad config") || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("WaitReady = %v, want the exit status and the log's tail", err)
	}
}

func TestProcess_restart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := childProcess(dir, "c")
	for i := range 2 {
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		readies := func(context.Context) error {
			if b, _ := os.ReadFile(p.Log); strings.Count(string(b), "ready") <= i {
				return errors.New("not yet")
			}
			return nil
		}
		if err := p.WaitReady(t.Context(), readies, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "stops"))
	if diff := cmp.Diff([]string{"c", "c"}, strings.Fields(string(raw))); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
}
