package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/tools/internal/localdb"
)

// Scenario 9's shape: failoverClients trade (buy 1 share, a request_id each) on
// failoverPortfolios portfolios for failoverBefore, then the primary dies and the standby is
// promoted at once; the load goes on until failoverAfter acknowledged trades were sent after
// the death, or failoverWait passed.
const (
	failoverClients    = 8
	failoverPortfolios = 4
	failoverBefore     = 5 * time.Second
	failoverAfter      = 200
	failoverWait       = 45 * time.Second
	failoverStandby    = "bench_standby"
)

// failoverRun is what one failover measured.
type failoverRun struct {
	before               result        // trades before the death: rate and latency (the cost of synchronous commits)
	promote              time.Duration // from the death to the standby accepting writes
	firstTrade           time.Duration // from the death to the first acknowledged trade sent after it
	health               []string      // per service: when it was SERVING again, or that it never left SERVING
	acked, lost, errs    int           // trades acknowledged over the whole run, of them missing on the new primary, failed calls
	restarted            []string      // services that were not the same process at the end
	afterAcked, afterAll int           // trades sent after the death: acknowledged, all
}

// scenarioFailover runs stock and portfolio on a primary with a hot standby, through a
// DATABASE_URL listing both with target_session_attrs=read-write, kills the primary under a
// trade load and promotes the standby: once with a synchronous standby, once with an
// asynchronous one. It reports the time to the first acknowledged trade and to SERVING, and the
// acknowledged trades the new primary does not have (0 is promised with the synchronous one).
func (b *bench) scenarioFailover(ctx context.Context) error {
	for _, synchronous := range []bool{true, false} {
		mode := map[bool]string{true: "synchronous", false: "asynchronous"}[synchronous]
		b.logf("scenario 9: failover with a standby that is %s, %d clients trading on %d portfolios", mode, failoverClients, failoverPortfolios)
		r, err := b.failover(ctx, synchronous)
		if err != nil {
			return fmt.Errorf("failover, %s standby: %w", mode, err)
		}
		extra := "primary + streaming standby, synchronous_commit=on, synchronous_standby_names empty"
		if synchronous {
			extra = "primary + streaming standby, synchronous_commit=on, synchronous_standby_names=" + failoverStandby
		}
		b.add(row{scenario: "9", path: "ExecuteTrade before the failover, " + mode + " standby", res: r.before, unit: "tps", extra: extra})
		target := "(measured: async may lose)"
		if synchronous {
			target = "lost 0: " + metOrMissed(r.lost == 0)
		}
		serving := strings.Join(r.health, ", ")
		extra = fmt.Sprintf("promoted after %.2f s; trades sent after the death: %d of %d acknowledged; failed calls: %d",
			r.promote.Seconds(), r.afterAcked, r.afterAll, r.errs)
		if len(r.restarted) > 0 {
			extra += fmt.Sprintf("; **restarted: %v**", r.restarted)
		}
		b.add(row{scenario: "9", path: "failover, " + mode + " standby",
			figure: fmt.Sprintf("first trade after %.2f s · %s · acknowledged trades lost: %d of %d", r.firstTrade.Seconds(), serving, r.lost, r.acked),
			target: target, extra: extra})
	}
	b.note("scenario 9: the primary is killed (immediate shutdown) and the standby promoted (pg_promote) as soon as it has exited; services keep their default DB_HEALTH_INTERVAL (2s), so SERVING lags the first trade by up to one interval. Lost = acknowledged trades whose request_id the promoted standby does not have")
	return nil
}

