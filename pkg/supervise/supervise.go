// Package supervise runs child processes the way the dev runner (tools/run), the bench and the
// tests that start binaries need them: each in a process group of its own, so a terminal's
// Ctrl-C reaches only the parent, which then stops them in order; taken down by the kernel when
// the parent dies, even by SIGKILL (Linux: a parent-death signal); ready once a probe passes;
// stopped with a signal and, after a bound, killed with its whole group.
package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec says how to run one process.
type Spec struct {
	Name string   // for messages
	Path string   // the binary
	Args []string // its arguments, without the program name
	Env  []string // its whole environment (KEY=VALUE); nil: the parent's
	Dir  string   // its working directory; "": the parent's

	// Log is the file that gets the process's stdout and stderr, appended to; "" discards them.
	Log string
	// Cred runs the process as another OS user (PostgreSQL refuses to run as root); nil: ours.
	Cred *syscall.Credential
	// StopSignal asks the process to stop; default SIGTERM (PostgreSQL: SIGINT, fast shutdown).
	StopSignal syscall.Signal
	// DeathSignal is what the kernel sends the process when the parent dies (Linux only);
	// default SIGKILL (PostgreSQL: SIGINT, so that it shuts down cleanly).
	DeathSignal syscall.Signal
	// StopTimeout bounds the wait after StopSignal, before SIGKILL to the group; default 30 s.
	StopTimeout time.Duration
}

// Process is one run of a Spec. Start it again after Stop to restart it with the same spec.
type Process struct {
	Spec

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, once done
}

// New returns a Process for spec, not yet started.
func New(spec Spec) *Process { return &Process{Spec: spec} }

// Start runs the process; it fails if the process is running already.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil && !isClosed(p.done) {
		return fmt.Errorf("start %s: already running (pid %d)", p.Name, p.cmd.Process.Pid)
	}
	out := io.Discard
	var logf *os.File
	if p.Log != "" {
		var err error
		if logf, err = os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return fmt.Errorf("start %s: %w", p.Name, err)
		}
		out = logf
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Env, cmd.Dir = p.Env, p.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr(p.Cred, cmp.Or(p.DeathSignal, syscall.SIGKILL))

	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// The kernel sends the parent-death signal when the thread that started the child
		// exits, not the process: this goroutine keeps its thread until the child is gone.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		if logf != nil {
			logf.Close()
		}
		close(done)
	}()
	if err := <-started; err != nil {
		if logf != nil {
			logf.Close()
		}
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.cmd, p.done = cmd, done
	return nil
}

// Pid returns the process id (also its process group's id); 0 before Start.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Done is closed when the process has exited; nil before Start.
func (p *Process) Done() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.done
}

// Exited reports whether the process has been started and has exited since.
func (p *Process) Exited() bool { return isClosed(p.Done()) }

// Err returns the exit status once the process has exited.
func (p *Process) Err() error {
	<-p.Done()
	return p.err
}

// Stop sends StopSignal and waits for the process to exit; after StopTimeout it kills the
// whole process group and returns an error saying so. A process not running is no error.
func (p *Process) Stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return nil
	}
	_ = cmd.Process.Signal(cmp.Or(p.StopSignal, syscall.SIGTERM)) // it may have exited meanwhile
	timeout := cmp.Or(p.StopTimeout, 30*time.Second)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	return fmt.Errorf("%s did not stop within %v of %v; killed its process group", p.Name, timeout, cmp.Or(p.StopSignal, syscall.SIGTERM))
}

// Alive reports whether process pid runs; a zombie (exited, waiting for its parent or init
// to reap it) counts as gone. For processes this one did not start, or lost: a cluster a killed
// run left, the children of a killed parent.
func Alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil { // no /proc (macOS), or no such process
		return syscall.Kill(pid, 0) == nil
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses.
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// Probe reports nil once a process is ready.
type Probe func(ctx context.Context) error

// WaitReady polls ready until it passes, the process exits (an error with the tail of its
// log), timeout passes or ctx ends.
func (p *Process) WaitReady(ctx context.Context, ready Probe, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := ready(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if p.Exited() {
			return p.Failure()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s not ready: %w (last: %w)", p.Name, ctx.Err(), err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last: %w)%s", p.Name, timeout, err, p.logNote())
		}
		select {
		case <-p.Done():
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Failure describes an exited process, with the last lines of its log.
func (p *Process) Failure() error {
	return fmt.Errorf("%s exited (%v)%s", p.Name, p.Err(), p.logNote())
}

func (p *Process) logNote() string {
	if p.Log == "" {
		return ""
	}
	return fmt.Sprintf("; last lines of %s:\n%s", p.Log, Tail(p.Log, 40))
}

// Tail returns the last n lines of a file, or what went wrong reading it.
func Tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Group is processes started in dependency order, each once the one before it is ready,
// and stopped in reverse order.
type Group struct {
	mu    sync.Mutex
	procs []*Process
}

// Start starts p, adds it to the group and waits until ready passes (nil: no wait). A process
// that fails to start or to get ready stays in the group, so Stop still ends it.
func (g *Group) Start(ctx context.Context, p *Process, ready Probe, timeout time.Duration) error {
	if err := p.Start(); err != nil {
		return err
	}
	g.Add(p)
	if ready == nil {
		return nil
	}
	return p.WaitReady(ctx, ready, timeout)
}

// Add adds a process the caller started to the group.
func (g *Group) Add(p *Process) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.procs = append(g.procs, p)
}

// Processes returns the group's processes in start order.
func (g *Group) Processes() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}

// Stop stops the processes in reverse start order, each drained (or killed) before the next,
// so a process's in-flight calls still reach those it calls. before, if set, is called with
// each process still running, before it is stopped.
func (g *Group) Stop(before func(*Process)) error {
	procs := g.Processes()
	var errs []error
	for _, p := range slices.Backward(procs) {
		if before != nil && p.Pid() != 0 && !p.Exited() {
			before(p)
		}
		errs = append(errs, p.Stop())
	}
	return errors.Join(errs...)
}

// Exited returns a channel that gets the first process of the group to exit; the group's
// processes must all have been started.
func (g *Group) Exited() <-chan *Process {
	ch := make(chan *Process, 1)
	procs := g.Processes()
	var once sync.Once
	for _, p := range procs {
		go func() {
			<-p.Done()
			once.Do(func() { ch <- p })
		}()
	}
	return ch
}

func isClosed(ch <-chan struct{}) bool {
	if ch == nil {
		return false
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
