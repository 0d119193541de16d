// Package localdb prepares a PostgreSQL server for the local fleet (tools/run) and the bench
// (tools/bench): database pgfleet with a login role and a schema per service, made by
// deploy/local/bootstrap.sql, and psql to run that file and the demo data's seed files.
package localdb

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// DB is the database every service schema lives in.
const DB = "pgfleet"

// Psql finds psql: on PATH, else in a usual install directory.
func Psql() (string, error) {
	if p, err := exec.LookPath("psql"); err == nil {
		return p, nil
	}
	for _, pattern := range []string{"/usr/lib/postgresql/*/bin/psql", "/usr/pgsql-*/bin/psql",
		"/opt/homebrew/opt/postgresql@*/bin/psql", "/usr/local/opt/postgresql@*/bin/psql"} {
		if found, _ := filepath.Glob(pattern); len(found) > 0 {
			return found[len(found)-1], nil
		}
	}
	return "", errors.New("psql not found")
}

// Run runs psql quietly on url, stopping at the first error, and returns its standard output
// without the trailing newline; an error carries its standard error.
func Run(ctx context.Context, psql, url string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, psql, append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1", url}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("psql %s: %w\n%s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// Bootstrap creates database DB, and role's login role (with password) and schema, with
// deploy/local/bootstrap.sql under root, as an administrator; it is idempotent.
func Bootstrap(ctx context.Context, psql, root, adminURL, role, password string) error {
	_, err := Run(ctx, psql, adminURL, "-v", "db="+DB, "-v", "role="+role, "-v", "password="+password,
		"-f", filepath.Join(root, "deploy/local/bootstrap.sql"))
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", role, err)
	}
	return nil
}
