package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/tools/internal/localdb"
)

// dbName is the database every service schema lives in, as make run's.
const dbName = localdb.DB

// cluster is the throwaway PostgreSQL cluster of one run (pkg/pgserver's Throwaway settings:
// fsync, synchronous_commit and full_page_writes off, as make test runs).
type cluster struct {
	root string
	dir  string
	port int
	srv  *pgserver.Server
}

// startCluster deletes what a previous run left in dir, then starts a fresh cluster there on
// a free port.
func startCluster(ctx context.Context, root, dir string) (*cluster, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: dir, Throwaway: true})
	if err != nil {
		return nil, err
	}
	return &cluster{root: root, dir: dir, port: srv.Port, srv: srv}, nil
}

// stop shuts the cluster down.
func (c *cluster) stop() {
	_ = c.srv.Stop() //nolint:errcheck // best effort on the way out
}

// adminURL is the superuser's URL; db "" means the postgres database.
func (c *cluster) adminURL(db string) string {
	return pgserver.URL(c.port, cmp.Or(db, "postgres"))
}

// roleURL is the URL of a service role (its password is its name, as make run's dev default)
// on database pgfleet; app, if set, names the connections in pg_stat_activity.
func (c *cluster) roleURL(role, app string) string {
	u := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", role, url.QueryEscape(role), c.port, dbName)
	if app != "" {
		u += "&application_name=" + url.QueryEscape(app)
	}
	return u
}

// libpqEnv is the environment that points psql and pgbench at role's database.
func (c *cluster) libpqEnv(role, app string) []string {
	return append(baseEnv(),
		"PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(c.port), "PGDATABASE="+dbName,
		"PGUSER="+role, "PGPASSWORD="+role, "PGSSLMODE=disable", "PGAPPNAME="+app)
}

// bootstrap creates database pgfleet and role's login role and schema, as make run does for
// each service.
func (c *cluster) bootstrap(ctx context.Context, role string) error {
	psql, err := localdb.Psql()
	if err != nil {
		return err
	}
	return localdb.Bootstrap(ctx, psql, c.root, c.adminURL(""), role, role)
}

// postmasterPID reads the server's pid from postmaster.pid.
func (c *cluster) postmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// pgbenchRun is one pgbench invocation: a custom script, prepared statements, -T seconds.
type pgbenchRun struct {
	role, script string
	clients      int
	seconds      int
	vars         map[string]string // -D name=value
	logDir       string            // per-transaction log (10% sampled) for percentiles; "" for none
	maxTries     int               // --max-tries: retries of serialization and deadlock failures; 0 for pgbench's default (1)
}

// args is the pgbench command line.
func (r pgbenchRun) args() []string {
	a := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(r.clients), "-j", strconv.Itoa(min(2, r.clients)),
		"-T", strconv.Itoa(r.seconds), "-f", r.script}
	if r.maxTries > 0 {
		a = append(a, "--max-tries", strconv.Itoa(r.maxTries))
	}
	for k, v := range r.vars {
		a = append(a, "-D", k+"="+v)
	}
	if r.logDir != "" {
		a = append(a, "--log", "--sampling-rate=0.1", "--log-prefix="+filepath.Join(r.logDir, "pgbench"))
	}
	return a
}

var (
	pgbenchTPS       = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchProcessed = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	pgbenchFailed    = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	pgbenchRetries   = regexp.MustCompile(`(?m)^total number of retries: ([0-9]+)`)
)

// errNoTransactions is a pgbench run that completed no transaction: on a loaded machine its
// clients can spend a short run connecting (256 backends start one by one), so the run
// measured nothing rather than something slow.
var errNoTransactions = errors.New("pgbench completed no transaction")

// pgbench runs r and parses its figures: tps as pgbench reports it (without connection
// time), transactions processed and failed, and p50/p99 from the sampled per-transaction log.
func (c *cluster) pgbench(ctx context.Context, r pgbenchRun) (result, error) {
	if r.logDir != "" {
		if err := os.RemoveAll(r.logDir); err != nil {
			return result{}, err
		}
		if err := os.MkdirAll(r.logDir, 0o755); err != nil {
			return result{}, err
		}
	}
	cmd := exec.CommandContext(ctx, pgbenchPath(), r.args()...)
	cmd.Env = c.libpqEnv(r.role, "pgfleet-bench-pgbench")
	cmd.Dir = r.logDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("pgbench %s: %w\n%s", strings.Join(r.args(), " "), err, out)
	}
	res, err := parsePgbench(out, r)
	if err != nil {
		return result{}, err
	}
	if r.logDir != "" {
		lat, err := pgbenchLatencies(r.logDir)
		if err != nil {
			return result{}, err
		}
		res.p50, res.p99 = percentiles(lat)
		_ = os.RemoveAll(r.logDir) //nolint:errcheck // scratch files
	}
	return res, nil
}

// parsePgbench reads a pgbench report's figures: transactions processed, tps (without
// connection time), failed transactions and, with --max-tries, retries. A run that completed
// no transaction is errNoTransactions, whatever pgbench printed for its tps.
func parsePgbench(out []byte, r pgbenchRun) (result, error) {
	res := result{clients: r.clients, window: time.Duration(r.seconds) * time.Second}
	if m := pgbenchProcessed.FindSubmatch(out); m != nil {
		res.ops, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	m := pgbenchTPS.FindSubmatch(out)
	if m == nil || res.ops == 0 {
		return result{}, fmt.Errorf("%w:\n%s", errNoTransactions, out)
	}
	res.perSec, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := pgbenchFailed.FindSubmatch(out); m != nil {
		res.errs, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := pgbenchRetries.FindSubmatch(out); m != nil {
		res.retries, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	return res, nil
}

// pgbenchLatencies reads the per-transaction logs (one file per thread): the third field is
// the transaction's latency in microseconds ("failed" or "skipped" for those, which we skip).
func pgbenchLatencies(dir string) ([]time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "pgbench.*"))
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			if us, err := strconv.ParseInt(fields[2], 10, 64); err == nil {
				lat = append(lat, time.Duration(us)*time.Microsecond)
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	if len(lat) == 0 {
		return nil, errors.New("pgbench wrote no per-transaction log")
	}
	return lat, nil
}

// pgbenchPath finds pgbench: on PATH, else in the newest /usr/lib/postgresql/*/bin.
func pgbenchPath() string {
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pgbench")
	if len(dirs) > 0 {
		return dirs[len(dirs)-1]
	}
	return "pgbench"
}

// psql runs psql as role with the given arguments.
func (c *cluster) psql(ctx context.Context, role string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "psql", append([]string{"-X", "-q", "-v", "ON_ERROR_STOP=1"}, args...)...)
	cmd.Env = c.libpqEnv(role, "pgfleet-bench-psql")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("psql %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return out, nil
}

// freePort asks the kernel for a free loopback port. Another process may take it before we
// bind it; a service that then fails to listen says so in its log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseEnv is the environment children start from: enough to run, nothing that configures
// a service (a DATABASE_URL in the caller's shell must not leak into the fleet).
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
