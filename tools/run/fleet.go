package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/supervise"
	"github.com/pgfleet/pgfleet/services/stock/providerstub"
	"github.com/pgfleet/pgfleet/tools/internal/localdb"
)

const (
	here           = "deploy/local"
	defaultDataDir = here + "/data"
)

// service is one service that owns a schema. Each gets a role, a schema, GRPC_ADDR,
// METRICS_ADDR, its own DATABASE_URL, and its seed/<name>.sql if there is one.
type service struct {
	name                       string
	grpc, metrics              string // listen addresses
	defaultGRPC, defaultMetric string
}

// services are in start order: a service comes after those it calls (portfolio prices trades
// with stock). The gateway (HTTP, no database) is not one of them: it starts after them all.
var services = []service{
	{name: "stock", defaultGRPC: ":50051", defaultMetric: ":9101"},
	{name: "portfolio", defaultGRPC: ":50052", defaultMetric: ":9102"},
	{name: "interview", defaultGRPC: ":50053", defaultMetric: ":9103"},
}

// fleet is one run: where things are, and what it started.
type fleet struct {
	root, bin                string
	runDir, logDir, dataDir  string
	secretFile               string
	psql                     string
	adminURL, pgHostPort     string
	pgQuery, pgWhere         string
	startedPG                *pgserver.Server
	standby                  *pgserver.Server // REPLICAS=1: a streaming standby of startedPG
	standbyDir               string
	procs                    supervise.Group
	svcs                     []service
	gatewayHTTP, gatewayMetr string
	startTimeout             time.Duration
	demoToken, adaToken      string
	adminToken               string
	provider                 *providerstub.Server // the stand-in market-data provider of the demo ingestion
}

func say(format string, args ...any) { fmt.Printf("==> "+format+"\n", args...) }

// envOr is the value of environment variable name, else def (an empty value counts as unset).
func envOr(name, def string) string { return cmp.Or(os.Getenv(name), def) }

func upper(s string) string { return strings.ToUpper(strings.ReplaceAll(s, "-", "_")) }

// runFleet is make run: it returns once ctx ends (SIGINT or SIGTERM) and the fleet is stopped,
// or with the error that stopped it.
func runFleet(ctx context.Context, root string) (err error) {
	root, err = filepath.Abs(root)
	if err != nil {
		return err
	}
	if err := os.Chdir(root); err != nil {
		return err
	}
	f := &fleet{root: root, bin: filepath.Join(root, ".tmp/bin"),
		runDir: envOr("PGFLEET_RUN_DIR", ".tmp/run"), dataDir: envOr("PGFLEET_DATA_DIR", defaultDataDir)}
	f.logDir = filepath.Join(f.runDir, "logs")
	f.secretFile = filepath.Join(f.runDir, "jwt-secret")
	os.Setenv("PATH", f.bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	secs, err := strconv.Atoi(envOr("PGFLEET_START_TIMEOUT", "60"))
	if err != nil {
		return fmt.Errorf("PGFLEET_START_TIMEOUT must be a number of seconds, not %q", os.Getenv("PGFLEET_START_TIMEOUT"))
	}
	f.startTimeout = time.Duration(secs) * time.Second

	defer func() {
		// Deferred, so that a failed start stops what did start, and then says why.
		if stopErr := f.stop(); err == nil {
			err = stopErr
		}
	}()
	if err := f.start(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Println()
			say("shutting down")
			return nil
		}
		return err
	}
	if err := f.writeFleetFile(); err != nil {
		return fmt.Errorf("write the fleet file for pgfleet doctor: %w", err)
	}
	if err := f.printExamples(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		fmt.Println()
		say("shutting down")
		return nil
	case p := <-f.procs.Exited():
		return fmt.Errorf("%s exited unexpectedly; last lines of %s:\n%s", p.Name, p.Log, supervise.Tail(p.Log, 40))
	}
}

