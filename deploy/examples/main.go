// Command examples runs the shell examples of the README and docs/, as printed, against a fresh `make run`
// (.tmp/bin/pgfleet-run on a cluster of its own), and fails if one does not do what the text
// around it says: a grpcurl that errs where no error is announced, a curl answered with an
// error body or an HTTP error status, output that differs from a printed `$ command` transcript.
//
// A line announces the failure it expects in its trailing comment, by the gRPC code grpcurl
// prints (`# Unauthenticated`, `# NotFound: not hers`) or an HTTP status (`# 401`); a code
// followed by "if" (`# AlreadyExists if she registered before`) may or may not come. Blocks
// whose commands need what a test machine lacks (make, docker, kubectl) are listed as skipped.
//
// `make examples` runs it in a network namespace of its own, so the fleet's fixed ports cannot
// clash with anything else on the machine.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	root := flag.String("root", ".", "repository root")
	timeout := flag.Duration("start-timeout", 5*time.Minute, "how long make run may take to print its examples")
	flag.Parse()
	docs := flag.Args()
	if len(docs) == 0 {
		pages, err := filepath.Glob(filepath.Join(*root, "docs", "*.md"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "examples:", err)
			os.Exit(1)
		}
		docs = []string{"README.md", "deploy/local/README.md"}
		for _, p := range pages {
			docs = append(docs, filepath.Join("docs", filepath.Base(p)))
		}
	}
	if err := run(*root, docs, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.Exit(1)
	}
}

