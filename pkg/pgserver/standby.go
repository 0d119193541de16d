package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/supervise"
)

// LSN is a position in the WAL (PostgreSQL's pg_lsn), comparable with < and >.
type LSN uint64

// ParseLSN reads PostgreSQL's text form of an LSN, "16/B374D848".
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse LSN %q: want two hexadecimal halves separated by /", s)
	}
	return LSN(h<<32 | l), nil
}

// String returns PostgreSQL's text form of the LSN.
func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint64(l)>>32, uint64(l)&0xFFFFFFFF) }

// StandbyOptions says where a standby of a running server runs.
type StandbyOptions struct {
	DataDir string // the base backup goes here; must be empty or missing, unless it holds this standby already
	Port    int    // 0: a free port
	Log     string // default DataDir/server.log
	// Name is the standby's application_name in its primary_conninfo: pg_stat_replication on
	// the primary names it so (and synchronous_standby_names would).
	Name string
}

// StartStandby makes a hot standby of s, which must run with Options.Replication: a base backup
// of s with `pg_basebackup -R -X stream` (which writes standby.signal and a primary_conninfo
// naming the standby opts.Name), then postgres on it, streaming from s. It returns once the
// standby accepts read-only connections. A DataDir that holds a cluster already (a standby kept
// by an earlier run) is started as it is. The standby has s's Throwaway and Replication
// settings.
func (s *Server) StartStandby(ctx context.Context, opts StandbyOptions) (*Server, error) {
	if !s.Replication {
		return nil, errors.New("start standby: the primary runs without Options.Replication")
	}
	if opts.Name == "" {
		return nil, errors.New("start standby: StandbyOptions.Name is empty")
	}
	st := &Server{Options: Options{DataDir: opts.DataDir, Port: opts.Port, Log: opts.Log,
		Throwaway: s.Throwaway, Replication: true}, bin: s.bin}
	var err error
	if st.DataDir, err = filepath.Abs(st.DataDir); err != nil {
		return nil, err
	}
	if st.Log == "" {
		st.Log = filepath.Join(st.DataDir, "server.log")
	}
	if err := st.prepareDir(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(st.DataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := st.baseBackup(ctx, s, opts.Name); err != nil {
			return nil, err
		}
	}
	return st, st.startOnPort(ctx)
}

// baseBackup copies primary's cluster into st.DataDir and configures it as its standby.
func (st *Server) baseBackup(ctx context.Context, primary *Server, name string) error {
	u, err := url.Parse(primary.URL("postgres"))
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("application_name", name)
	u.RawQuery = q.Encode()
	args := []string{"-D", st.DataDir, "-R", "-X", "stream", "--checkpoint=fast", "-d", u.String()}
	if st.Throwaway {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(st.bin, "pg_basebackup"), args...)
	cmd.Dir = st.DataDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: st.cred}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_basebackup of port %d into %s: %w\n%s", primary.Port, st.DataDir, err, out)
	}
	// The primary's log, if it lives in its data directory, came along: it is not the standby's.
	if primary.Log == filepath.Join(primary.DataDir, "server.log") {
		_ = os.Remove(filepath.Join(st.DataDir, "server.log"))
	}
	return nil
}

// allowReplication adds hbaReplication to pg_hba.conf unless a line already lets the local
// superuser connect for replication over TCP.
func (s *Server) allowReplication() error {
	path := filepath.Join(s.DataDir, "pg_hba.conf")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("allow replication: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 5 && fields[0] == "host" && fields[1] == "replication" &&
			slices.Contains([]string{"all", "postgres"}, fields[2]) && fields[3] == "127.0.0.1/32" {
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if _, err := f.WriteString("\n" + hbaReplication + "\n"); err != nil {
		return fmt.Errorf("allow replication: %w", err)
	}
	return nil
}

func (s *Server) lsn(ctx context.Context, sql string) (LSN, error) {
	var text *string
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sql).Scan(&text); err != nil {
		return 0, err
	}
	if text == nil {
		return 0, errors.New("no LSN: " + sql + " returned NULL")
	}
	return ParseLSN(*text)
}

// CurrentLSN returns the primary's current WAL insert position (pg_current_wal_insert_lsn): a
// standby that has replayed it sees every transaction committed before the call. Not the write
// position (pg_current_wal_lsn): with synchronous_commit=off (Throwaway) a commit record may
// still wait in the WAL buffers, behind it.
func (s *Server) CurrentLSN(ctx context.Context) (LSN, error) {
	return s.lsn(ctx, "SELECT pg_current_wal_insert_lsn()::text")
}

// ReplayLSN returns how far a standby has replayed its primary's WAL
// (pg_last_wal_replay_lsn); after a promotion, where replay stopped.
func (s *Server) ReplayLSN(ctx context.Context) (LSN, error) {
	return s.lsn(ctx, "SELECT pg_last_wal_replay_lsn()::text")
}

// InRecovery reports whether the server is a standby (pg_is_in_recovery).
func (s *Server) InRecovery(ctx context.Context) (bool, error) {
	var in bool
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return false, err
	}
	defer conn.Close(context.Background())
	err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&in)
	return in, err
}

// Promote makes a standby a primary (pg_promote) and returns once it accepts writes, or an
// error after timeout.
func (s *Server) Promote(ctx context.Context, timeout time.Duration) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	defer conn.Close(context.Background())
	var done bool
	secs := max(1, int(timeout/time.Second))
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, $1)", secs).Scan(&done); err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	if !done {
		return fmt.Errorf("promote: still in recovery after %v; log:\n%s", timeout, supervise.Tail(s.Log, 40))
	}
	return nil
}

// StopImmediate ends the server at once (immediate shutdown, SIGQUIT): no checkpoint, sessions
// cut, as a crash would; the next start runs crash recovery. It waits for the process to exit.
func (s *Server) StopImmediate() error {
	if s.proc == nil || s.proc.Exited() {
		return nil
	}
	if err := syscall.Kill(s.proc.Pid(), syscall.SIGQUIT); err != nil {
		return fmt.Errorf("stop postgres immediately: %w", err)
	}
	select {
	case <-s.proc.Done():
		return nil
	case <-time.After(30 * time.Second):
		return s.Stop() // kills the process group after its own timeout
	}
}