// start does everything up to the examples.
func (f *fleet) start(ctx context.Context) error {
	for _, name := range []string{"stock", "portfolio", "interview", "gateway"} {
		if _, err := os.Stat(filepath.Join(f.bin, "pgfleet-"+name)); err != nil {
			return fmt.Errorf("%s/pgfleet-%s not found: run 'make run' or 'make build'", f.bin, name)
		}
	}
	if err := f.checkPorts(); err != nil {
		return err
	}
	if err := f.startPostgres(ctx); err != nil {
		return err
	}
	if _, err := localdb.Run(ctx, f.psql, f.adminURL, "-Atc", "SELECT 1"); err != nil {
		return fmt.Errorf("cannot connect to PostgreSQL as the administrator: %s", mask(f.adminURL))
	}
	for _, s := range f.svcs {
		if err := localdb.Bootstrap(ctx, f.psql, f.root, f.adminURL, s.name, password(s.name)); err != nil {
			return err
		}
	}
	names := make([]string, len(f.svcs))
	for i, s := range f.svcs {
		names[i] = s.name
	}
	say("database %s: roles and schemas ready for: %s", localdb.DB, strings.Join(names, " "))
	if err := os.MkdirAll(f.logDir, 0o755); err != nil {
		return err
	}
	if err := f.mintTokens(); err != nil {
		return err
	}
	if err := f.startProvider(); err != nil {
		return err
	}
	for i := range f.svcs {
		if err := f.startService(ctx, i); err != nil {
			return err
		}
	}
	if os.Getenv("PGFLEET_SEED") != "0" {
		if err := f.seed(ctx); err != nil {
			return err
		}
		if err := f.scheduleDemoIngestion(ctx); err != nil {
			return err
		}
	}
	return f.startGateway(ctx)
}

// checkPorts checks every listen address before anything starts.
func (f *fleet) checkPorts() error {
	for _, s := range services {
		s.grpc = envOr(upper(s.name)+"_GRPC_ADDR", s.defaultGRPC)
		s.metrics = envOr(upper(s.name)+"_METRICS_ADDR", s.defaultMetric)
		f.svcs = append(f.svcs, s)
		for _, l := range []struct{ addr, what, knob string }{
			{s.grpc, s.name + " gRPC", "_GRPC_ADDR"}, {s.metrics, s.name + " metrics", "_METRICS_ADDR"},
		} {
			p, err := addrPort(l.addr, upper(s.name)+l.knob)
			if err != nil {
				return err
			}
			if portBusy(p) {
				hint := "(a previous run?) "
				if strings.HasSuffix(l.what, "metrics") {
					hint = ""
				}
				return fmt.Errorf("port %d (%s) is already in use: stop what holds it %sor choose another, e.g. %s%s=:%d make run",
					p, l.what, hint, upper(s.name), l.knob, p+10)
			}
		}
	}
	f.gatewayHTTP = envOr("GATEWAY_HTTP_ADDR", ":8080")
	f.gatewayMetr = envOr("GATEWAY_METRICS_ADDR", ":9100")
	for _, l := range []struct{ addr, what, knob string }{
		{f.gatewayHTTP, "gateway HTTP", "GATEWAY_HTTP_ADDR"}, {f.gatewayMetr, "gateway metrics", "GATEWAY_METRICS_ADDR"},
	} {
		p, err := addrPort(l.addr, l.knob)
		if err != nil {
			return err
		}
		if portBusy(p) {
			return fmt.Errorf("port %d (%s) is already in use: stop what holds it or choose another, e.g. %s=:%d make run", p, l.what, l.knob, p+10)
		}
	}
	return nil
}

var adminURLPattern = regexp.MustCompile(`^(postgres|postgresql)://(([^@/?]*)@)?([^/?]*)(/[^?]*)?(\?.*)?$`)