// failover runs one failover on a pair of its own and tears it down.
func (b *bench) failover(ctx context.Context, synchronous bool) (run failoverRun, err error) {
	dir := filepath.Join(b.cfg.work, "failover")
	if err := os.RemoveAll(dir); err != nil {
		return run, err
	}
	defer func() {
		if err == nil {
			_ = os.RemoveAll(dir) //nolint:errcheck // best effort
		}
	}()
	// synchronous_commit=on in both runs (the throwaway default, off, would not even wait for
	// the local WAL write): they differ in synchronous_standby_names alone, so the first rows
	// of the two runs show what waiting for the standby costs.
	primary, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "primary"), Throwaway: true,
		Replication: true, Settings: []pgserver.Setting{{Name: "synchronous_commit", Value: "on"}}})
	if err != nil {
		return run, err
	}
	defer func() { _ = primary.StopImmediate() }() //nolint:errcheck // stopped already, or on the way out
	psql, err := localdb.Psql()
	if err != nil {
		return run, err
	}
	for _, role := range []string{"stock", "portfolio"} {
		if err := localdb.Bootstrap(ctx, psql, b.cfg.root, primary.URL("postgres"), role, role); err != nil {
			return run, err
		}
	}
	standby, err := primary.StartStandby(ctx, pgserver.StandbyOptions{DataDir: filepath.Join(dir, "standby"), Name: failoverStandby})
	if err != nil {
		return run, err
	}
	defer func() { _ = standby.Stop() }() //nolint:errcheck // on the way out
	if synchronous {
		if err := makeSynchronous(ctx, primary); err != nil {
			return run, err
		}
	}

	dbURL := func(role string) string {
		return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d,127.0.0.1:%d/%s?sslmode=disable&target_session_attrs=read-write",
			role, url.QueryEscape(role), primary.Port, standby.Port, dbName)
	}
	var procs []*proc
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	start := func(name string, extra ...string) (*proc, error) {
		p, err := b.startService(b.cfg.bin, name, "failover-"+name, append(extra, "DATABASE_URL="+dbURL(name))...)
		if p != nil {
			procs = append(procs, p)
		}
		if err != nil {
			return nil, err
		}
		return p, p.waitServing(ctx, 60*time.Second)
	}
	stock, err := start("stock")
	if err != nil {
		return run, err
	}
	portfolio, err := start("portfolio", "STOCK_ADDR="+stock.grpcAddr, "MAX_PRICE_AGE=0")
	if err != nil {
		return run, err
	}
	pids := map[*proc]int{stock: stock.pid(), portfolio: portfolio.pid()}

	sconn, err := grpc.NewClient(stock.grpcAddr, grpcInsecure())
	if err != nil {
		return run, err
	}
	defer sconn.Close()
	pconn, err := grpc.NewClient(portfolio.grpcAddr, grpcInsecure())
	if err != nil {
		return run, err
	}
	defer pconn.Close()
	ids, err := b.failoverSetup(ctx, stockv1.NewStockServiceClient(sconn), portfoliov1.NewPortfolioServiceClient(pconn))
	if err != nil {
		return run, err
	}
	// The setup must be on the standby (asynchronous: replayed), or a failover would lose the
	// portfolios themselves and no trade could follow.
	if err := waitReplayed(ctx, primary, standby); err != nil {
		return run, err
	}

	health := []*healthLog{watchHealth(ctx, sconn), watchHealth(ctx, pconn)}
	defer func() {
		for _, h := range health {
			h.stop()
		}
	}()
	load := b.startTrades(portfoliov1.NewPortfolioServiceClient(pconn), ids)
	defer load.stop()
	sleepCtx(ctx, failoverBefore)

	died := time.Now()
	run.before = load.summary(time.Time{}, died)
	if err := primary.StopImmediate(); err != nil {
		return run, err
	}
	if err := standby.Promote(ctx, time.Minute); err != nil {
		return run, err
	}
	run.promote = time.Since(died)
	deadline := time.Now().Add(failoverWait)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		acked, _ := load.after(died)
		settled := true
		for _, h := range health {
			// A service whose monitor did not see the outage (promoted within one health
			// interval) never leaves SERVING: 5 s, two default intervals and more, tell.
			left, back := h.leftAfter(died), h.backAfter(died) > 0
			settled = settled && (back || (!left && time.Since(died) > 5*time.Second))
		}
		if acked >= failoverAfter && settled {
			break
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	trades := load.stop()
	run.afterAcked, run.afterAll = load.after(died)
	if run.afterAcked == 0 {
		return run, fmt.Errorf("no trade acknowledged within %v of the failover; last error: %v", failoverWait, load.lastErr())
	}
	run.firstTrade = load.first(died).Sub(died)
	for i, h := range health {
		name := []string{"stock", "portfolio"}[i]
		switch back := h.backAfter(died); {
		case back > 0:
			run.health = append(run.health, fmt.Sprintf("%s SERVING again after %.2f s", name, back.Seconds()))
		case h.leftAfter(died):
			run.health = append(run.health, fmt.Sprintf("**%s not SERVING again within %v**", name, failoverWait))
		default:
			run.health = append(run.health, name+" never left SERVING")
		}
	}
	for p, pid := range pids {
		if p.p.Exited() || p.pid() != pid {
			run.restarted = append(run.restarted, p.name)
		}
	}

	// The ledger of the new primary: every acknowledged trade must be there.
	conn, err := pgx.Connect(ctx, standby.URL(dbName))
	if err != nil {
		return run, err
	}
	defer conn.Close(context.Background())
	var rids []string
	for _, t := range trades {
		if t.err == nil {
			rids = append(rids, t.rid)
		} else {
			run.errs++
		}
	}
	run.acked = len(rids)
	var found int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM portfolio.trades WHERE request_id = ANY($1)", rids).Scan(&found); err != nil {
		return run, err
	}
	run.lost = run.acked - found
	return run, nil
}

