package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
)

// bench is one run: the cluster, the fleet, the baselines' pools, and what goes in the report.
type bench struct {
	cfg   config
	pg    *cluster
	admin *pgxpool.Pool // superuser on pgfleet: arranging data, sampling pg_stat_activity
	pgx   *pgxpool.Pool // the pgx-loop baseline, as role stock, cfg.pool connections

	tok                  tokens
	adminTok, readTok    string
	ingestTok            string
	stock, portfolio     *proc
	interview, gateway   *proc
	bare                 *proc
	fleet                []*proc // in start order
	symbols              []string
	pair                 *replicaPair // scenarios 10 and 11
	startLoad, machineID []string

	mu       sync.Mutex
	rows     []row
	notes    []string
	commands []string
	profiles []string
}

func run(ctx context.Context, cfg config) (err error) {
	b := &bench{cfg: cfg, tok: newTokens(cfg.auth)}
	if lim, err := raiseFileLimit(); err != nil {
		b.note("could not raise the open-file limit (%v): 1,000 clients may fail for want of sockets", err)
	} else if need := uint64(max(cfg.soakConns, cfg.watchSubs)) * 3; lim < need {
		b.note("open-file limit %d is low for %d clients", lim, need/3)
	}
	if cfg.profile { // profiles of an earlier run must not pass for this one's
		_ = os.RemoveAll(filepath.Join(cfg.work, "profiles")) //nolint:errcheck // recreated on use
	}
	for _, d := range []string{cfg.work, filepath.Join(cfg.work, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// Logs of the previous run go, so that the ones left explain this run.
	if old, _ := filepath.Glob(filepath.Join(cfg.work, "logs", "*.log")); len(old) > 0 {
		for _, f := range old {
			_ = os.Remove(f) //nolint:errcheck // a stale log is harmless
		}
	}
	for _, svc := range []string{"stock", "portfolio", "interview"} {
		if _, err := os.Stat(filepath.Join(cfg.bin, "pgfleet-"+svc)); err != nil {
			return fmt.Errorf("%s/pgfleet-%s not found: run `make build` (make bench does)", cfg.bin, svc)
		}
	}
	b.logf("pgfleet bench: %s measured per run after %s warm-up; scenarios %v", cfg.duration, cfg.warmup, cfg.scenarios)

	b.logf("starting PostgreSQL in %s", filepath.Join(cfg.work, "pg"))
	if b.pg, err = startCluster(ctx, cfg.root, filepath.Join(cfg.work, "pg")); err != nil {
		return err
	}
	defer func() {
		b.pg.stop()
		// The server log stays with the others (it names every serialization failure);
		// the data directory (~1 GB) goes, unless the run failed and may need a look.
		logs := filepath.Join(cfg.work, "logs", "postgres.log")
		if raw, rerr := os.ReadFile(filepath.Join(b.pg.dir, "server.log")); rerr == nil {
			_ = os.WriteFile(logs, raw, 0o644) //nolint:errcheck // best effort
		}
		if err == nil {
			_ = os.RemoveAll(b.pg.dir) //nolint:errcheck // best effort
		}
	}()
	for _, role := range []string{"stock", "portfolio", "interview"} {
		if err := b.pg.bootstrap(ctx, role); err != nil {
			return err
		}
	}
	if b.admin, err = pgxpool.New(ctx, b.pg.adminURL(dbName)+"&application_name=pgfleet-bench-admin&pool_max_conns=4"); err != nil {
		return err
	}
	defer b.admin.Close()
	b.machineID = b.machine(ctx)

	if b.adminTok, err = b.tok.mint("bench-admin", auth.RoleAdmin); err != nil {
		return err
	}
	if b.ingestTok, err = b.tok.mint("bench-ingest", auth.RoleIngest); err != nil {
		return err
	}
	if b.readTok, err = b.tok.mint("reader@bench.pgfleet.dev"); err != nil {
		return err
	}

	defer b.stopFleet()
	defer b.stopReplicas()
	if err := b.startFleet(ctx); err != nil {
		return err
	}
	// The pgx baseline connects as the stock service does, with as many connections.
	if b.pgx, err = pgxpool.New(ctx, b.pg.roleURL("stock", "pgfleet-bench-pgx")+"&pool_max_conns="+strconv.Itoa(cfg.pool)); err != nil {
		return err
	}
	defer b.pgx.Close()

	b.logf("loading %d stocks through UpsertStocks", cfg.stocks)
	if err := b.loadStocks(ctx); err != nil {
		return err
	}
	b.checkAuth(ctx)
	b.startLoad = loadAvg()

	scenarios := []struct {
		n  int
		fn func(context.Context) error
	}{
		{1, b.scenarioGRPC}, {2, b.scenarioREST}, {3, b.scenarioList}, {4, b.scenarioIngest},
		{5, b.scenarioStream}, {6, b.scenarioTrades}, {7, b.scenarioSoak}, {8, b.scenarioTracing},
		{9, b.scenarioFailover},
		{10, b.scenarioReadOffload}, {11, b.scenarioReadYourWrites}, {12, b.scenarioWatch},
		{13, b.scenarioExport},
	}
	for _, s := range scenarios {
		if !cfg.runs(s.n) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.fn(ctx); err != nil {
			return fmt.Errorf("scenario %d: %w", s.n, err)
		}
	}
	return b.report(ctx)
}

// startFleet starts stock, portfolio, interview and the gateway (if built), each once the
// one before it is SERVING, as make run does, and the bare servers.
func (b *bench) startFleet(ctx context.Context) error {
	var err error
	svc := func(name string, extra ...string) (*proc, error) {
		p, err := b.startService(b.cfg.bin, name, name, extra...)
		if p != nil {
			b.fleet = append(b.fleet, p)
		}
		if err != nil {
			return nil, err
		}
		return p, p.waitServing(ctx, 60*time.Second)
	}
	if b.stock, err = svc("stock"); err != nil {
		return err
	}
	if b.portfolio, err = svc("portfolio", "STOCK_ADDR="+b.stock.grpcAddr); err != nil {
		return err
	}
	if b.interview, err = svc("interview"); err != nil {
		return err
	}
	if err := b.startGateway(ctx); err != nil {
		return err
	}
	return b.startBare(ctx)
}

// startService starts the binary bin/pgfleet-name on free ports, its log in logName.log, with
// extra added to its environment; the caller waits for it and stops it.
func (b *bench) startService(bin, name, logName string, extra ...string) (*proc, error) {
	g, err := freePort()
	if err != nil {
		return nil, err
	}
	m, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &proc{
		name: logName, path: filepath.Join(bin, "pgfleet-"+name),
		grpcAddr: "127.0.0.1:" + strconv.Itoa(g), metricsAddr: "127.0.0.1:" + strconv.Itoa(m),
		logPath: filepath.Join(b.cfg.work, "logs", logName+".log"),
	}
	p.env = append(baseEnv(),
		"DATABASE_URL="+b.pg.roleURL(name, ""), // application_name: pgpool sets the binary's name
		"GRPC_ADDR="+p.grpcAddr, "METRICS_ADDR="+p.metricsAddr,
		"DB_POOL_SIZE="+strconv.Itoa(b.cfg.pool), "DRAIN_TIMEOUT=5s",
		"PPROF_ENABLED=true", // the profiles scenario reads /debug/pprof on the metrics port
		// Every load client is 127.0.0.1, so the per-caller limits would count a thousand
		// clients as one caller; the bench measures throughput, not those limits.
		"CALLS_PER_CALLER=100000", "CALL_QUEUE_PER_CALLER=100000", "STREAMS_PER_CALLER=100000")
	p.env = append(append(p.env, b.tok.env()...), extra...)
	if err := p.start(); err != nil {
		return nil, err
	}
	b.logf("started %s (pid %d, gRPC %s, metrics %s)", logName, p.pid(), p.grpcAddr, p.metricsAddr)
	return p, nil
}

// startGateway starts the grpc-gateway edge if its binary is built; without it the REST
// scenarios report that they did not run.
func (b *bench) startGateway(ctx context.Context) error {
	path := filepath.Join(b.cfg.bin, "pgfleet-gateway")
	if _, err := os.Stat(path); err != nil {
		b.note("the gateway is not built (%s missing): REST scenarios 2 and 7 did not run", path)
		return nil
	}
	p, err := b.startGatewayProc(b.cfg.bin, "gateway", b.stock.grpcAddr)
	if err != nil {
		return err
	}
	b.fleet = append(b.fleet, p)
	b.gateway = p
	return p.waitHTTP(ctx, "http://"+p.httpAddr+"/health", 60*time.Second)
}

// startGatewayProc starts bin/pgfleet-gateway on free ports in front of the stock service at
// stockAddr and the fleet's portfolio and interview, its log in logName.log, with extra
// added to its environment; the caller waits for it and stops it.
func (b *bench) startGatewayProc(bin, logName, stockAddr string, extra ...string) (*proc, error) {
	h, err := freePort()
	if err != nil {
		return nil, err
	}
	m, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &proc{
		name: logName, path: filepath.Join(bin, "pgfleet-gateway"),
		httpAddr: "127.0.0.1:" + strconv.Itoa(h), metricsAddr: "127.0.0.1:" + strconv.Itoa(m),
		logPath: filepath.Join(b.cfg.work, "logs", logName+".log"),
	}
	p.env = append(baseEnv(), "HTTP_ADDR="+p.httpAddr, "METRICS_ADDR="+p.metricsAddr,
		"STOCK_ADDR="+stockAddr, "PORTFOLIO_ADDR="+b.portfolio.grpcAddr, "INTERVIEW_ADDR="+b.interview.grpcAddr,
		"DRAIN_TIMEOUT=5s", "PPROF_ENABLED=true")
	p.env = append(append(p.env, b.tok.env()...), extra...)
	if err := p.start(); err != nil {
		return nil, err
	}
	b.logf("started %s (pid %d, HTTP %s, metrics %s)", logName, p.pid(), p.httpAddr, p.metricsAddr)
	return p, nil
}

// startBare starts `bench bare` (this binary again): the bare gRPC and HTTP servers.
func (b *bench) startBare(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var ports [3]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	p := &proc{
		name: "bare", path: self,
		grpcAddr: "127.0.0.1:" + strconv.Itoa(ports[0]), httpAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		metricsAddr: "127.0.0.1:" + strconv.Itoa(ports[2]),
		logPath:     filepath.Join(b.cfg.work, "logs", "bare.log"),
		env:         baseEnv(),
	}
	p.args = []string{"bare", "-db", b.pg.roleURL("stock", "pgfleet-bench-bare"), "-pool", strconv.Itoa(b.cfg.pool),
		"-grpc", p.grpcAddr, "-http", p.httpAddr, "-pprof", p.metricsAddr}
	if err := p.start(); err != nil {
		return err
	}
	b.bare = p
	b.logf("started bare servers (pid %d, gRPC %s, HTTP %s, pprof %s)", p.pid(), p.grpcAddr, p.httpAddr, p.metricsAddr)
	return p.waitHTTP(ctx, "http://"+p.metricsAddr+"/debug/pprof/", 30*time.Second)
}

// stopFleet stops the bare servers, then the fleet in reverse start order.
func (b *bench) stopFleet() {
	if b.bare != nil {
		b.bare.stop()
	}
	for i := len(b.fleet) - 1; i >= 0; i-- {
		b.fleet[i].stop()
	}
}

// restart stops p and starts it again on the same addresses.
func (b *bench) restart(ctx context.Context, p *proc) error {
	p.stop()
	if err := p.start(); err != nil {
		return err
	}
	b.logf("restarted %s (pid %d)", p.name, p.pid())
	return p.waitServing(ctx, 60*time.Second)
}

// checkAuth finds out whether the fleet enforces auth: a portfolio call without a token
// must be refused when it does. The answer goes in the report's header.
func (b *bench) checkAuth(ctx context.Context) {
	conn, err := grpc.NewClient(b.portfolio.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.note("auth check: %v", err)
		return
	}
	defer conn.Close()
	_, err = portfoliov1.NewPortfolioServiceClient(conn).ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{})
	enforced := status.Code(err) == codes.Unauthenticated
	switch {
	case b.cfg.auth && enforced:
		b.note("auth: ON (JWT_SECRET set, HS256); every call carries a bearer token, also the public GetStock reads, so token verification is part of every pgfleet figure")
	case b.cfg.auth:
		b.note("auth: the fleet got JWT_SECRET and the calls carry tokens, but a call without a token was not refused (%v): this build does not enforce auth yet", status.Code(err))
	default:
		b.note("auth: OFF (-auth=false: AUTH_DISABLED=true, no tokens)")
	}
}

// logf prints progress to stderr; the table goes to stdout.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// note adds a line under the table.
func (b *bench) note(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// command records a command line a reader can rerun.
func (b *bench) command(c string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, have := range b.commands {
		if have == c {
			return
		}
	}
	b.commands = append(b.commands, c)
}

// loadAvg reads /proc/loadavg's three averages.
func loadAvg() []string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(raw))
	return f[:min(3, len(f))]
}

// grpcConns dials the connections a run of clients shares: one for up to 32 clients, four
// above, since one HTTP/2 connection (one reader goroutine, one flow-control window) becomes
// the bottleneck of hundreds of concurrent streams.
func grpcConns(addr string, clients int) ([]*grpc.ClientConn, func(), error) {
	n := 1
	if clients > 32 {
		n = 4
	}
	conns := make([]*grpc.ClientConn, 0, n)
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		c.Connect()
		conns = append(conns, c)
	}
	return conns, closeAll, nil
}