// startPostgres finds the server: DATABASE_URL's, a cluster left running in the data
// directory, or a new one it starts there.
func (f *fleet) startPostgres(ctx context.Context) error {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		m := adminURLPattern.FindStringSubmatch(u)
		if m == nil {
			return errors.New("DATABASE_URL must be a URL: postgres://USER:PASSWORD@HOST:PORT/DB[?sslmode=...]")
		}
		if envOr("REPLICAS", "0") != "0" {
			return errors.New("REPLICAS=1 starts a standby of the local cluster: unset DATABASE_URL to use it")
		}
		f.adminURL, f.pgHostPort, f.pgQuery = u, m[4], m[6]
		f.pgWhere = "the server of DATABASE_URL, left running on exit"
		psql, err := localdb.Psql()
		if err != nil {
			if aptInstall("the PostgreSQL client (psql)", "postgresql-client") {
				psql, err = localdb.Psql()
			}
			if err != nil {
				return errors.New("psql not found: install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq)")
			}
		}
		f.psql = psql
		say("using the PostgreSQL server of DATABASE_URL: %s", mask(u))
		return nil
	}
	replicas := envOr("REPLICAS", "0")
	if replicas != "0" && replicas != "1" {
		return fmt.Errorf("REPLICAS must be 0 or 1 (a streaming standby of the local cluster), not '%s'", replicas)
	}
	portText := envOr("PGFLEET_PG_PORT", "5433")
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 {
		return fmt.Errorf("PGFLEET_PG_PORT must be a port number, not '%s'", portText)
	}
	if pid, running, ok := pgserver.Running(f.dataDir); ok {
		// Left over from a run that was killed: reuse it, on the port it listens on, and leave
		// it running on exit as we found it.
		port = running
		if replicas == "1" {
			return fmt.Errorf("REPLICAS=1 needs the local cluster started by this run, with the replication settings; stop the one left running first: .tmp/bin/pgfleet-run stop-postgres %s", f.dataDir)
		}
		say("PostgreSQL is already running in %s (pid %d, port %d); using it and leaving it running (stop it: .tmp/bin/pgfleet-run stop-postgres %s)", f.dataDir, pid, port, f.dataDir)
	} else {
		if portBusy(port) {
			return fmt.Errorf("port %d (PostgreSQL) is already in use: choose another, e.g. PGFLEET_PG_PORT=%d make run, or use that server with DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:%d/postgres make run", port, port+1, port)
		}
		if _, err := pgserver.FindBinaries(); err != nil {
			aptInstall("PostgreSQL server binaries (initdb, pg_ctl, postgres)", "postgresql")
			if _, err := pgserver.FindBinaries(); err != nil {
				return errors.New(`PostgreSQL server binaries (initdb, postgres) not found. Install PostgreSQL 13 or newer server binaries and run again:
  Debian/Ubuntu: sudo apt-get install postgresql
  Fedora/RHEL:   sudo dnf install postgresql-server
  macOS:         brew install postgresql@15
or point pgfleet at an existing server: DATABASE_URL=postgres://user:pass@host:5432/db make run`)
			}
		}
		say("starting PostgreSQL in %s on 127.0.0.1:%d", f.dataDir, port)
		srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: f.dataDir, Port: port, Replication: replicas == "1"})
		if err != nil {
			return fmt.Errorf("PostgreSQL did not start; see %s/server.log: %w", f.dataDir, err)
		}
		f.startedPG = srv
		if replicas == "1" {
			if err := f.startStandby(ctx, port); err != nil {
				return err
			}
		}
	}
	f.adminURL = pgserver.URL(port, "postgres")
	f.pgHostPort = "127.0.0.1:" + strconv.Itoa(port)
	f.pgQuery = "?sslmode=disable"
	f.pgWhere = "local cluster in " + f.dataDir + ", server log " + f.dataDir + "/server.log"
	if f.psql, err = localdb.Psql(); err != nil {
		return errors.New("psql not found: install the PostgreSQL client (Debian/Ubuntu: apt-get install postgresql-client)")
	}
	return nil
}

// standbyName is the application_name of make run's standby (pg_stat_replication on the primary).
const standbyName = "pgfleet_standby1"