// makeSynchronous names the standby in the primary's synchronous_standby_names (ALTER SYSTEM,
// after the base backup, so that the standby, once promoted, does not wait for a standby of
// its own) and waits until the primary counts it as synchronous.
func makeSynchronous(ctx context.Context, primary *pgserver.Server) error {
	conn, err := pgx.Connect(ctx, primary.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{"ALTER SYSTEM SET synchronous_standby_names = '" + failoverStandby + "'", "SELECT pg_reload_conf()"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var state string
		err := conn.QueryRow(ctx, "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1", failoverStandby).Scan(&state)
		if err == nil && state == "sync" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the standby's sync_state is %q (%v) after a minute, want sync", state, err)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// waitReplayed waits until the standby has replayed everything the primary wrote so far.
func waitReplayed(ctx context.Context, primary, standby *pgserver.Server) error {
	lsn, err := primary.CurrentLSN(ctx)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := standby.ReplayLSN(ctx)
		if err == nil && got >= lsn {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("standby replayed %v (%v), not %v, within a minute", got, err, lsn)
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// failoverSetup gives the stock service a price for S0000 and makes failoverPortfolios
// portfolios with cash for every trade of the run.
func (b *bench) failoverSetup(ctx context.Context, sc stockv1.StockServiceClient, pc portfoliov1.PortfolioServiceClient) ([]int64, error) {
	actx := outgoing(ctx, b.adminTok)
	if _, err := sc.UpsertStocks(actx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: symbolOf(0), Name: "Failover Inc.", Currency: "USD"}}}); err != nil {
		return nil, fmt.Errorf("UpsertStocks: %w", err)
	}
	ing, err := sc.IngestPrices(outgoing(ctx, b.ingestTok))
	if err != nil {
		return nil, err
	}
	at := timestamppb.New(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := ing.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{{Symbol: symbolOf(0), Time: at,
		Open: tradePrice, High: tradePrice, Low: tradePrice, Close: tradePrice, Volume: 1}}}); err != nil {
		return nil, err
	}
	if _, err := ing.CloseAndRecv(); err != nil {
		return nil, fmt.Errorf("IngestPrices: %w", err)
	}
	ids := make([]int64, failoverPortfolios)
	for i := range ids {
		u, err := pc.CreateUser(actx, &portfoliov1.CreateUserRequest{Email: fmt.Sprintf("failover%d@bench.pgfleet.dev", i)})
		if err != nil {
			return nil, fmt.Errorf("CreateUser: %w", err)
		}
		p, err := pc.CreatePortfolio(actx, &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "failover"})
		if err != nil {
			return nil, fmt.Errorf("CreatePortfolio: %w", err)
		}
		ids[i] = p.GetPortfolio().GetId()
		if _, err := pc.Deposit(actx, &portfoliov1.DepositRequest{PortfolioId: ids[i], Amount: "1000000000000", RequestId: "cash"}); err != nil {
			return nil, fmt.Errorf("deposit: %w", err)
		}
	}
	return ids, nil
}

// trade is one ExecuteTrade of the failover load and how it ended.
type trade struct {
	rid        string
	start, end time.Time
	err        error
}

