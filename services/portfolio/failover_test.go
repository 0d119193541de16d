package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// failoverWait bounds each wait of the failover test (health, recovery, the load's progress):
// generous, for a loaded machine; every wait polls and ends as soon as its condition holds.
const failoverWait = 2 * time.Minute

// TestFailover runs the stock and portfolio binaries, as processes, on a primary with a
// synchronous hot standby, each with a DATABASE_URL that lists the primary then the standby
// with target_session_attrs=read-write. Under a load of trades and deposits with unique
// request_ids, the primary dies (immediate shutdown) and the standby is promoted. Then: every
// acknowledged request is in the new primary's ledger; every request sent again with its
// request_id, acknowledged or failed, executes at most once and an acknowledged one answers
// its first answer; both services went NOT_SERVING and SERVING again as the same processes.
//
// It lives with the portfolio service because what it guards is the money ledger's promise;
// the stock service runs beside it because trades are priced through it, as in production.
func TestFailover(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/portfolio"); err != nil {
		t.Fatal(err)
	}
	r := pgtest.NewReplicatedCluster(t, pgtest.Synchronous())
	_, stockStandby := r.NewDBURLs(t)
	_, portfolioStandby := r.NewDBURLs(t)
	stockDB, portfolioDB := database(t, stockStandby), database(t, portfolioStandby)

	stock := apptest.StartProcess(t, filepath.Join(bin, "stock"), "DATABASE_URL="+r.FailoverURL(stockDB))
	// MAX_PRICE_AGE=0: trades execute at the seeded price, however old it gets.
	portfolio := apptest.StartProcess(t, filepath.Join(bin, "portfolio"), "DATABASE_URL="+r.FailoverURL(portfolioDB),
		"STOCK_ADDR="+stock.Addr, "STOCK_TIMEOUT=10s", "MAX_PRICE_AGE=0")
	pids := map[string]int{"stock": stock.Pid(), "portfolio": portfolio.Pid()}
	stockConn := apptest.Dial(t, stock.Addr, authtest.Admin(t))
	portfolioConn := apptest.Dial(t, portfolio.Addr, authtest.Admin(t))
	seedPrices(t, stockv1.NewStockServiceClient(stockConn))
	client := portfoliov1.NewPortfolioServiceClient(portfolioConn)
	pid := newFundedPortfolio(t, client)

	watches := map[string]*healthWatch{"stock": watchHealth(t, stockConn), "portfolio": watchHealth(t, portfolioConn)}
	load := startLoad(t, client, pid, 4)
	load.waitAcks(t, 20, time.Time{})

	// died is taken before the stop: the services may see their connections drop before
	// StopPrimary returns. gone is when the primary has exited.
	died := time.Now()
	r.StopPrimary(t)
	gone := time.Now()
	for name, w := range watches {
		w.await(t, name, died, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	notServing := time.Since(died)
	r.Promote(t)
	promoted := time.Since(died)
	for name, w := range watches {
		w.await(t, name, died, healthpb.HealthCheckResponse_SERVING)
	}
	serving := time.Since(died)
	first := load.waitAcks(t, 20, gone) // acknowledged requests sent after the primary died
	ops := load.stop()
	t.Logf("primary died: both services NOT_SERVING after %v, standby promoted after %v, both SERVING after %v, first trade sent after its death acknowledged after %v",
		notServing.Round(time.Millisecond), promoted.Round(time.Millisecond), serving.Round(time.Millisecond), first.Sub(died).Round(time.Millisecond))

	for name, p := range map[string]*apptest.Process{"stock": stock, "portfolio": portfolio} {
		if p.Exited() || p.Pid() != pids[name] {
			t.Errorf("%s: pid %d (exited %t), want the same process, pid %d", name, p.Pid(), p.Exited(), pids[name])
		}
	}

	ledger := pgtest.Connect(t, r.StandbyURL(portfolioDB)) // the new primary
	acked, failed := 0, 0
	codes := map[string]int{}
	for _, o := range ops {
		if o.err != nil {
			failed++
			codes[status.Code(o.err).String()+" "+string(apierr.ReasonOf(o.err))]++
			// A failover is an outage (UNAVAILABLE), a call cut by its deadline, or at worst a
			// lock wait past its bound on a slow machine: never an INTERNAL error.
			if c := status.Code(o.err); c != grpccodes.Unavailable && c != grpccodes.DeadlineExceeded && c != grpccodes.Aborted {
				t.Errorf("%s %s failed with %v, want UNAVAILABLE (or DEADLINE_EXCEEDED, ABORTED)", o.kind, o.rid, o.err)
			}
			continue
		}
		acked++
		if got, want := o.storedID(t, ledger, pid), o.ackedID(); got != want {
			t.Errorf("%s %s acknowledged with id %d; the new primary's ledger has id %d (0: none)", o.kind, o.rid, want, got)
		}
	}
	t.Logf("%d requests: %d acknowledged, %d failed (%v)", len(ops), acked, failed, codes)

	// Every request again: an acknowledged one answers its first answer, a failed one executes
	// now (or answers the execution its lost answer reported), and none executes twice.
	for _, o := range ops {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		resp, err := o.send(ctx, client, pid)
		cancel()
		if err != nil {
			t.Errorf("%s %s sent again: %v", o.kind, o.rid, err)
			continue
		}
		if o.err == nil {
			if d := cmp.Diff(o.resp, resp, protocmp.Transform()); d != "" {
				t.Errorf("%s %s sent again: answer differs from the first (-first +again):\n%s", o.kind, o.rid, d)
			}
		}
		if n := o.stored(t, ledger, pid); n != 1 {
			t.Errorf("%s %s: %d executions stored, want 1", o.kind, o.rid, n)
		}
	}
	var trades, deposits int
	if err := ledger.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM portfolio.trades WHERE portfolio_id = $1),
		(SELECT count(*) FROM portfolio.cash_movements WHERE portfolio_id = $1 AND kind = 'CASH_MOVEMENT_KIND_DEPOSIT' AND request_id <> 'funds')`,
		pid).Scan(&trades, &deposits); err != nil {
		t.Fatal(err)
	}
	if want := load.count("trade"); trades != want {
		t.Errorf("trades in the ledger = %d, want %d (one per request_id)", trades, want)
	}
	if want := load.count("deposit"); deposits != want {
		t.Errorf("deposits in the ledger = %d, want %d (one per request_id)", deposits, want)
	}
}

// database is the database name of a URL.
func database(t *testing.T, url string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Database
}

// seedPrices gives the stock service AAPL at 100.
func seedPrices(t *testing.T, c stockv1.StockServiceClient) {
	t.Helper()
	if _, err := c.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{
		Stocks: []*stockv1.Stock{{Symbol: "AAPL", Name: "Apple Inc.", Currency: "USD"}}}); err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
	stream, err := c.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	at := timestamppb.New(time.Now().UTC().Truncate(time.Hour))
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{{Symbol: "AAPL", Time: at,
		Open: "100", High: "100", Low: "100", Close: "100", Volume: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("IngestPrices: %v", err)
	}
}

// newFundedPortfolio makes a user and a portfolio with cash for every trade of the test.
func newFundedPortfolio(t *testing.T, c portfoliov1.PortfolioServiceClient) int64 {
	t.Helper()
	u, err := c.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: "failover@example.com"})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	p, err := c.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "main"})
	if err != nil {
		t.Fatalf("CreatePortfolio: %v", err)
	}
	pid := p.GetPortfolio().GetId()
	if _, err := c.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "100000000", RequestId: "funds"}); err != nil {
		t.Fatalf("Deposit: %v", err)
	}
	return pid
}

// op is one request of the load and its first answer.
type op struct {
	kind       string // "trade" (a buy of one AAPL) or "deposit" (of 10)
	rid        string
	start, end time.Time
	resp       proto.Message // nil when err is set
	err        error
}

func (o *op) send(ctx context.Context, c portfoliov1.PortfolioServiceClient, pid int64) (proto.Message, error) {
	if o.kind == "trade" {
		return c.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
			Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: o.rid})
	}
	return c.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "10", RequestId: o.rid})
}

// ackedID is the id of the trade or cash movement the first answer reported.
func (o *op) ackedID() int64 {
	if r, ok := o.resp.(*portfoliov1.ExecuteTradeResponse); ok {
		return r.GetTrade().GetId()
	}
	return o.resp.(*portfoliov1.DepositResponse).GetMovement().GetId()
}

// table is where the ledger keeps o's kind of request.
func (o *op) table() string {
	if o.kind == "trade" {
		return "portfolio.trades"
	}
	return "portfolio.cash_movements"
}

// where selects o's rows of table() in portfolio $1: a trade's cash movement shares its
// request_id, deposits are the movements without a trade.
func (o *op) where() string {
	if o.kind == "trade" {
		return " WHERE portfolio_id = $1 AND request_id = $2"
	}
	return " WHERE portfolio_id = $1 AND request_id = $2 AND trade_id IS NULL"
}

// storedID is the id of o's row in the ledger, 0 if there is none.
func (o *op) storedID(t *testing.T, db *pgx.Conn, pid int64) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(t.Context(), "SELECT coalesce(max(id), 0) FROM "+o.table()+o.where(),
		pid, o.rid).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// stored counts o's rows in the ledger.
func (o *op) stored(t *testing.T, db *pgx.Conn, pid int64) int {
	t.Helper()
	var n int
	err := db.QueryRow(t.Context(), "SELECT count(*) FROM "+o.table()+o.where(),
		pid, o.rid).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// load sends trades and deposits from several goroutines until stopped, each request with a
// request_id of its own, and keeps every request with its first answer.
type load struct {
	mu   sync.Mutex
	ops  []*op
	done chan struct{}
	wg   sync.WaitGroup
}

func startLoad(t *testing.T, c portfoliov1.PortfolioServiceClient, pid int64, workers int) *load {
	t.Helper()
	l := &load{done: make(chan struct{})}
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.done:
					return
				default:
				}
				o := &op{kind: []string{"trade", "deposit"}[i%2], rid: fmt.Sprintf("w%d-%d", w, i), start: time.Now()}
				// A bounded wait per call: one stuck on a dead server must not stall the load.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				o.resp, o.err = o.send(ctx, c, pid)
				cancel()
				o.end = time.Now()
				l.mu.Lock()
				l.ops = append(l.ops, o)
				l.mu.Unlock()
				if o.err != nil {
					time.Sleep(20 * time.Millisecond) // a failing service is not hammered
				}
			}
		})
	}
	t.Cleanup(func() { l.stop() })
	return l
}

// waitAcks waits until n requests sent after since were acknowledged, a trade among them, and
// returns when the first such trade was.
func (l *load) waitAcks(t *testing.T, n int, since time.Time) time.Time {
	t.Helper()
	deadline := time.Now().Add(failoverWait)
	for {
		var first time.Time
		acks := 0
		l.mu.Lock()
		for _, o := range l.ops {
			if o.err == nil && o.start.After(since) {
				acks++
				if o.kind == "trade" && (first.IsZero() || o.end.Before(first)) {
					first = o.end
				}
			}
		}
		l.mu.Unlock()
		if acks >= n && !first.IsZero() {
			return first
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests acknowledged since %v, want %d and a trade within %v; last errors: %v", acks, since, n, failoverWait, l.lastErrors(3))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *load) lastErrors(n int) []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i := len(l.ops) - 1; i >= 0 && len(errs) < n; i-- {
		if l.ops[i].err != nil {
			errs = append(errs, l.ops[i].err)
		}
	}
	return errs
}

// stop ends the load, waits for the calls in flight and returns every request.
func (l *load) stop() []*op {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ops
}

// count is the number of requests of kind sent.
func (l *load) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.ops {
		if o.kind == kind {
			n++
		}
	}
	return n
}

// healthWatch polls a server's overall health and keeps every change, with its time.
type healthWatch struct {
	mu      sync.Mutex
	changes []healthChange
}

type healthChange struct {
	at     time.Time
	status healthpb.HealthCheckResponse_ServingStatus // UNKNOWN: no answer
}

func watchHealth(t *testing.T, conn *grpc.ClientConn) *healthWatch {
	t.Helper()
	w := &healthWatch{}
	hc := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			callCtx, callCancel := context.WithTimeout(ctx, time.Second)
			resp, err := hc.Check(callCtx, &healthpb.HealthCheckRequest{})
			callCancel()
			st := resp.GetStatus()
			if err != nil {
				st = healthpb.HealthCheckResponse_UNKNOWN
			}
			w.mu.Lock()
			if len(w.changes) == 0 || w.changes[len(w.changes)-1].status != st {
				w.changes = append(w.changes, healthChange{at: time.Now(), status: st})
			}
			w.mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return w
}

// await waits until the health, changed after since, is want.
func (w *healthWatch) await(t *testing.T, name string, since time.Time, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	deadline := time.Now().Add(failoverWait)
	for {
		w.mu.Lock()
		var last healthChange
		if len(w.changes) > 0 {
			last = w.changes[len(w.changes)-1]
		}
		history := fmt.Sprint(w.changes)
		w.mu.Unlock()
		if last.status == want && last.at.After(since) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: health not %v (changed after the primary died) within %v; changes: %s", name, want, failoverWait, history)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