// startStandby starts REPLICAS=1's streaming standby of the cluster this run started: a fresh
// base backup in the run directory each time (the primary's data is the one kept), on
// PGFLEET_STANDBY_PORT (default the primary's port + 1).
func (f *fleet) startStandby(ctx context.Context, primaryPort int) error {
	portText := envOr("PGFLEET_STANDBY_PORT", strconv.Itoa(primaryPort+1))
	port, err := strconv.Atoi(portText)
	if err != nil || port <= 0 {
		return fmt.Errorf("PGFLEET_STANDBY_PORT must be a port number, not '%s'", portText)
	}
	f.standbyDir = filepath.Join(f.runDir, "standby")
	if pid, _, ok := pgserver.Running(f.standbyDir); ok {
		return fmt.Errorf("a standby left by an earlier run still runs in %s (pid %d): stop it with .tmp/bin/pgfleet-run stop-postgres %s", f.standbyDir, pid, f.standbyDir)
	}
	if portBusy(port) {
		return fmt.Errorf("port %d (the standby) is already in use: choose another, e.g. PGFLEET_STANDBY_PORT=%d REPLICAS=1 make run", port, port+1)
	}
	if err := os.RemoveAll(f.standbyDir); err != nil {
		return fmt.Errorf("remove the previous standby: %w", err)
	}
	say("starting a streaming standby of PostgreSQL in %s on 127.0.0.1:%d (pg_basebackup -R)", f.standbyDir, port)
	began := time.Now()
	f.standby, err = f.startedPG.StartStandby(ctx, pgserver.StandbyOptions{DataDir: f.standbyDir, Port: port, Name: standbyName})
	if err != nil {
		return fmt.Errorf("the standby did not start; see %s/server.log: %w", f.standbyDir, err)
	}
	say("standby streaming from the primary (%v): %s (read-only, application_name %s)", time.Since(began).Round(time.Millisecond), f.standby.URL("postgres"), standbyName)
	return nil
}

// aptInstall installs a Debian package when we are root on a machine with apt-get, and says so.
func aptInstall(what, pkg string) bool {
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		return false
	}
	say("installing %s with apt-get", what)
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", pkg}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return false
		}
	}
	if pkg == "postgresql" { // the package starts a system cluster on 5432; pgfleet runs its own
		_ = exec.Command("service", "postgresql", "stop").Run()
	}
	return true
}

// password is the role's password: <SVC>_DB_PASSWORD, else the role's name (dev only).
func password(svc string) string { return envOr(upper(svc)+"_DB_PASSWORD", svc) }

// serviceURL is the DATABASE_URL a service gets.
func (f *fleet) serviceURL(svc, pw string) string {
	return "postgres://" + svc + ":" + urlenc(pw) + "@" + f.pgHostPort + "/" + localdb.DB + f.pgQuery
}

// readURL is the DATABASE_READ_URL a service gets with REPLICAS=1: the standby, with the
// service's own role and database as serviceURL; "" without a standby.
func (f *fleet) readURL(svc, pw string) string {
	if f.standby == nil {
		return ""
	}
	return "postgres://" + svc + ":" + urlenc(pw) + "@127.0.0.1:" + strconv.Itoa(f.standby.Port) + "/" + localdb.DB + f.pgQuery
}

// mintTokens makes the HS256 secret once per checkout, kept in the run directory so that
// printed tokens stay valid across runs (JWT_SECRET overrides it), and mints the examples'
// tokens with it as pgfleet-token would.
func (f *fleet) mintTokens() error {
	secret := os.Getenv("JWT_SECRET")
	if secret == "" {
		b, err := os.ReadFile(f.secretFile)
		if err != nil || len(b) == 0 {
			if err := os.MkdirAll(f.runDir, 0o755); err != nil {
				return err
			}
			key := make([]byte, 32)
			_, _ = rand.Read(key) // never fails (crypto/rand)
			b = []byte(base64.RawStdEncoding.EncodeToString(key))
			if err := os.WriteFile(f.secretFile, b, 0o600); err != nil {
				return err
			}
		}
		secret = string(b)
	}
	os.Setenv("JWT_SECRET", secret) // the services and the gateway get it with the environment
	var cfg auth.Config
	if err := envconfig.Process(context.Background(), &cfg); err != nil {
		return err
	}
	mint := func(sub string, roles ...string) (string, error) { return cfg.Token(sub, roles, 168*time.Hour) }
	var err error
	if f.demoToken, err = mint("demo@pgfleet.dev"); err != nil {
		return fmt.Errorf("mint a token: %w", err)
	}
	if f.adaToken, err = mint("ada@example.com"); err != nil {
		return err
	}
	f.adminToken, err = mint("admin@pgfleet.dev", auth.RoleAdmin)
	return err
}