// tradeLoad sends trades from failoverClients workers, each request with a request_id of its
// own, until stopped, and keeps every one.
type tradeLoad struct {
	mu     sync.Mutex
	trades []trade
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (b *bench) startTrades(pc portfoliov1.PortfolioServiceClient, ids []int64) *tradeLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &tradeLoad{cancel: cancel}
	actx := outgoing(ctx, b.adminTok)
	for w := range failoverClients {
		l.wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				t := trade{rid: "w" + strconv.Itoa(w) + "-" + strconv.Itoa(i), start: time.Now()}
				// A bounded wait per call: one stuck on the dead server must not stall the load.
				callCtx, callCancel := context.WithTimeout(actx, 10*time.Second)
				_, t.err = pc.ExecuteTrade(callCtx, &portfoliov1.ExecuteTradeRequest{PortfolioId: ids[w%len(ids)], Symbol: symbolOf(0),
					Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: t.rid})
				callCancel()
				t.end = time.Now()
				if ctx.Err() != nil && t.err != nil {
					return // cut by stop: neither acknowledged nor failed
				}
				l.mu.Lock()
				l.trades = append(l.trades, t)
				l.mu.Unlock()
				if t.err != nil {
					sleepCtx(ctx, 20*time.Millisecond) // a failing service is not hammered
				}
			}
		})
	}
	return l
}

// stop ends the load, waits for the calls in flight and returns every trade.
func (l *tradeLoad) stop() []trade {
	l.cancel()
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.trades)
}

// summary is the rate and latency of the trades acknowledged in [from, to).
func (l *tradeLoad) summary(from, to time.Time) result {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := result{clients: failoverClients}
	var lat []time.Duration
	begin := to
	for _, t := range l.trades {
		if t.end.Before(from) || !t.end.Before(to) {
			continue
		}
		if t.start.Before(begin) {
			begin = t.start
		}
		if t.err != nil {
			res.errs++
			if res.firstErr == "" {
				res.firstErr = t.err.Error()
			}
			continue
		}
		res.ops++
		lat = append(lat, t.end.Sub(t.start))
	}
	res.window = to.Sub(begin)
	slices.Sort(lat)
	res.p50, res.p99 = percentiles(lat)
	return res
}

// after counts the trades sent after t: acknowledged, all.
func (l *tradeLoad) after(t time.Time) (acked, all int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tr := range l.trades {
		if tr.start.After(t) {
			all++
			if tr.err == nil {
				acked++
			}
		}
	}
	return acked, all
}

// first is when the first trade sent after t was acknowledged.
func (l *tradeLoad) first(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, tr := range l.trades {
		if tr.err == nil && tr.start.After(t) && (first.IsZero() || tr.end.Before(first)) {
			first = tr.end
		}
	}
	return first
}

func (l *tradeLoad) lastErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.trades) - 1; i >= 0; i-- {
		if l.trades[i].err != nil {
			return l.trades[i].err
		}
	}
	return errors.New("none")
}

// healthLog polls a server's overall gRPC health every 20 ms and keeps every change.
type healthLog struct {
	mu      sync.Mutex
	changes []healthChange
	cancel  context.CancelFunc
	done    chan struct{}
}

type healthChange struct {
	at      time.Time
	serving bool
}

func watchHealth(ctx context.Context, conn *grpc.ClientConn) *healthLog {
	ctx, cancel := context.WithCancel(ctx)
	h := &healthLog{cancel: cancel, done: make(chan struct{})}
	hc := healthpb.NewHealthClient(conn)
	go func() {
		defer close(h.done)
		for ctx.Err() == nil {
			callCtx, callCancel := context.WithTimeout(ctx, time.Second)
			resp, err := hc.Check(callCtx, &healthpb.HealthCheckRequest{})
			callCancel()
			serving := err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
			h.mu.Lock()
			if len(h.changes) == 0 || h.changes[len(h.changes)-1].serving != serving {
				h.changes = append(h.changes, healthChange{at: time.Now(), serving: serving})
			}
			h.mu.Unlock()
			sleepCtx(ctx, 20*time.Millisecond)
		}
	}()
	return h
}

func (h *healthLog) stop() {
	h.cancel()
	<-h.done
}

// leftAfter reports whether the server was NOT_SERVING (or unreachable) at some point after t.
func (h *healthLog) leftAfter(t time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.changes {
		if c.at.After(t) && !c.serving {
			return true
		}
	}
	return false
}

// backAfter is how long after t the server turned SERVING again, having been NOT_SERVING
// (or unreachable) after t; 0 if it has not (yet).
func (h *healthLog) backAfter(t time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	left := false
	for _, c := range h.changes {
		if !c.at.After(t) {
			continue
		}
		if !c.serving {
			left = true
		} else if left {
			return c.at.Sub(t)
		}
	}
	return 0
}
