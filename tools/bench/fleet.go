package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// proc is one process of the fleet (or the bare servers), its output in a log file,
// supervised by pkg/supervise: in its own process group (the terminal's Ctrl-C reaches only
// the bench, which stops p in order), killed if the bench dies first.
type proc struct {
	name, path string
	args, env  []string
	logPath    string

	grpcAddr    string // "" if it serves no gRPC
	httpAddr    string // REST (gateway, bare HTTP)
	metricsAddr string // /metrics, and /debug/pprof if the binary serves it

	p *supervise.Process
}

func (p *proc) start() error {
	if p.p == nil {
		p.p = supervise.New(supervise.Spec{Name: p.name, Path: p.path, Args: p.args, Env: p.env, Log: p.logPath})
	}
	return p.p.Start()
}

func (p *proc) pid() int { return p.p.Pid() }

// stop sends SIGTERM and waits for the drain, killing p after 30 s.
func (p *proc) stop() {
	if p.p != nil {
		_ = p.p.Stop() //nolint:errcheck // on the way out; the log says why
	}
}

// waitServing waits until p's gRPC health service answers SERVING for the whole server.
func (p *proc) waitServing(ctx context.Context, timeout time.Duration) error {
	return p.p.WaitReady(ctx, supervise.GRPCServing(p.grpcAddr), timeout)
}

// waitHTTP waits until GET url answers below 500.
func (p *proc) waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	return p.p.WaitReady(ctx, supervise.HTTPAnswers(url), timeout)
}

// httpGet returns the body of GET url; a status other than 200 is an error.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return body, nil
}

// metricSum adds the samples of metric name in a Prometheus text exposition whose labels
// contain every name="value" pair of match.
func metricSum(text, name string, match ...string) float64 {
	var sum float64
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		labels := ""
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric whose name starts with name
		}
		ok := true
		for _, m := range match {
			if !strings.Contains(labels, m) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			sum += v
		}
	}
	return sum
}

// mem is a process's resident memory from /proc/PID/status.
type mem struct {
	rss, hwm int64 // bytes: VmRSS now, VmHWM (peak) since start or the last resetPeak
}

func readMem(pid int) (mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return mem{}, err
	}
	var m mem
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS":
			m.rss = kib(v)
		case "VmHWM":
			m.hwm = kib(v)
		}
	}
	return m, nil
}

// kib parses "  1234 kB" into bytes.
func kib(v string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	return n << 10
}

// resetPeak makes VmHWM start again from the current RSS (Linux: clear_refs 5), so a
// scenario's peak is its own and not that of earlier scenarios.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// children returns the processes whose parent is pid, as /proc lists them now.
func children(pid int) []int {
	var kids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err == nil && child != pid && ppid(child) == pid {
			kids = append(kids, child)
		}
	}
	return kids
}

// pgMem sums the memory of the postmaster and its children. PSS divides each shared page
// (shared_buffers) among the processes that map it, so the sum counts it once; the RSS sum
// counts it in every backend that touched it.
func pgMem(postmaster int) (procs int, pss, rss int64) {
	for _, pid := range append([]int{postmaster}, children(postmaster)...) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue // exited meanwhile
		}
		procs++
		for line := range strings.SplitSeq(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			switch k {
			case "Pss":
				pss += kib(v)
			case "Rss":
				rss += kib(v)
			}
		}
	}
	return procs, pss, rss
}

// statFields returns the fields of /proc/PID/stat after "pid (comm)": comm may hold spaces and
// parentheses, so they count from the last ')'; [0] is the state, [1] the parent pid.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// ppid reads the parent pid of pid, 0 if it cannot.
func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// cpuTime is the user plus system CPU time pid has used (utime and stime, in clock ticks of
// 1/100 s: Linux's USER_HZ on every architecture Go runs on), 0 if it cannot tell.
func cpuTime(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// saveProfile fetches a CPU profile of seconds from a /debug/pprof endpoint into path.
// errNoPprof means the process does not serve one.
func saveProfile(ctx context.Context, addr string, seconds int, path string) error {
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, seconds)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(seconds+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNoPprof
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

var errNoPprof = errors.New("no /debug/pprof/ endpoint")

// pprofTop summarizes a profile with `go tool pprof -top`, if the go command is there.
func pprofTop(ctx context.Context, profile string, n int) string {
	cmd := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(n), profile)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return string(out)
}