// serviceEnv is what service i gets besides DATABASE_URL, GRPC_ADDR and METRICS_ADDR: the
// addresses of the services it calls. Other settings of those clients pass through.
func (f *fleet) serviceEnv(i int) []string {
	if f.svcs[i].name == "stock" {
		// The files ingestion source reads the run directory's ingest/ (created here), so that
		// a FILES job works out of the box; INGEST_DIR set in the environment wins.
		var env []string
		dir := cmp.Or(os.Getenv("INGEST_DIR"), filepath.Join(f.runDir, "ingest"))
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			env = append(env, "INGEST_DIR="+dir)
		}
		if f.provider != nil {
			env = append(env, "INGEST_HTTP_BASE_URL="+f.provider.URL, "INGEST_HTTP_API_KEY="+demoProviderKey)
		}
		return env
	}
	if f.svcs[i].name != "portfolio" {
		return nil
	}
	// The demo prices are loaded once and then age: trades take them at any age unless
	// MAX_PRICE_AGE is set (the service's own default refuses prices older than 120h).
	return []string{"STOCK_ADDR=" + f.grpcTarget("stock"), "MAX_PRICE_AGE=" + cmp.Or(os.Getenv("MAX_PRICE_AGE"), "0")}
}

// gatewayEnv is what the gateway gets besides HTTP_ADDR and METRICS_ADDR: every service's
// gRPC target, and the origins whose pages may call it from a browser (empty: none).
func (f *fleet) gatewayEnv() []string {
	var env []string
	for _, s := range f.svcs {
		env = append(env, upper(s.name)+"_ADDR="+f.grpcTarget(s.name))
	}
	origins, ok := os.LookupEnv("CORS_ALLOWED_ORIGINS")
	if !ok {
		origins = "http://localhost:3000"
	}
	return append(env, "CORS_ALLOWED_ORIGINS="+origins)
}

func (f *fleet) svc(name string) (service, bool) {
	for _, s := range f.svcs {
		if s.name == name {
			return s, true
		}
	}
	return service{}, false
}

// grpcTarget is host:port to reach the named service's gRPC listener from this machine.
func (f *fleet) grpcTarget(name string) string {
	s, _ := f.svc(name)
	p, _ := addrPort(s.grpc, "")
	return probeHost(s.grpc) + ":" + strconv.Itoa(p)
}

// newLog empties the log of name and returns its path.
func (f *fleet) newLog(name string) (string, error) {
	log := filepath.Join(f.logDir, name+".log")
	return log, os.WriteFile(log, nil, 0o644)
}

