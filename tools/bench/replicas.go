package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// Scenarios 10 and 11 run on a pair of their own: a primary and a hot standby streaming from it
// (pkg/pgserver, pg_basebackup -R), with two stock services on it at once, one reading on the
// primary only (no DATABASE_READ_URL) and one reading on the standby (DATABASE_READ_URL), loaded
// one at a time. The pair's pgfleet database runs with synchronous_commit=on (PostgreSQL's
// default; the bench's own cluster has it off): with off, a commit's WAL reaches the standby
// only at the WAL writer's next flush, up to wal_writer_delay (200 ms) later, which no
// production setting does and which every read-your-writes read would wait for.

const (
	offloadClients = 32   // the read mix's concurrency
	offloadWriters = 4    // IngestPrices clients beside the read mix, in its "with writes" runs
	writeRows      = 500  // rows of each of their calls
	priceSymbols   = 100  // symbols with prices, S0000..S0099
	priceBars      = 2000 // hourly bars of each
	pricePage      = 100  // the ListPrices page size of the mix
	streamBatch    = 1000 // StreamPrices rows per message of the mix
	rywClients     = 4    // scenario 11's writers-then-readers
	standbyName    = "pgfleet-bench-standby"
)

var (
	priceFrom = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	priceTo   = priceFrom.Add(priceBars * time.Hour)
	writeFrom = time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC) // the writers' bars, after every read range
)

// replicaPair is the primary and standby of scenarios 10 and 11, the stock services on them and
// the raw pools of the baselines.
type replicaPair struct {
	primary, standby *cluster
	admin            *pgxpool.Pool // superuser on the primary's pgfleet
	rawPrimary       *pgxpool.Pool // the pgx baselines, as role stock, cfg.pool connections
	rawStandby       *pgxpool.Pool
	onPrimary        *proc // stock, reads on the primary only
	onStandby        *proc // stock, DATABASE_READ_URL = the standby
	writeSeq         atomic.Int64
	failed           bool // keep the data directories for a look
}

// replicas starts the pair on first use; stopReplicas stops it.
func (b *bench) replicas(ctx context.Context) (*replicaPair, error) {
	if b.pair != nil {
		return b.pair, nil
	}
	b.pair = &replicaPair{}
	if err := b.startReplicas(ctx, b.pair); err != nil {
		b.pair.failed = true
		return nil, fmt.Errorf("primary and standby: %w", err)
	}
	return b.pair, nil
}

