package pgtest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

// server is a throwaway PostgreSQL server that pgtest started, with its files in dir.
type server struct {
	*pgserver.Server
	dir string // data/ and postgres.log
}

// newServer starts a throwaway server (pgserver.Throwaway settings, pgserver.Replication when
// replication is set, then settings) on a free port, in a new temporary directory.
func newServer(ctx context.Context, replication bool, settings []pgserver.Setting) (*server, error) {
	if _, err := pgserver.FindBinaries(); err != nil {
		return nil, fmt.Errorf("%w, or set %s to a superuser URL of a running server", err, EnvURL)
	}
	sweepOnce.Do(sweep)
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("make cluster dir: %w", err)
	}
	s := &server{dir: dir}
	s.Server, err = pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "data"),
		Log: filepath.Join(dir, "postgres.log"), Throwaway: true, Replication: replication, Settings: settings})
	if err != nil {
		return nil, errors.Join(err, s.remove())
	}
	return s, nil
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

// remove deletes the cluster's files; the server must be stopped.
func (s *server) remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove cluster dir: %w", err)
	}
	return nil
}