// startService starts service i and waits until it reports SERVING.
func (f *fleet) startService(ctx context.Context, i int) error {
	s := f.svcs[i]
	log, err := f.newLog(s.name)
	if err != nil {
		return err
	}
	extra := f.serviceEnv(i)
	env := append(os.Environ(), "DATABASE_URL="+f.serviceURL(s.name, password(s.name)),
		"GRPC_ADDR="+s.grpc, "METRICS_ADDR="+s.metrics)
	if u := f.readURL(s.name, password(s.name)); u != "" {
		env = append(env, "DATABASE_READ_URL="+u)
	}
	p := supervise.New(supervise.Spec{Name: s.name, Path: filepath.Join(f.bin, "pgfleet-"+s.name),
		Env: append(env, extra...), Log: log})
	if err := p.Start(); err != nil {
		return err
	}
	note := ""
	if len(extra) > 0 {
		note = ", " + strings.Join(extra, " ")
	}
	say("started %s (pid %d, gRPC %s, metrics %s%s), log %s", s.name, p.Pid(), s.grpc, s.metrics, note, log)
	f.procs.Add(p)
	target := f.grpcTarget(s.name)
	if err := p.WaitReady(ctx, supervise.GRPCServing(target), f.startTimeout); err != nil {
		if ctx.Err() != nil {
			return err
		}
		if p.Exited() {
			msg := fmt.Sprintf("%s exited during startup; last lines of %s:\n%s", s.name, log, supervise.Tail(log, 40))
			if raw, _ := os.ReadFile(log); strings.Contains(string(raw), "address already in use") {
				// Free when checked at the start, so taken since: often by an outgoing connection
				// that got it as its local port (50051-50053 are in Linux's ephemeral range).
				knob, port := "GRPC_ADDR", mustPort(s.grpc)
				if strings.Contains(string(raw), fmt.Sprintf(":%d: bind", mustPort(s.metrics))) {
					knob, port = "METRICS_ADDR", mustPort(s.metrics)
				}
				msg += fmt.Sprintf("\npgfleet-run: port %d (%s) was taken after pgfleet-run found it free, by a listener or by a connection using it as its local port; run again, or move it, e.g. %s_%s=:%d make run",
					port, s.name, upper(s.name), knob, port+10)
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s not SERVING on %s after %d s; last lines of %s:\n%s", s.name, target, int(f.startTimeout/time.Second), log, supervise.Tail(log, 40))
	}
	say("%s is SERVING on %s", s.name, target)
	return nil
}

// seed loads the demo data once: each seed file checks for itself whether its data is there
// already and prints one line, what it loaded or that it loaded nothing. The question bank
// goes in through the API itself: BulkImportQuestions checks every question and rubric as any
// client's import would be checked.
func (f *fleet) seed(ctx context.Context) error {
	for _, s := range f.svcs {
		file := filepath.Join(here, "seed", s.name+".sql")
		if _, err := os.Stat(file); err != nil {
			continue
		}
		t0 := time.Now()
		out, err := localdb.Run(ctx, f.psql, f.serviceURL(s.name, password(s.name)), "-f", file)
		if err != nil {
			return fmt.Errorf("loading %s failed (it runs in one transaction: nothing was kept): %w", file, err)
		}
		say("%s demo data (%s, %s): %s", s.name, file, seconds(time.Since(t0)), out)
	}
	bank := filepath.Join(here, "seed", "interview-questions.json")
	grpcurl, err := exec.LookPath("grpcurl")
	if _, ok := f.svc("interview"); !ok || err != nil {
		return nil
	}
	if _, err := os.Stat(bank); err != nil {
		return nil
	}
	conn, err := pgx.Connect(ctx, f.serviceURL("interview", password("interview")))
	if err != nil {
		return err
	}
	var n int
	err = conn.QueryRow(ctx, "SELECT count(*) FROM interview.questions").Scan(&n)
	conn.Close(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		say("interview demo data: the question bank holds %d questions already", n)
		return nil
	}
	t0 := time.Now()
	in, err := os.Open(bank)
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := exec.CommandContext(ctx, grpcurl, "-plaintext", "-H", "authorization: Bearer "+f.adminToken, "-d", "@",
		f.grpcTarget("interview"), "pgfleet.interview.v1.QuestionBankService/BulkImportQuestions")
	cmd.Stdin = in
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing %s failed: %s", bank, out)
	}
	say("interview demo data (%s through BulkImportQuestions, %s): %s", bank, seconds(time.Since(t0)),
		strings.NewReplacer(" ", "", "\n", "").Replace(string(out)))
	return nil
}

// startGateway starts the gateway last: it answers for every service. It listens once its
// routes and connections are set up, so an accepting port means it is ready.
func (f *fleet) startGateway(ctx context.Context) error {
	log, err := f.newLog("gateway")
	if err != nil {
		return err
	}
	gwEnv := f.gatewayEnv()
	p := supervise.New(supervise.Spec{Name: "gateway", Path: filepath.Join(f.bin, "pgfleet-gateway"), Log: log,
		Env: append(append(os.Environ(), "HTTP_ADDR="+f.gatewayHTTP, "METRICS_ADDR="+f.gatewayMetr), gwEnv...)})
	if err := p.Start(); err != nil {
		return err
	}
	f.procs.Add(p)
	say("started gateway (pid %d, HTTP %s, metrics %s, %s), log %s", p.Pid(), f.gatewayHTTP, f.gatewayMetr, strings.Join(gwEnv, " "), log)
	dial := probeHost(f.gatewayHTTP)
	if dial == "localhost" {
		dial = "127.0.0.1"
	}
	if err := p.WaitReady(ctx, supervise.Accepts(net.JoinHostPort(dial, strconv.Itoa(mustPort(f.gatewayHTTP)))), f.startTimeout); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("the gateway did not start listening on %s; last lines of %s:\n%s", f.gatewayHTTP, log, supervise.Tail(log, 40))
	}
	say("gateway is serving on %s", f.gatewayURL())
	return nil
}

