// Package pgserver runs a PostgreSQL server from the system's binaries: the throwaway clusters
// of the tests (pkg/pgtest), of `make test` and of the bench, and the kept one of `make run`
// (tools/run), and the streaming hot standbys of those that ask for them (Options.Replication,
// Server.StartStandby). Its settings are declared here once, so they cannot drift between those.
package pgserver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// Setting is one server parameter, passed as `postgres -c Name=Value` on every start, so a data
// directory made by an older version of this package gets today's settings too.
type Setting struct{ Name, Value string }

// Base holds the settings of every server: local connections only, and room for the parallel
// tests and the bench's load (pools of every service and baseline at once).
var Base = []Setting{
	{"listen_addresses", "127.0.0.1"},
	{"max_connections", "400"},
}

// Throwaway holds what a server whose data is thrown away adds to Base: durability traded for
// speed, and a short deadlock_timeout so that the deadlock tests end quickly.
var Throwaway = []Setting{
	{"fsync", "off"},
	{"synchronous_commit", "off"},
	{"full_page_writes", "off"},
	{"deadlock_timeout", "100ms"},
	{"shared_buffers", "256MB"},
}

// Replication holds what a server of a streaming pair adds: the primary sends its WAL to
// standbys (wal_level=replica and max_wal_senders are PostgreSQL's defaults since 10, declared
// so that no later setting can turn them off by accident), and a standby answers reads while it
// replays (hot_standby) and tells the primary which rows its queries still see
// (hot_standby_feedback), so that vacuum on the primary does not cancel them.
var Replication = []Setting{
	{"wal_level", "replica"},
	{"max_wal_senders", "10"},
	{"hot_standby", "on"},
	{"hot_standby_feedback", "on"},
}

// hbaReplication lets the local superuser connect for replication (pg_basebackup, a standby's
// WAL receiver). initdb writes an equivalent line; Start adds it to a cluster that lacks it.
const hbaReplication = "host replication postgres 127.0.0.1/32 trust"

// startTimeout bounds a start (crash recovery of a kept cluster included) on a busy machine.
const startTimeout = time.Minute

// Options says where and how a server runs.
type Options struct {
	DataDir   string // PGDATA; initdb runs first when it holds no cluster yet
	Port      int    // 0: a free port, picked again if another process takes it first
	Log       string // the server's output; default DataDir/server.log
	Throwaway bool   // add Throwaway to Base: for data that is thrown away
	// Replication adds Replication: a primary that standbys stream from, or a standby. Without
	// it a server runs exactly as before standbys existed (its WAL settings are the defaults).
	Replication bool
	// Settings come after all the others on the command line, where a setting named twice
	// takes its last value: e.g. synchronous_commit=on over Throwaway's off. A standby does not
	// inherit them.
	Settings []Setting
}

// Server is a postgres process started by Start.
type Server struct {
	Options
	bin  string              // directory holding initdb and postgres
	cred *syscall.Credential // the postgres OS user's when we run as root; else nil
	proc *supervise.Process
}

// Start initializes opts.DataDir if it holds no cluster, runs postgres on it and waits until it
// accepts connections. As root, the server runs as the OS user "postgres" (PostgreSQL refuses
// root), which then owns DataDir. The server stops when the caller dies (see pkg/supervise).
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	s := &Server{Options: opts, bin: bin}
	s.Log = cmp.Or(s.Log, filepath.Join(s.DataDir, "server.log"))
	if s.DataDir, err = filepath.Abs(s.DataDir); err != nil {
		return nil, err
	}
	if err := s.prepareDir(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := s.initdb(ctx); err != nil {
			return nil, err
		}
	}
	if s.Replication {
		if err := s.allowReplication(); err != nil {
			return nil, err
		}
	}
	return s, s.startOnPort(ctx)
}

// startOnPort starts the server on s.Port, or on a free port when it is 0.
func (s *Server) startOnPort(ctx context.Context) error {
	if s.Port != 0 {
		return s.Start(ctx)
	}
	var err error
	// Another process may take the free port before postgres binds it; then pick another.
	for attempt := 1; ; attempt++ {
		if s.Port, err = freePort(); err != nil {
			return err
		}
		err = s.Start(ctx)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return err
		}
	}
}