func (b *bench) startReplicas(ctx context.Context, p *replicaPair) error {
	dir := filepath.Join(b.cfg.work, "pg-primary")
	b.logf("scenarios 10-11: starting a primary in %s and a hot standby of it", dir)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: dir, Throwaway: true, Replication: true})
	if err != nil {
		return err
	}
	p.primary = &cluster{root: b.cfg.root, dir: srv.DataDir, port: srv.Port, srv: srv}
	if err := p.primary.bootstrap(ctx, "stock"); err != nil {
		return err
	}
	if p.admin, err = pgxpool.New(ctx, p.primary.adminURL(dbName)+"&application_name=pgfleet-bench-admin&pool_max_conns=4"); err != nil {
		return err
	}
	// Sessions opened from now on commit synchronously (see the top of this file).
	if _, err := p.admin.Exec(ctx, "ALTER DATABASE "+dbName+" SET synchronous_commit = on"); err != nil {
		return err
	}
	sdir := filepath.Join(b.cfg.work, "pg-standby")
	if err := os.RemoveAll(sdir); err != nil {
		return err
	}
	st, err := srv.StartStandby(ctx, pgserver.StandbyOptions{DataDir: sdir, Name: standbyName})
	if err != nil {
		return err
	}
	p.standby = &cluster{root: b.cfg.root, dir: st.DataDir, port: st.Port, srv: st}
	b.logf("primary on port %d, standby on port %d", p.primary.port, p.standby.port)

	svc := func(logName string, extra ...string) (*proc, error) {
		extra = append([]string{"DATABASE_URL=" + p.primary.roleURL("stock", "")}, extra...)
		s, err := b.startService(b.cfg.bin, "stock", logName, extra...)
		if err != nil {
			return s, err
		}
		return s, s.waitServing(ctx, 60*time.Second)
	}
	// The first runs the migrations; the second finds them done.
	p.onPrimary, err = svc("stock-primary-only")
	if err != nil {
		return err
	}
	p.onStandby, err = svc("stock-standby-reads", "DATABASE_READ_URL="+p.standby.roleURL("stock", ""))
	if err != nil {
		return err
	}

	b.logf("loading %d stocks and %d × %d hourly bars into the primary", b.cfg.stocks, priceSymbols, priceBars)
	if err := b.upsertStocks(ctx, p.onPrimary.grpcAddr, p.admin); err != nil {
		return err
	}
	const fill = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || lpad(s::text, 4, '0'), $1::timestamptz + i * interval '1 hour', 100.5, 101.25, 99.75, 100 + i % 7, i
		FROM generate_series(0, $2 - 1) AS s, generate_series(0, $3 - 1) AS i`
	if _, err := p.admin.Exec(ctx, fill, priceFrom, priceSymbols, priceBars); err != nil {
		return err
	}
	if _, err := p.admin.Exec(ctx, "VACUUM ANALYZE stock.prices"); err != nil {
		return err
	}
	pool := "&pool_max_conns=" + strconv.Itoa(b.cfg.pool)
	if p.rawPrimary, err = pgxpool.New(ctx, p.primary.roleURL("stock", "pgfleet-bench-pgx")+pool); err != nil {
		return err
	}
	if p.rawStandby, err = pgxpool.New(ctx, p.standby.roleURL("stock", "pgfleet-bench-pgx")+pool); err != nil {
		return err
	}
	return b.waitStandby(ctx, p)
}

// waitStandby waits until the standby has replayed everything loaded and the stock service
// reading on it counts it usable.
func (b *bench) waitStandby(ctx context.Context, p *replicaPair) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	want, err := p.primary.srv.CurrentLSN(ctx)
	if err != nil {
		return err
	}
	for {
		got, err := p.standby.srv.ReplayLSN(ctx)
		if err == nil && got >= want {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("the standby has not replayed %s (at %s, %v)", want, got, err)
		}
		sleepCtx(ctx, 50*time.Millisecond)
	}
	for {
		m, err := httpGet(ctx, "http://"+p.onStandby.metricsAddr+"/metrics")
		if err == nil && metricSum(string(m), "pgfleet_db_replica_up") == 1 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("stock's pgfleet_db_replica_up is not 1 (%v): see %s", err, b.rel(p.onStandby.logPath))
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

// stopReplicas stops the pair's services and servers; their logs join the others, and the
// data directories go unless a scenario on them failed.
func (b *bench) stopReplicas() {
	p := b.pair
	if p == nil {
		return
	}
	for _, s := range []*proc{p.onStandby, p.onPrimary} {
		if s != nil {
			s.stop()
		}
	}
	for _, pool := range []*pgxpool.Pool{p.rawPrimary, p.rawStandby, p.admin} {
		if pool != nil {
			pool.Close()
		}
	}
	for _, c := range []struct {
		c   *cluster
		log string
	}{{p.standby, "postgres-standby.log"}, {p.primary, "postgres-primary.log"}} {
		if c.c == nil {
			continue
		}
		c.c.stop()
		if raw, err := os.ReadFile(c.c.srv.Log); err == nil {
			_ = os.WriteFile(filepath.Join(b.cfg.work, "logs", c.log), raw, 0o644) //nolint:errcheck // best effort
		}
		if !p.failed {
			_ = os.RemoveAll(c.c.dir) //nolint:errcheck // best effort
		}
	}
}

// --- CPU of a server's processes ----------------------------------------------------------

// pgCPU is the CPU time a postgres server has used: the postmaster's own, that of its children
// it has reaped (cutime and cstime: backends that exited), and that of the children alive now.
// It grows monotonically, but for a child that exits between the two reads of one call.
func pgCPU(postmaster int) time.Duration {
	f := statFields(postmaster)
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, i := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	t := time.Duration(ticks) * 10 * time.Millisecond
	for _, pid := range children(postmaster) {
		t += cpuTime(pid)
	}
	return t
}

// cpuWindow is the CPU time used in a measured window by the primary's and the standby's
// postgres processes and by a stock service.
type cpuWindow struct {
	primary, standby, service time.Duration
}

// cpuSampler reads cpuWindow's counters at the window's edges.
type cpuSampler struct {
	pm, sm  int   // postmaster pids
	service *proc // nil: none
	start   cpuWindow
	got     cpuWindow
}

func (s *cpuSampler) read() cpuWindow {
	w := cpuWindow{primary: pgCPU(s.pm), standby: pgCPU(s.sm)}
	if s.service != nil {
		w.service = cpuTime(s.service.pid())
	}
	return w
}

func (s *cpuSampler) begin() { s.start = s.read() }
func (s *cpuSampler) end() {
	e := s.read()
	s.got = cpuWindow{primary: e.primary - s.start.primary, standby: e.standby - s.start.standby, service: e.service - s.start.service}
}

func (p *replicaPair) sampler(service *proc) (*cpuSampler, error) {
	pm, err := p.primary.postmasterPID()
	if err != nil {
		return nil, err
	}
	sm, err := p.standby.postmasterPID()
	if err != nil {
		return nil, err
	}
	return &cpuSampler{pm: pm, sm: sm, service: service}, nil
}

// share renders CPU time used in window as a share of the machine (every core).
func share(cpu, window time.Duration) string {
	return fmt.Sprintf("%.0f%%", 100*cpu.Seconds()/(window.Seconds()*float64(runtime.NumCPU())))
}

// perCallCPU renders CPU time per call of r in µs.
func perCallCPU(cpu time.Duration, r result) string {
	if r.ops == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f µs", float64(cpu)/float64(r.ops)/1e3)
}

// --- reads routed, from /metrics ----------------------------------------------------------------

// routing is pgfleet_db_reads_total of a stock service, by target and reason.
type routing struct{ replica, notReplayed, lagging, noReplica float64 }

func readRouting(ctx context.Context, s *proc) (routing, error) {
	body, err := httpGet(ctx, "http://"+s.metricsAddr+"/metrics")
	if err != nil {
		return routing{}, err
	}
	m, t := "pgfleet_db_reads_total", string(body)
	return routing{
		replica:     metricSum(t, m, `target="replica"`),
		notReplayed: metricSum(t, m, `target="primary"`, `reason="not_replayed"`),
		lagging:     metricSum(t, m, `target="primary"`, `reason="lagging"`),
		noReplica:   metricSum(t, m, `target="primary"`, `reason="no_replica"`),
	}, nil
}

func (r routing) minus(o routing) routing {
	return routing{r.replica - o.replica, r.notReplayed - o.notReplayed, r.lagging - o.lagging, r.noReplica - o.noReplica}
}

func (r routing) plus(o routing) routing {
	return routing{r.replica + o.replica, r.notReplayed + o.notReplayed, r.lagging + o.lagging, r.noReplica + o.noReplica}
}

// String renders the reads routed: "990 on the standby (99.0%), 10 on the primary (1.0%, not
// replayed within REPLICA_WAIT)".
func (r routing) String() string {
	total := r.replica + r.notReplayed + r.lagging + r.noReplica
	if total == 0 {
		return "no read routed (pgfleet_db_reads_total)"
	}
	s := fmt.Sprintf("%.0f on the standby (%.1f%%)", r.replica, 100*r.replica/total)
	for _, x := range []struct {
		v    float64
		what string
	}{{r.notReplayed, "not replayed within REPLICA_WAIT"}, {r.lagging, "standby beyond MAX_REPLICA_LAG"}, {r.noReplica, "standby not usable"}} {
		if x.v > 0 {
			s += fmt.Sprintf(", %.0f on the primary (%.1f%%, %s)", x.v, 100*x.v/total, x.what)
		}
	}
	return s + ", per pgfleet_db_reads_total"
}

// --- scenario 10: read offload --------------------------------------------------------------

// mixName names the read mix every scenario 10 line runs; a note under the table says more.
const mixName = "read mix (GetStock, ListStocks, ListPrices, StreamPrices 5:2:2:1)"

// offloadRun is one measured run of the read mix (or of its SQL on pgx).
type offloadRun struct {
	reads, writes result
	cpu           cpuWindow
	routed        routing
}

// replicaRounds is how many times scenarios 10 and 11 measure each of their lines, the lines
// taking turns, each for a third of the duration after a quarter of the warm-up (the services
// and pools are warm after the first round; a run opens only its gRPC connections): a machine whose load drifts (other work on
// its cores) weighs on every line alike. Scenario 10 gives each line's run of median
// throughput, scenario 11 the percentiles of all its reads.
const replicaRounds = 3

// roundTimes are the warm-up and the measured window of one run of a round.
func (b *bench) roundTimes() (warmup, window time.Duration) {
	return b.cfg.warmup / 4, max(time.Second, b.cfg.duration/replicaRounds)
}

func (b *bench) scenarioReadOffload(ctx context.Context) error {
	p, err := b.replicas(ctx)
	if err != nil {
		return err
	}
	listSQL, _, listArgs, err := listSQL()
	if err != nil {
		return err
	}
	type line struct {
		name string
		run  func() (offloadRun, error)
		runs []offloadRun
	}
	raw := func(pool *pgxpool.Pool) func() (offloadRun, error) {
		return func() (offloadRun, error) { return b.rawRun(ctx, p, pool, listSQL, listArgs) }
	}
	svc := func(s *proc, withWrites bool) func() (offloadRun, error) {
		return func() (offloadRun, error) { return b.offloadRun(ctx, p, s, withWrites) }
	}
	lines := []*line{
		{name: "pgx on the primary", run: raw(p.rawPrimary)},
		{name: "pgx on the standby", run: raw(p.rawStandby)},
		{name: "stock, reads on the primary only", run: svc(p.onPrimary, false)},
		{name: "stock, reads on the standby", run: svc(p.onStandby, false)},
		{name: "stock, reads on the primary only, with writers", run: svc(p.onPrimary, true)},
		{name: "stock, reads on the standby, with writers", run: svc(p.onStandby, true)},
	}
	for round := range replicaRounds {
		for _, l := range lines {
			b.logf("scenario 10: read mix, %d clients, %s, round %d of %d", offloadClients, l.name, round+1, replicaRounds)
			r, err := l.run()
			if err != nil {
				return fmt.Errorf("%s: %w", l.name, err)
			}
			l.runs = append(l.runs, r)
		}
	}
	// Each line's run of median throughput; its routing counts are those of all its runs.
	med := make([]offloadRun, len(lines))
	medians := make([]string, len(lines))
	for i, l := range lines {
		reads := make([]result, len(l.runs))
		var routed routing
		for j, r := range l.runs {
			reads[j] = r.reads
			routed = routed.plus(r.routed)
		}
		m := median(reads)
		for _, r := range l.runs {
			if r.reads == m {
				med[i] = r
				break
			}
		}
		med[i].routed = routed
		medians[i] = "median of " + rates(reads)
	}
	rawP, rawS := med[0], med[1]
	for k, withWrites := range []bool{false, true} {
		onP, onS := med[2+2*k], med[3+2*k]
		suffix := ""
		if withWrites {
			suffix = fmt.Sprintf(", + %d IngestPrices writers", offloadWriters)
		}
		pExtra, sExtra := medians[2+2*k]+"; "+onP.cpuText(), medians[3+2*k]+"; "+onS.cpuText()
		if withWrites {
			pExtra += "; " + onP.writesText()
			sExtra += "; " + onS.writesText()
		}
		if onP.cpu.primary > 0 {
			sExtra += fmt.Sprintf("; the primary's CPU %.2f of primary only's", onS.cpu.primary.Seconds()/onP.cpu.primary.Seconds())
		}
		sExtra += "; " + onS.routed.String()
		b.add(row{scenario: "10", path: mixName + ", gRPC → stock, reads on the primary only" + suffix, res: onP.reads, unit: "calls/s",
			ratio: ratios(onP.reads, "pgx on the primary", rawP.reads), extra: pExtra})
		b.add(row{scenario: "10", path: mixName + ", gRPC → stock, reads on the standby (DATABASE_READ_URL)" + suffix, res: onS.reads, unit: "calls/s",
			ratio: ratios(onS.reads, "primary only", onP.reads, "pgx on the standby", rawS.reads), extra: sExtra})
	}
	for i, where := range []string{"primary", "standby"} {
		r := med[i]
		ratio := "database limit"
		if i == 1 {
			ratio = ratios(r.reads, "pgx on the primary", rawP.reads)
		}
		b.add(row{scenario: "10", path: "the mix's SQL, Go loop over pgxpool on the " + where, res: r.reads, unit: "ops/s", ratio: ratio,
			extra: fmt.Sprintf("%s; CPU: primary %s, standby %s; %s of both servers' a call", medians[i], share(r.cpu.primary, r.reads.window),
				share(r.cpu.standby, r.reads.window), perCallCPU(r.cpu.primary+r.cpu.standby, r.reads))})
	}
	_, window := b.roundTimes()
	b.note("scenarios 10-11: a primary and a hot standby of their own (pg_basebackup -R, streaming, hot_standby_feedback on; Throwaway settings but synchronous_commit=on for database pgfleet) on this machine, so both servers share its %d cores: moving reads to the standby frees the primary's CPU, not the machine's, and a 2-core figure shows the shift of work, not the throughput a standby on its own machine adds. Two stock services on that pair: one without DATABASE_READ_URL, one with DATABASE_READ_URL = the standby (REPLICA_WAIT 100ms, MAX_REPLICA_LAG 10s). Every line is measured %d times for %s, the lines taking turns", runtime.NumCPU(), replicaRounds, window.Round(time.Millisecond))
	b.note("scenario 10: CPU is user + system time from /proc of each server's postmaster and children (reaped ones included) and of the stock process, over the measured window, as a share of all %d cores; \"a call\" divides the primary's CPU by the reads completed (with writes beside, theirs is in it too); the pgx lines divide both servers' CPU", runtime.NumCPU())
	b.note("scenario 10: the read mix is, at random from a seed per client, 5 GetStock : 2 ListStocks pages of %d (scenario 3's) : 2 ListPrices pages of %d bars : 1 StreamPrices of a symbol's %d bars (%d a message), each checked, over %d symbols with prices; its pgx twin runs the same SQL (the export as one query)", listPage, pricePage, priceBars, streamBatch, priceSymbols)
	b.note("scenario 10, with writes: %d IngestPrices clients through the same stock service, %d new bars a call (staged, then merged), closed loop beside the %d readers", offloadWriters, writeRows, offloadClients)
	return nil
}

// cpuText renders a run's CPU figures.
func (r offloadRun) cpuText() string {
	return fmt.Sprintf("CPU: primary %s (%s a call), standby %s, stock %s", share(r.cpu.primary, r.reads.window),
		perCallCPU(r.cpu.primary, r.reads), share(r.cpu.standby, r.reads.window), share(r.cpu.service, r.reads.window))
}

// writesText renders the figures of the writers beside a run.
func (r offloadRun) writesText() string {
	return fmt.Sprintf("writes beside: %s rows/s, p50 %s, p99 %s, %d errors", rate(r.writes.rate()*writeRows),
		latency(r.writes.p50), latency(r.writes.p99), r.writes.errs)
}

// rawRun runs the read mix's SQL on pool.
func (b *bench) rawRun(ctx context.Context, p *replicaPair, pool *pgxpool.Pool, listSQL string, listArgs []any) (offloadRun, error) {
	var out offloadRun
	cs, err := p.sampler(nil)
	if err != nil {
		return out, err
	}
	warmup, window := b.roundTimes()
	r := runLoad(ctx, offloadClients, warmup, window, hooks{start: cs.begin, end: cs.end}, func(w int) call {
		return rawMixCall(pool, w, listSQL, listArgs)
	})
	if out.reads, err = b.checked(r); err != nil {
		return out, err
	}
	out.cpu = cs.got
	return out, nil
}

// offloadRun runs the read mix against stock service s, with writers beside it if withWrites.
func (b *bench) offloadRun(ctx context.Context, p *replicaPair, s *proc, withWrites bool) (offloadRun, error) {
	var out offloadRun
	cs, err := p.sampler(s)
	if err != nil {
		return out, err
	}
	conns, closeConns, err := grpcConns(s.grpcAddr, offloadClients)
	if err != nil {
		return out, err
	}
	defer closeConns()
	var before, after routing
	var routeErr error
	h := hooks{
		start: func() { before, routeErr = readRouting(ctx, s); cs.begin() },
		end:   func() { cs.end(); after, _ = readRouting(ctx, s) },
	}
	warmup, window := b.roundTimes()
	var wg sync.WaitGroup
	if withWrites {
		wconn, err := grpc.NewClient(s.grpcAddr, grpcInsecure())
		if err != nil {
			return out, err
		}
		defer wconn.Close()
		wg.Go(func() {
			out.writes = runLoad(ctx, offloadWriters, warmup, window, hooks{}, func(w int) call {
				return b.ingestCall(p, stockv1.NewStockServiceClient(wconn), w)
			})
		})
	}
	md := b.md(b.readTok)
	r := runLoad(ctx, offloadClients, warmup, window, h, func(w int) call {
		return mixCall(stockv1.NewStockServiceClient(conns[w%len(conns)]), md, w)
	})
	wg.Wait()
	if out.reads, err = b.checked(r); err != nil {
		return out, err
	}
	if withWrites {
		if _, err := b.checked(out.writes); err != nil {
			return out, fmt.Errorf("writes: %w", err)
		}
	}
	if routeErr != nil {
		return out, routeErr
	}
	out.cpu, out.routed = cs.got, after.minus(before)
	return out, nil
}

// mixCall is one client of the read mix: each call picks GetStock, ListStocks, ListPrices or
// StreamPrices at random, 5 : 2 : 2 : 1, and checks what it got.
func mixCall(client stockv1.StockServiceClient, md metadata.MD, w int) call {
	rng := rand.New(rand.NewPCG(uint64(w), 10))
	list := &stockv1.ListStocksRequest{Filter: listFilter, OrderBy: listOrderBy, PageSize: listPage}
	return func(ctx context.Context) error {
		ctx = metadata.NewOutgoingContext(ctx, md)
		sym := symbolOf(rng.IntN(priceSymbols))
		switch op := rng.IntN(10); {
		case op < 5:
			_, err := client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: sym})
			return err
		case op < 7:
			resp, err := client.ListStocks(ctx, list)
			if err == nil && len(resp.GetStocks()) != listPage {
				err = fmt.Errorf("ListStocks returned %d stocks, want %d", len(resp.GetStocks()), listPage)
			}
			return err
		case op < 9:
			from := priceFrom.Add(time.Duration(rng.IntN(priceBars-pricePage)) * time.Hour)
			resp, err := client.ListPrices(ctx, &stockv1.ListPricesRequest{Symbol: sym, StartTime: timestamppb.New(from),
				EndTime: timestamppb.New(priceTo), PageSize: pricePage})
			if err == nil && len(resp.GetPrices()) != pricePage {
				err = fmt.Errorf("ListPrices returned %d prices, want %d", len(resp.GetPrices()), pricePage)
			}
			return err
		default:
			st, err := client.StreamPrices(ctx, &stockv1.StreamPricesRequest{Symbol: sym, StartTime: timestamppb.New(priceFrom),
				EndTime: timestamppb.New(priceTo), BatchSize: streamBatch})
			if err != nil {
				return err
			}
			n, err := streamedRows(st)
			if err != nil {
				return err
			}
			if n != priceBars {
				return fmt.Errorf("StreamPrices sent %d rows, want %d", n, priceBars)
			}
			return nil
		}
	}
}

// The mix's SQL as the store runs it: GetStock (getStockSQL), the list page (listSQL), a page
// of prices (one row more than the page, as pkg/query asks, to know whether another follows)
// and a whole range of one symbol (the service reads it in keyset chunks of BatchSize).
const (
	rawPricesSQL = `SELECT symbol, ts, open::text, high::text, low::text, close::text, volume FROM stock.prices WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts LIMIT $4`
)

// rawMixCall is mixCall's SQL on pool, the same picks from the same seed, every row scanned.
func rawMixCall(pool *pgxpool.Pool, w int, listSQL string, listArgs []any) call {
	rng := rand.New(rand.NewPCG(uint64(w), 10))
	var s jsonStock
	var pr struct {
		sym, o, h, l, c string
		ts              time.Time
		v               int64
	}
	prDest := []any{&pr.sym, &pr.ts, &pr.o, &pr.h, &pr.l, &pr.c, &pr.v}
	stDest := []any{&s.Symbol, &s.Name, &s.Sector, &s.Industry, &s.Exchange, &s.Currency, &s.MarketCap, &s.CreateTime, &s.UpdateTime}
	count := func(rows pgx.Rows, dest []any, want int) error {
		n, err := 0, error(nil)
		if _, err = pgx.ForEachRow(rows, dest, func() error { n++; return nil }); err != nil {
			return err
		}
		if n < want {
			return fmt.Errorf("%d rows, want %d", n, want)
		}
		return nil
	}
	return func(ctx context.Context) error {
		sym := symbolOf(rng.IntN(priceSymbols))
		switch op := rng.IntN(10); {
		case op < 5:
			return pool.QueryRow(ctx, getStockSQL, sym).Scan(stDest...)
		case op < 7:
			rows, _ := pool.Query(ctx, listSQL, listArgs...) // the error resurfaces from ForEachRow
			return count(rows, stDest, listPage)
		case op < 9:
			from := priceFrom.Add(time.Duration(rng.IntN(priceBars-pricePage)) * time.Hour)
			rows, _ := pool.Query(ctx, rawPricesSQL, sym, from, priceTo, pricePage+1)
			return count(rows, prDest, pricePage)
		default:
			rows, _ := pool.Query(ctx, rawPricesSQL, sym, priceFrom, priceTo, priceBars)
			return count(rows, prDest, priceBars)
		}
	}
}

// ingestCall is one writer beside the read mix: each call an IngestPrices stream of writeRows
// new bars of its own symbol (none the mix reads), after every bar written before.
func (b *bench) ingestCall(p *replicaPair, client stockv1.StockServiceClient, w int) call {
	sym := symbolOf(b.cfg.stocks - 1 - w)
	return func(ctx context.Context) error {
		from := writeFrom.Add(time.Duration(p.writeSeq.Add(1)*writeRows) * time.Minute)
		msg := &stockv1.IngestPricesRequest{Prices: make([]*stockv1.Price, writeRows)}
		for k := range writeRows {
			msg.Prices[k] = &stockv1.Price{Symbol: sym, Time: timestamppb.New(from.Add(time.Duration(k) * time.Minute)),
				Open: "100.5", High: "101.25", Low: "99.75", Close: "100.125", Volume: int64(k)}
		}
		st, err := client.IngestPrices(outgoing(ctx, b.ingestTok))
		if err != nil {
			return err
		}
		if err := st.Send(msg); err != nil {
			return fmt.Errorf("IngestPrices send: %w", err)
		}
		resp, err := st.CloseAndRecv()
		if err != nil {
			return fmt.Errorf("IngestPrices: %w", err)
		}
		if resp.GetInsertedCount() != writeRows {
			return fmt.Errorf("IngestPrices inserted %d rows, want %d", resp.GetInsertedCount(), writeRows)
		}
		return nil
	}
}

// --- scenario 11: read your writes ------------------------------------------------------------

// rywRun is what scenario 11 measured of one line: its reads' latencies, how many missed the
// write just made, and where they ran.
type rywRun struct {
	lat    []time.Duration
	window time.Duration
	errs   int64
	first  string
	stale  int64
	routed routing
}

func (r *rywRun) add(o rywRun) {
	r.lat = append(r.lat, o.lat...)
	r.window += o.window
	r.errs += o.errs
	if r.first == "" {
		r.first = o.first
	}
	r.stale += o.stale
	r.routed = r.routed.plus(o.routed)
}

// over is the share of the reads that took longer than d.
func (r rywRun) over(d time.Duration) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	n := 0
	for _, l := range r.lat {
		if l > d {
			n++
		}
	}
	return float64(n) / float64(len(r.lat))
}

// result is the line's figures: reads per second over its windows, percentiles of all its reads.
func (r rywRun) result() result {
	res := result{clients: rywClients, ops: int64(len(r.lat)), errs: r.errs, firstErr: r.first, window: r.window}
	res.p50, res.p99 = percentiles(r.lat)
	return res
}

func (b *bench) scenarioReadYourWrites(ctx context.Context) error {
	p, err := b.replicas(ctx)
	if err != nil {
		return err
	}
	variants := []struct {
		name  string
		svc   *proc
		token bool
	}{
		{"GetStock with the write's consistency token, reads on the standby", p.onStandby, true},
		{"GetStock without the token, reads on the standby", p.onStandby, false},
		{"GetStock, reads on the primary only", p.onPrimary, false},
	}
	runs := make([]rywRun, len(variants))
	for round := range replicaRounds {
		for i, v := range variants {
			b.logf("scenario 11: UpsertStocks, then %s, %d clients, round %d of %d", v.name, rywClients, round+1, replicaRounds)
			r, err := b.rywRun(ctx, v.svc, v.token)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			runs[i].add(r)
		}
	}
	base := runs[len(runs)-1].result()
	for i, v := range variants {
		r := runs[i]
		res := r.result()
		ratio := "baseline"
		if i < len(runs)-1 && base.p50 > 0 && base.p99 > 0 {
			ratio = fmt.Sprintf("p50 %.2f×, p99 %.2f× primary only's", float64(res.p50)/float64(base.p50), float64(res.p99)/float64(base.p99))
		}
		extra := fmt.Sprintf("%d of %d reads did not see the write just made", r.stale, res.ops)
		if res.ops > 0 {
			extra += fmt.Sprintf(" (%.1f%%); %.1f%% took over 10 ms", 100*float64(r.stale)/float64(res.ops), 100*r.over(10*time.Millisecond))
		}
		if v.svc == p.onStandby {
			extra += "; " + r.routed.String()
		}
		target := ""
		if v.token {
			target = "0 stale: " + metOrMissed(r.stale == 0)
		}
		b.add(row{scenario: "11", path: "UpsertStocks (1 stock), then " + v.name + "; latency of the read alone", res: res, unit: "reads/s",
			ratio: ratio, target: target, extra: extra})
	}
	b.note("scenario 11: each of %d clients upserts one stock of its own (a new name each time), then reads it back at once with GetStock and checks the name; the read's latency is measured alone, percentiles over the reads of all %d rounds; with the token the read runs on the standby once it has replayed the write (waiting up to REPLICA_WAIT, polling every 10 ms: a read that finds the write not yet replayed at the first poll takes 10 ms more, hence the share over 10 ms), else on the primary", rywClients, replicaRounds)
	return nil
}

// rywRun measures rywClients clients each writing a stock through s and reading it back,
// sending the write's consistency token with the read if token.
func (b *bench) rywRun(ctx context.Context, s *proc, token bool) (rywRun, error) {
	var out rywRun
	conns, closeConns, err := grpcConns(s.grpcAddr, rywClients)
	if err != nil {
		return out, err
	}
	defer closeConns()
	type read struct {
		end   time.Time
		lat   time.Duration
		stale bool
	}
	reads := make([][]read, rywClients)
	var from, to time.Time
	var before, after routing
	var routeErr error
	h := hooks{
		start: func() { before, routeErr = readRouting(ctx, s); from = time.Now() },
		end:   func() { to = time.Now(); after, _ = readRouting(ctx, s) },
	}
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)
	warmup, window := b.roundTimes()
	r := runLoad(ctx, rywClients, warmup, window, h, func(w int) call {
		client := stockv1.NewStockServiceClient(conns[w%len(conns)])
		idx := b.cfg.stocks - 1 - offloadWriters - w
		sym := symbolOf(idx)
		wmd, rmd := b.md(b.adminTok), b.md(b.readTok)
		i := 0
		return func(ctx context.Context) error {
			i++
			name := fmt.Sprintf("Bench Stock %d rev %s-%d", idx, nonce, i)
			var hdr metadata.MD
			_, err := client.UpsertStocks(metadata.NewOutgoingContext(ctx, wmd), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{
				Symbol: sym, Name: name, Sector: sectors[idx%len(sectors)], Industry: "Industry " + strconv.Itoa(idx%37),
				Exchange: []string{"NYSE", "NASDAQ"}[idx%2], Currency: "USD", MarketCap: 100_000_000 * int64(1+(idx*7919)%30000),
			}}}, grpc.Header(&hdr))
			if err != nil {
				return fmt.Errorf("UpsertStocks: %w", err)
			}
			md := rmd
			if token {
				tok := hdr.Get(replica.TokenHeader)
				if len(tok) == 0 {
					return fmt.Errorf("UpsertStocks answered without a %s header", replica.TokenHeader)
				}
				md = metadata.Join(rmd, metadata.Pairs(replica.TokenHeader, tok[0]))
			}
			t0 := time.Now()
			resp, err := client.GetStock(metadata.NewOutgoingContext(ctx, md), &stockv1.GetStockRequest{Symbol: sym})
			t1 := time.Now()
			if err != nil {
				return fmt.Errorf("GetStock: %w", err)
			}
			reads[w] = append(reads[w], read{end: t1, lat: t1.Sub(t0), stale: resp.GetStock().GetName() != name})
			return nil
		}
	})
	if _, err := b.checked(r); err != nil {
		return out, err
	}
	if routeErr != nil {
		return out, routeErr
	}
	for _, rs := range reads {
		for _, x := range rs {
			if x.end.Before(from) || x.end.After(to) {
				continue
			}
			out.lat = append(out.lat, x.lat)
			if x.stale {
				out.stale++
			}
		}
	}
	out.window, out.errs, out.first = to.Sub(from), r.errs, r.firstErr
	out.routed = after.minus(before)
	return out, nil
}