func (f *fleet) gatewayURL() string {
	return "http://" + probeHost(f.gatewayHTTP) + ":" + strconv.Itoa(mustPort(f.gatewayHTTP))
}

// stop stops the gateway and the services in reverse start order, each drained (or killed
// after 30 s) before the next, so a service's in-flight calls still reach those it calls;
// then the cluster, if this run started it.
func (f *fleet) stop() error {
	err := f.procs.Stop(func(p *supervise.Process) { fmt.Printf("stopping %s (pid %d)\n", p.Name, p.Pid()) })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if f.provider != nil {
		if err := f.provider.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "the stand-in market-data provider:", err)
		}
	}
	if f.standby != nil {
		fmt.Printf("stopping standby (%s)\n", f.standbyDir)
		if err := f.standby.Stop(); err != nil {
			return err
		}
	}
	if f.startedPG != nil {
		fmt.Printf("stopping PostgreSQL (%s)\n", f.dataDir)
		if err := f.startedPG.Stop(); err != nil {
			return err
		}
	}
	return nil
}

// addrPort is the port of a listen address [host]:port; knob names where it came from.
func addrPort(addr, knob string) (int, error) {
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil || p < 0 || addr[i+1:] == "" || strings.ContainsAny(addr[i+1:], "+-") {
		return 0, fmt.Errorf("bad address '%s' in %s: want [host]:port, e.g. :50061", addr, knob)
	}
	return p, nil
}

func mustPort(addr string) int { p, _ := addrPort(addr, ""); return p }

// probeHost is where to reach a listener bound to addr from this machine.
func probeHost(addr string) string {
	h := addr[:max(0, strings.LastIndexByte(addr, ':'))]
	switch h {
	case "", "0.0.0.0", "[::]", "::":
		return "localhost"
	}
	return h
}

// portBusy reports whether something accepts connections on 127.0.0.1:port.
func portBusy(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

var secretInURL = regexp.MustCompile(`(://[^:/@]*):[^@/]*@`)

// mask hides the password of the first URL in s.
func mask(s string) string {
	loc := secretInURL.FindStringSubmatchIndex(s)
	if loc == nil {
		return s
	}
	return s[:loc[0]] + s[loc[2]:loc[3]] + ":****@" + s[loc[1]:]
}

// urlenc percent-encodes s for the userinfo of a URL.
func urlenc(s string) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("._~-", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// seconds prints d as run.sh did: "2.3 s".
func seconds(d time.Duration) string {
	ms := d.Milliseconds()
	return fmt.Sprintf("%d.%d s", ms/1000, ms%1000/100)
}