// prepareDir makes DataDir, private to the OS user that runs the server.
func (s *Server) prepareDir() error {
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return fmt.Errorf("make data dir: %w", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("running as root, and PostgreSQL refuses root: need OS user \"postgres\" to run it as: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)} //nolint:gosec // ids from the passwd file
		if err := os.Chown(s.DataDir, uid, gid); err != nil {
			return fmt.Errorf("give %s to postgres: %w", s.DataDir, err)
		}
		// postgres must reach its data directory through every parent.
		for p := filepath.Dir(s.DataDir); p != "/" && p != "."; p = filepath.Dir(p) {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o001 == 0 {
				_ = os.Chmod(p, fi.Mode().Perm()|0o001) // best effort: initdb says what it lacks
			}
		}
	}
	return os.Chmod(s.DataDir, 0o700)
}

func (s *Server) initdb(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, "initdb"), "-D", s.DataDir, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
	cmd.Dir = s.DataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s: %w\n%s", s.DataDir, err, out)
	}
	return nil
}

// Args returns the postgres command line's arguments: data directory, port, socket directory
// and the declared settings.
func (s *Server) Args() []string {
	args := []string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port), "-k", s.DataDir}
	settings := Base
	if s.Throwaway {
		settings = slices.Concat(settings, Throwaway)
	}
	if s.Replication {
		settings = slices.Concat(settings, Replication)
	}
	settings = slices.Concat(settings, s.Settings)
	for _, st := range settings {
		args = append(args, "-c", st.Name+"="+st.Value)
	}
	return args
}

// Start runs postgres (again, after Stop, on the same port) and waits until it accepts
// connections.
func (s *Server) Start(ctx context.Context) error {
	logStart := int64(0)
	if fi, err := os.Stat(s.Log); err == nil {
		logStart = fi.Size()
	}
	s.proc = supervise.New(supervise.Spec{
		Name: "postgres", Path: filepath.Join(s.bin, "postgres"), Args: s.Args(), Dir: s.DataDir,
		Log: s.Log, Cred: s.cred,
		// Fast shutdown: ends sessions at once, unlike the default smart one that waits for them.
		StopSignal: syscall.SIGINT, DeathSignal: syscall.SIGINT,
	})
	if err := s.proc.Start(); err != nil {
		return err
	}
	err := s.proc.WaitReady(ctx, s.ping, startTimeout)
	if err == nil {
		return nil
	}
	if !s.proc.Exited() {
		_ = s.proc.Stop()
	}
	return fmt.Errorf("postgres did not start: %w; log:\n%s", err, readFrom(s.Log, logStart))
}

func (s *Server) ping(ctx context.Context) error {
	conn, err := pgconn.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// Stop shuts the server down (fast shutdown) and waits for it to exit.
func (s *Server) Stop() error {
	if s.proc == nil {
		return nil
	}
	if err := s.proc.Stop(); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	return nil
}

// Pid returns the postmaster's process id while it runs.
func (s *Server) Pid() int { return s.proc.Pid() }

// URL returns the superuser URL of database db.
func (s *Server) URL(db string) string { return URL(s.Port, db) }

// URL returns the superuser URL of database db on a server this package runs on port.
func URL(port int, db string) string {
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	return u.String()
}

// Running returns the pid and port of a server that runs on dataDir (one a killed run left,
// say), from its postmaster.pid; ok is false when none does.
func Running(dataDir string) (pid, port int, ok bool) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, 0, false
	}
	pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	if pid <= 0 || !supervise.Alive(pid) {
		return 0, 0, false
	}
	return pid, port, true
}

// ErrNoBinaries is returned when no PostgreSQL server binaries are found.
var ErrNoBinaries = errors.New("PostgreSQL server binaries (initdb, postgres) not found on PATH or in " +
	"/usr/lib/postgresql/*/bin: install them (Debian/Ubuntu: apt-get install postgresql)")

// FindBinaries returns the directory of initdb and postgres: PATH first, else the newest
// Debian/Ubuntu install.
func FindBinaries() (string, error) {
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
	return "", ErrNoBinaries
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readFrom returns the file from offset on, for error messages.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if offset <= int64(len(b)) {
		b = b[offset:]
	}
	return strings.TrimSpace(string(b))
}
