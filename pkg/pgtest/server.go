package pgtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// settings trade durability for speed (the data is thrown away) and give tests room: many
// connections for parallel tests, a short deadlock_timeout so deadlock tests end quickly.
const settings = `
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 400
deadlock_timeout = 100ms
shared_buffers = 128MB
`

// server is a postgres process that pgtest started, with its files in dir.
type server struct {
	dir    string              // owned by the server's OS user: data/, postgres.log, the unix socket
	bin    string              // directory holding initdb and postgres
	port   int                 // kept across restarts, so pools find the server again
	cred   *syscall.Credential // the postgres OS user's, when we run as root; else nil
	osUser string              // who owns dir

	mu   sync.Mutex
	proc *os.Process   // nil while stopped
	done chan struct{} // closed when proc has exited
}

// newServer runs initdb in a new temporary directory and starts postgres on a free port.
func newServer(ctx context.Context) (*server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin}
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: need OS user \"postgres\" to run it as: %w", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // ids from the passwd file
		s.osUser = u.Username
	}
	sweepOnce.Do(sweep)
	if s.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("make cluster dir: %w", err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return nil, errors.Join(fmt.Errorf("give %s to %s: %w", s.dir, s.osUser, err), s.remove())
		}
	}
	if err := s.initdb(ctx); err != nil {
		return nil, errors.Join(err, s.remove())
	}
	// Another process may take the free port before postgres binds it; then pick another.
	for attempt := 1; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, errors.Join(err, s.remove())
		}
		err = s.start(ctx)
		if err == nil {
			return s, nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return nil, errors.Join(err, s.remove())
		}
	}
}

var sweepOnce sync.Once

// sweep removes the directories of clusters left behind by test binaries that were killed (a
// `go test -timeout` panic skips Main): no server running in them, untouched for 10 minutes.
func sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "pgtest-*"))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		newest := time.Time{}
		for _, p := range []string{dir, filepath.Join(dir, "postgres.log")} {
			if fi, err := os.Stat(p); err == nil && fi.ModTime().After(newest) {
				newest = fi.ModTime()
			}
		}
		if time.Since(newest) > 10*time.Minute {
			_ = os.RemoveAll(dir)
		}
	}
}

// findBinaries returns the directory of initdb and postgres: PATH first, else the newest
// Debian/Ubuntu install.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
				return filepath.Dir(p), nil
			}
		}
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	slices.SortFunc(found, func(a, b string) int { // numeric: 9.6 < 15
		va, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(a))), 64)
		vb, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(b))), 64)
		return cmp.Compare(va, vb)
	})
	for _, p := range slices.Backward(found) {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in " +
		"/usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: apt-get install postgresql-15) " +
		"or set " + EnvURL + " to a superuser URL of a running server")
}

func (s *server) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"),
		"-D", filepath.Join(s.dir, "data"), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf, err := os.OpenFile(filepath.Join(s.dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure cluster: %w", err)
	}
	_, err = fmt.Fprintf(conf, "%s\nunix_socket_directories = '%s'\n", settings, s.dir)
	return errors.Join(err, conf.Close())
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// url returns the superuser URL of database db.
func (s *server) url(db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// start runs postgres and waits until it accepts connections.
func (s *server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return errors.New("start: server already running")
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	logStart, _ := logFile.Seek(0, 2)
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", filepath.Join(s.dir, "data"), "-p", strconv.Itoa(s.port))
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr(s.cred)

	started := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		// The server gets SIGINT if the thread that started it exits (Pdeathsig), so this
		// goroutine keeps its thread until the server is gone: a crashed test binary then takes
		// its server down with it instead of leaking it.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = cmd.Wait() // the exit status says little; the log says why
		logFile.Close()
		close(done)
	}()
	if err := <-started; err != nil {
		logFile.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	s.proc, s.done = cmd.Process, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			s.proc, s.done = nil, nil
			return fmt.Errorf("postgres exited at start: %s", readFrom(logPath, logStart))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = s.stopLocked()
			return fmt.Errorf("postgres not ready: %w; log:\n%s", err, readFrom(logPath, logStart))
		}
	}
}

func (s *server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, s.url("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// stop shuts the server down and waits for it to exit.
func (s *server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *server) stopLocked() error {
	if s.proc == nil {
		return nil
	}
	defer func() { s.proc, s.done = nil, nil }()
	// Fast shutdown: ends sessions at once, unlike the default smart one that waits for them.
	if err := s.proc.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop postgres: %w", err)
	}
	select {
	case <-s.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = s.proc.Signal(syscall.SIGQUIT) // immediate shutdown
	<-s.done
	return errors.New("stop postgres: fast shutdown took over 30s; sent SIGQUIT")
}

// remove deletes the cluster's files; the server must be stopped.
func (s *server) remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove cluster dir: %w", err)
	}
	return nil
}

// readFrom returns the log from offset on, for error messages.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	return string(bytes.TrimSpace(b))
}