func run(root string, docs []string, startTimeout time.Duration) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	var sources []source
	for _, d := range docs {
		text, err := os.ReadFile(filepath.Join(root, d))
		if err != nil {
			return err
		}
		sources = append(sources, source{name: d, blocks: parseMarkdown(string(text))})
	}

	tmp, err := os.MkdirTemp("", "pgfleet-examples-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The postgres OS user runs the cluster when we are root: it must reach the data dir.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	fleet, banner, err := startFleet(root, tmp, startTimeout)
	if err != nil {
		return err
	}
	defer fleet.stop()

	// The examples name make run's files as a reader's checkout has them (.tmp/run/fleet.json);
	// this run keeps them under tmp, so the examples run in a view of root whose .tmp/run is it.
	view, err := checkoutView(root, tmp)
	if err != nil {
		return err
	}
	env, printed := parseBanner(banner)
	sources = append(sources, source{name: "make run's printed examples", blocks: printed})

	failed := 0
	for _, src := range sources {
		for _, b := range src.blocks {
			var run block
			for _, st := range b.statements {
				if reason := st.skipReason(); reason != "" {
					fmt.Printf("SKIP %s line %d: %s\n", src.name, st.line, reason)
					continue
				}
				run.statements = append(run.statements, st)
			}
			if len(run.statements) == 0 {
				continue
			}
			results, err := runBlock(view, tmp, env, run)
			if err != nil {
				return fmt.Errorf("%s line %d: %w", src.name, b.line, err)
			}
			for i, st := range run.statements {
				if problem := st.check(results[i]); problem != "" {
					failed++
					fmt.Printf("FAIL %s line %d: %s\n  $ %s\n%s\n", src.name, st.line, problem, st.text, indent(results[i].out))
				} else {
					fmt.Printf("ok   %s line %d: %s\n", src.name, st.line, firstLine(st.text))
				}
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d example(s) did not work as printed", failed)
	}
	return nil
}

// checkoutView makes tmp/view: a directory of symbolic links to root's entries, except that its
// .tmp/run is tmp/run, where startFleet had pgfleet-run write.
func checkoutView(root, tmp string) (string, error) {
	view := filepath.Join(tmp, "view")
	link := func(from, to string) error {
		entries, err := os.ReadDir(from)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		for _, e := range entries {
			if from == root && e.Name() == ".tmp" || from != root && e.Name() == "run" {
				continue
			}
			if err := os.Symlink(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
				return err
			}
		}
		return nil
	}
	if err := link(root, view); err != nil {
		return "", err
	}
	if err := link(filepath.Join(root, ".tmp"), filepath.Join(view, ".tmp")); err != nil {
		return "", err
	}
	return view, os.Symlink(filepath.Join(tmp, "run"), filepath.Join(view, ".tmp", "run"))
}

type source struct {
	name   string
	blocks []block
}

// block is one fenced shell block; its statements share shell variables, as in a terminal.
type block struct {
	line       int
	statements []statement
}

// statement is one command as a reader would paste it (continuation lines joined).
type statement struct {
	line   int
	text   string
	expect string // the trailing comment, which may announce an error
	output string // the transcript printed under a `$ command`, if any
	hasOut bool
}

var fence = regexp.MustCompile("^```(\\w*)\\s*$")

// parseMarkdown returns the ```sh blocks of a Markdown text.
func parseMarkdown(text string) []block {
	var blocks []block
	var cur []string
	start, inSh, inOther := 0, false, false
	for i, line := range strings.Split(text, "\n") {
		m := fence.FindStringSubmatch(line)
		switch {
		case m != nil && !inSh && !inOther:
			if m[1] == "sh" || m[1] == "bash" || m[1] == "console" {
				inSh, start, cur = true, i+2, nil
			} else {
				inOther = true
			}
		case m != nil && inSh:
			inSh = false
			blocks = append(blocks, block{line: start - 1, statements: parseStatements(cur, start)})
		case m != nil && inOther:
			inOther = false
		case inSh:
			cur = append(cur, line)
		}
	}
	return blocks
}

// parseStatements joins continuation lines and splits off trailing comments. A block of
// `$ command` lines is a transcript: the lines under each command are its expected output.
func parseStatements(lines []string, firstLine int) []statement {
	transcript := false
	for _, l := range lines {
		if strings.HasPrefix(l, "$ ") {
			transcript = true
		}
	}
	var out []statement
	var pending strings.Builder
	pendingLine := 0
	for i, l := range lines {
		n := firstLine + i
		if transcript {
			if cmd, ok := strings.CutPrefix(l, "$ "); ok {
				text, comment := splitComment(cmd)
				out = append(out, statement{line: n, text: text, expect: comment, hasOut: true})
			} else if len(out) > 0 {
				out[len(out)-1].output += l + "\n"
			}
			continue
		}
		trimmed := strings.TrimSpace(l)
		if pending.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if pending.Len() == 0 {
			pendingLine = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(l, " "), "\\"); ok {
			pending.WriteString(body)
			continue
		}
		pending.WriteString(l)
		text, comment := splitComment(pending.String())
		out = append(out, statement{line: pendingLine, text: strings.TrimSpace(text), expect: comment})
		pending.Reset()
	}
	return out
}

// splitComment cuts a trailing `# comment` that is outside quotes.
func splitComment(s string) (cmd, comment string) {
	for i, r := range unquoted(s) {
		if r == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t') {
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		}
	}
	return strings.TrimSpace(s), ""
}

// unquoted yields the runes of s, with their byte offsets, that stand outside shell quotes.
func unquoted(s string) iter.Seq2[int, rune] {
	return func(yield func(int, rune) bool) {
		var quote rune
		for i, r := range s {
			switch {
			case quote != 0:
				if r == quote {
					quote = 0
				}
			case r == '\'' || r == '"':
				quote = r
			default:
				if !yield(i, r) {
					return
				}
			}
		}
	}
}

// runnable are the commands an example may start with (pgfleet-stock stands for every service
// binary's command line, pgfleet is the doctor); assignments are runnable too.
var runnable = map[string]bool{"grpcurl": true, "curl": true, "grpc_health_probe": true, "pgfleet-token": true, "pgfleet": true,
	"pgfleet-stock": true, "export": true}

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// skipReason says why a statement is not run, or "" to run it.
func (st statement) skipReason() string {
	word, _, _ := strings.Cut(st.text, " ")
	if !runnable[word] && !isPlainAssignment(st.text) {
		return fmt.Sprintf("needs %q, which this check does not run", word)
	}
	return ""
}

type result struct {
	rc  int
	out string
}

// runBlock runs a block's statements in one bash, each output captured apart.
func runBlock(root, tmp string, env []string, b block) ([]result, error) {
	dir, err := os.MkdirTemp(tmp, "block-")
	if err != nil {
		return nil, err
	}
	var script strings.Builder
	script.WriteString("cd " + strconv.Quote(root) + "\n")
	for i, st := range b.statements {
		outFile := filepath.Join(dir, strconv.Itoa(i))
		if isPlainAssignment(st.text) {
			// An assignment must run in this shell to be seen by later statements.
			fmt.Fprintf(&script, "%s 2>%s\necho $? >%s.rc\n", st.text, outFile, outFile)
			continue
		}
		fmt.Fprintf(&script, "( %s ) >%s 2>&1\necho $? >%s.rc\n", st.text, outFile, outFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("bash: %w: %s", err, out)
	}
	results := make([]result, len(b.statements))
	for i := range b.statements {
		outFile := filepath.Join(dir, strconv.Itoa(i))
		out, _ := os.ReadFile(outFile)
		rcText, err := os.ReadFile(outFile + ".rc")
		if err != nil {
			return nil, err
		}
		rc, _ := strconv.Atoi(strings.TrimSpace(string(rcText)))
		results[i] = result{rc: rc, out: string(out)}
	}
	return results, nil
}

// isPlainAssignment reports NAME=value or NAME=$(...) statements, exported or not, with no
// command after them.
func isPlainAssignment(s string) bool {
	s = strings.TrimPrefix(s, "export ")
	loc := assignment.FindStringIndex(s)
	if loc == nil {
		return false
	}
	depth := 0
	for _, r := range unquoted(s[loc[1]:]) {
		switch {
		case r == '(':
			depth++
		case r == ')':
			depth--
		case r == ' ' && depth == 0:
			return false
		}
	}
	return true
}

// grpcCodes are the names grpcurl prints after "Code: ".
var grpcCodes = []string{"Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
	"OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

var httpStatusLine = regexp.MustCompile(`(?m)^HTTP/[0-9.]+ ([0-9]{3})`)
var announcedHTTP = regexp.MustCompile(`\b([45][0-9]{2})\b`)

// errorBody is the gateway's JSON error (google.rpc.Status), its gRPC code captured.
var errorBody = regexp.MustCompile(`^\s*\{"code":\s*([1-9][0-9]*)`)

// httpOfCode is the HTTP status the gateway answers each gRPC code with.
var httpOfCode = map[int]string{1: "499", 2: "500", 3: "400", 4: "504", 5: "404", 6: "409", 7: "403",
	8: "429", 9: "400", 10: "409", 11: "400", 12: "501", 13: "500", 14: "503", 15: "500", 16: "401"}

// check says what is wrong with a statement's result, or "".
func (st statement) check(r result) string {
	if st.hasOut {
		if norm(r.out) != norm(st.output) {
			return "output differs from the printed transcript:\n" + indent(st.output)
		}
		return ""
	}
	word, _, _ := strings.Cut(st.text, " ")
	wantCode, optional := "", false
	for _, c := range grpcCodes {
		if strings.Contains(st.expect, c) {
			wantCode, optional = c, strings.Contains(st.expect, c+" if ")
		}
	}
	wantHTTP := ""
	if m := announcedHTTP.FindStringSubmatch(st.expect); m != nil {
		wantHTTP = m[1]
	}
	switch {
	case word == "curl":
		return checkCurl(r, wantHTTP)
	case optional && r.rc == 0:
		return ""
	case wantCode != "":
		if r.rc == 0 || !strings.Contains(r.out, "Code: "+wantCode) {
			return fmt.Sprintf("the comment announces %s; got exit status %d", wantCode, r.rc)
		}
	case r.rc != 0:
		return fmt.Sprintf("exit status %d", r.rc)
	case strings.Contains(r.out, "ERROR:"):
		return "grpcurl printed an error"
	}
	return ""
}

// checkCurl: an HTTP status line (curl -i) must be below 400 unless announced; a JSON error
// body ({"code": n != 0, "message": ...}) counts as an error too.
func checkCurl(r result, wantHTTP string) string {
	if r.rc != 0 && r.rc != 23 { // 23: a pipe's reader (head) stopped reading, as intended
		return fmt.Sprintf("curl exit status %d", r.rc)
	}
	got := ""
	if m := httpStatusLine.FindAllStringSubmatch(r.out, -1); m != nil {
		got = m[len(m)-1][1]
	} else if m := errorBody.FindStringSubmatch(r.out); m != nil {
		// No status line (curl without -i): the body's gRPC code says which status it had.
		got = "error body"
		if code, _ := strconv.Atoi(m[1]); httpOfCode[code] != "" {
			got = httpOfCode[code]
		}
	}
	switch {
	case wantHTTP != "" && got != wantHTTP:
		return fmt.Sprintf("the comment announces HTTP %s; got %q", wantHTTP, got)
	case wantHTTP == "" && (got == "error body" || got >= "400"):
		return "answered HTTP " + got
	}
	return ""
}

func norm(s string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		lines = append(lines, strings.TrimRight(l, " \t"))
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > 2000 {
		s = s[:2000] + "..."
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func firstLine(s string) string {
	if len(s) > 110 {
		return s[:110] + "..."
	}
	return s
}

// fleet is a running pgfleet-run (tools/run), as make run starts it.
type fleet struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startFleet starts pgfleet-run with its data and run directories under tmp and returns once it
// has printed its examples (the line "Try it"), with everything it printed.
func startFleet(root, tmp string, timeout time.Duration) (*fleet, string, error) {
	cmd := exec.Command(filepath.Join(root, ".tmp/bin/pgfleet-run"), "-root", root)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "PGFLEET_DATA_DIR="+filepath.Join(tmp, "data"), "PGFLEET_RUN_DIR="+filepath.Join(tmp, "run"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	f := &fleet{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); pw.Close(); close(f.done) }()

	var printed bytes.Buffer
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		seen, closed := false, false
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Try it") {
				seen = true
			}
			// The examples end with a blank line; pgfleet-run then waits.
			if seen && sc.Text() == "" && !closed {
				closed = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
		return f, printed.String(), nil
	case <-f.done:
		return nil, "", fmt.Errorf("make run's pgfleet-run exited before printing its examples:\n%s", printed.String())
	case <-time.After(timeout):
		f.stop()
		return nil, "", fmt.Errorf("make run's pgfleet-run printed no examples within %v:\n%s", timeout, printed.String())
	}
}

// stop sends pgfleet-run SIGINT, as Ctrl-C would, and waits for it to stop the fleet.
func (f *fleet) stop() {
	_ = f.cmd.Process.Signal(os.Interrupt)
	select {
	case <-f.done:
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.done
	}
}

var exportLine = regexp.MustCompile(`^\s+export ([A-Z_]+)=(.*?)(\s+#.*)?$`)

// parseBanner returns the environment the printed export lines set up, and the printed
// example commands (the indented lines after "Try it") as one block.
func parseBanner(banner string) ([]string, []block) {
	env := os.Environ()
	var lines []string
	started := false
	for _, l := range strings.Split(banner, "\n") {
		if strings.HasPrefix(l, "Try it") {
			started = true
			continue
		}
		if !started || !strings.HasPrefix(l, "  ") {
			continue
		}
		if m := exportLine.FindStringSubmatch(l); m != nil {
			v := m[2]
			if m[1] == "PATH" {
				v = os.ExpandEnv(strings.Trim(v, `"`))
			}
			env = append(env, m[1]+"="+v)
			continue
		}
		lines = append(lines, l)
	}
	return env, []block{{line: 0, statements: parseStatements(lines, 1)}}
}
