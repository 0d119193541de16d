package api_test

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

// The invariant tests are a Jepsen "bank" check: many clients trade, deposit and withdraw
// concurrently on a few shared portfolios, every answer is recorded, and afterwards the
// database must agree with itself (cash = ledger, positions = trades) and with what the
// clients were told (every acknowledged write stored once, nothing else stored).

// workload is a randomized run of concurrent clients on shared portfolios.
type workload struct {
	portfolios int    // shared by all clients
	clients    int    // concurrent gRPC clients
	ops        int    // operations per client
	funding    string // first deposit into each portfolio
	// weights of buy, sell, deposit and withdraw among the operations.
	weights [4]int
	// currencies of the portfolios, in turn (default USD), and the symbols traded (default
	// symbols).
	currencies, symbols []string
}

// bank is the workload the correct service must survive without a single violation.
var bank = workload{portfolios: 4, clients: 64, ops: 40, funding: "10000", weights: [4]int{4, 3, 2, 2}}

// history is what a workload's clients were told.
type history struct {
	mu        sync.Mutex
	trades    map[string]*portfoliov1.Trade        // acknowledged trades by request_id
	movements map[string]*portfoliov1.CashMovement // acknowledged deposits and withdrawals by request_id
	ops       int                                  // operations answered, funding included
	refused   int                                  // FAILED_PRECONDITION answers: overdraft, oversell
	failures  map[string]int                       // every other error, by code
	example   string                               // the first of them
	elapsed   time.Duration                        // of the concurrent phase

	// Every acknowledged operation is sent again at once, to the other instance when there
	// are two: a repeated request_id must be answered exactly as the first time.
	resent, resentDiffer int
	resentExample        string
}

func newHistory() *history {
	return &history{
		trades:    map[string]*portfoliov1.Trade{},
		movements: map[string]*portfoliov1.CashMovement{},
		failures:  map[string]int{},
	}
}

// fail records an answer no correct service gives.
func (h *history) fail(code, format string, args ...any) {
	h.failures[code]++
	if h.example == "" {
		h.example = fmt.Sprintf(format, args...)
	}
}

// answer records one call's outcome; ok stores the acknowledged write and checks it against
// the request, returning a mismatch or "".
func (h *history) answer(rpc, rid string, err error, ok func() string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops++
	switch st := status.Convert(err); st.Code() {
	case codes.OK:
		if bad := ok(); bad != "" {
			h.fail("wrong answer", "%s %s: %s", rpc, rid, bad)
		}
	case codes.FailedPrecondition:
		h.refused++
	default:
		h.fail(st.Code().String(), "%s %s: %v", rpc, rid, err)
	}
}

// resend sends an acknowledged request again and records whether the answer is the first
// one (first, acknowledged) exactly.
func (h *history) resend(rpc, rid string, first proto.Message, send func() (proto.Message, error)) {
	again, err := send()
	d := sameAnswer(first, nil, again, err)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resent++
	if d != "" {
		h.resentDiffer++
		if h.resentExample == "" {
			h.resentExample = fmt.Sprintf("%s %s re-sent: %s", rpc, rid, d)
		}
	}
}

// failureCount is the number of client-visible failures.
func (h *history) failureCount() int {
	n := 0
	for _, c := range h.failures {
		n += c
	}
	return n
}

var symbols = []string{"AAPL", "MSFT", "XOM"}

// run creates w.portfolios portfolios, funds them, and runs w.clients clients against them,
// client i calling servers[i % len(servers)].
func (w workload) run(t *testing.T, servers ...portfoliov1.PortfolioServiceClient) *history {
	t.Helper()
	h := newHistory()
	ids := make([]int64, w.portfolios)
	for i := range ids {
		email := fmt.Sprintf("bank%d@example.com", i)
		currency := "USD"
		if len(w.currencies) > 0 {
			currency = w.currencies[i%len(w.currencies)]
		}
		ids[i] = env{client: servers[0]}.newPortfolioIn(t, email, currency, "0")
		rid := fmt.Sprintf("fund-%d", i)
		resp, err := servers[0].Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: ids[i], Amount: w.funding, RequestId: rid})
		if err != nil {
			t.Fatalf("Deposit(funding) = %v", err)
		}
		h.movements[rid] = resp.GetMovement()
		h.ops++
	}

	seed := uint64(time.Now().UnixNano())
	t.Logf("workload seed %d: %d clients x %d ops on %d portfolios, %d server(s)", seed, w.clients, w.ops, w.portfolios, len(servers))
	start := time.Now()
	var wg sync.WaitGroup
	for c := range w.clients {
		wg.Go(func() {
			w.client(t.Context(), servers[c%len(servers)], servers[(c+1)%len(servers)], rand.New(rand.NewPCG(seed, uint64(c))), c, ids, h)
		})
	}
	wg.Wait()
	h.elapsed = time.Since(start)
	return h
}

// client runs one client's operations, each with a request_id of its own, through c; it
// sends every acknowledged one again through other.
func (w workload) client(ctx context.Context, c, other portfoliov1.PortfolioServiceClient, r *rand.Rand, n int, ids []int64, h *history) {
	total := w.weights[0] + w.weights[1] + w.weights[2] + w.weights[3]
	traded := w.symbols
	if len(traded) == 0 {
		traded = symbols
	}
	for i := range w.ops {
		pid := ids[r.IntN(len(ids))]
		rid := fmt.Sprintf("c%d-%d", n, i)
		op, pick := 0, r.IntN(total)
		for pick >= w.weights[op] {
			pick -= w.weights[op]
			op++
		}
		switch op {
		case 0, 1:
			side := portfoliov1.Side_SIDE_BUY
			if op == 1 {
				side = portfoliov1.Side_SIDE_SELL
			}
			req := &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: traded[r.IntN(len(traded))], Side: side,
				Quantity: randomQuantity(r), RequestId: rid}
			resp, err := c.ExecuteTrade(ctx, req)
			h.answer("ExecuteTrade", rid, err, func() string {
				tr := resp.GetTrade()
				if tr.GetRequestId() != rid || tr.GetPortfolioId() != pid || tr.GetSymbol() != req.GetSymbol() ||
					tr.GetSide() != side || !sameDecimal(tr.GetQuantity(), req.GetQuantity()) {
					return fmt.Sprintf("trade %v does not match request %v", tr, req)
				}
				h.trades[rid] = tr
				return ""
			})
			if err == nil {
				h.resend("ExecuteTrade", rid, resp, func() (proto.Message, error) { return other.ExecuteTrade(ctx, req) })
			}
		case 2, 3:
			amount := fmt.Sprintf("%d.%02d", 1+r.IntN(500), r.IntN(100))
			var m *portfoliov1.CashMovement
			var err error
			var first proto.Message
			var again func() (proto.Message, error)
			rpc := "Deposit"
			if op == 2 {
				req := &portfoliov1.DepositRequest{PortfolioId: pid, Amount: amount, RequestId: rid}
				var resp *portfoliov1.DepositResponse
				resp, err = c.Deposit(ctx, req)
				m, first = resp.GetMovement(), resp
				again = func() (proto.Message, error) { return other.Deposit(ctx, req) }
			} else {
				rpc = "Withdraw"
				req := &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: amount, RequestId: rid}
				var resp *portfoliov1.WithdrawResponse
				resp, err = c.Withdraw(ctx, req)
				m, amount, first = resp.GetMovement(), "-"+amount, resp
				again = func() (proto.Message, error) { return other.Withdraw(ctx, req) }
			}
			h.answer(rpc, rid, err, func() string {
				if m.GetRequestId() != rid || m.GetPortfolioId() != pid || !sameDecimal(m.GetAmount(), amount) {
					return fmt.Sprintf("movement %v does not match amount %s", m, amount)
				}
				h.movements[rid] = m
				return ""
			})
			if err == nil {
				h.resend(rpc, rid, first, again)
			}
		}
	}
}

// randomQuantity is a small whole or fractional number of shares.
func randomQuantity(r *rand.Rand) string {
	if r.IntN(2) == 0 {
		return strconv.Itoa(1 + r.IntN(5))
	}
	return fmt.Sprintf("%d.%03d", r.IntN(3), 1+r.IntN(999))
}

// sameDecimal reports whether two decimal strings are the same number ("100" and "100.000000").
func sameDecimal(a, b string) bool {
	x, okA := new(big.Rat).SetString(a)
	y, okB := new(big.Rat).SetString(b)
	return okA && okB && x.Cmp(y) == 0
}

// checkInvariants fails t for every violation the database holds, given the history of what
// the clients were told.
func checkInvariants(t *testing.T, pool *pgxpool.Pool, h *history) {
	t.Helper()
	bad, err := invariantViolations(t.Context(), pool, h)
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
	const shown = 20
	for _, v := range bad[:min(len(bad), shown)] {
		t.Errorf("invariant violated: %s", v)
	}
	if len(bad) > shown {
		t.Errorf("... and %d more invariant violations", len(bad)-shown)
	}
}

// invariantViolations reads the database and returns every violation of the bank's invariants.
func invariantViolations(ctx context.Context, pool *pgxpool.Pool, h *history) ([]string, error) {
	var bad []string
	// Every check is one SQL query returning a description per violating row.
	checks := []struct{ name, sql string }{
		{"cash = ledger", `
			SELECT format('portfolio %s: cash %s, ledger sums to %s', p.id, p.cash, COALESCE(l.total, 0))
			FROM portfolio.portfolios p
			LEFT JOIN (SELECT portfolio_id, sum(amount) AS total FROM portfolio.cash_movements GROUP BY portfolio_id) l
				ON l.portfolio_id = p.id
			WHERE p.cash <> COALESCE(l.total, 0) OR p.cash < 0
			ORDER BY p.id`},
		{"positions = trades", `
			WITH t AS (
				SELECT portfolio_id, symbol, sum(CASE side WHEN 'SIDE_BUY' THEN quantity ELSE -quantity END) AS net
				FROM portfolio.trades GROUP BY portfolio_id, symbol)
			SELECT format('portfolio %s %s: trades net %s, position %s (cost basis %s)',
				COALESCE(t.portfolio_id, p.portfolio_id), COALESCE(t.symbol, p.symbol),
				COALESCE(t.net, 0), COALESCE(p.quantity::text, 'missing'), COALESCE(p.cost_basis::text, '-'))
			FROM t FULL JOIN portfolio.positions p ON p.portfolio_id = t.portfolio_id AND p.symbol = t.symbol
			WHERE COALESCE(t.net, 0) <> COALESCE(p.quantity, 0) OR t.net < 0 OR p.quantity <= 0 OR p.cost_basis < 0
			ORDER BY 1`},
		{"one movement per trade", `
			SELECT format('trade %s (%s %s %s x %s = %s): %s cash movements [%s]', t.id, t.request_id, t.side,
				t.symbol, t.quantity, t.amount, count(m.id), string_agg(m.kind || ' ' || m.amount, ', '))
			FROM portfolio.trades t LEFT JOIN portfolio.cash_movements m ON m.trade_id = t.id
			GROUP BY t.id
			HAVING count(m.id) <> 1
				OR bool_or(m.portfolio_id <> t.portfolio_id OR m.request_id <> t.request_id
					OR m.amount <> CASE t.side WHEN 'SIDE_BUY' THEN -t.amount ELSE t.amount END
					OR m.kind <> CASE t.side WHEN 'SIDE_BUY' THEN 'CASH_MOVEMENT_KIND_BUY' ELSE 'CASH_MOVEMENT_KIND_SELL' END)
				OR t.amount <> round(t.quantity * t.price, 6)
			ORDER BY t.id`},
		{"movement kinds", `
			SELECT format('cash movement %s: %s of %s, trade %s', id, kind, amount, COALESCE(trade_id::text, 'none'))
			FROM portfolio.cash_movements
			WHERE (trade_id IS NULL) <> (kind IN ('CASH_MOVEMENT_KIND_DEPOSIT', 'CASH_MOVEMENT_KIND_WITHDRAWAL'))
				OR (kind IN ('CASH_MOVEMENT_KIND_DEPOSIT', 'CASH_MOVEMENT_KIND_SELL') AND amount <= 0)
				OR (kind IN ('CASH_MOVEMENT_KIND_WITHDRAWAL', 'CASH_MOVEMENT_KIND_BUY') AND amount >= 0)
			ORDER BY id`},
	}
	for _, c := range checks {
		rows, _ := pool.Query(ctx, c.sql)
		var found []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			found = append(found, c.name+": "+s)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		bad = append(bad, found...)
	}

	// Stored trades against acknowledged ones: no error is expected, so no response was
	// lost and the two sets must be equal.
	type storedTrade struct {
		id, portfolio                  int64
		rid, symbol, side, qty, amount string
		price                          string
	}
	rows, _ := pool.Query(ctx, `SELECT id, portfolio_id, request_id, symbol, side, quantity::text, price::text, amount::text
		FROM portfolio.trades ORDER BY id`)
	var trades []storedTrade
	for rows.Next() {
		var s storedTrade
		if err := rows.Scan(&s.id, &s.portfolio, &s.rid, &s.symbol, &s.side, &s.qty, &s.price, &s.amount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read trades: %w", err)
		}
		trades = append(trades, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read trades: %w", err)
	}
	seen := map[string]int{}
	for _, s := range trades {
		seen[s.rid]++
		a, ok := h.trades[s.rid]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("acknowledged trades: trade %d (request %s, %s %s %s) was never acknowledged",
				s.id, s.rid, s.side, s.qty, s.symbol))
		case a.GetId() != s.id || a.GetPortfolioId() != s.portfolio || a.GetSymbol() != s.symbol ||
			a.GetSide().String() != s.side || !sameDecimal(a.GetQuantity(), s.qty) ||
			!sameDecimal(a.GetAmount(), s.amount) || !sameDecimal(a.GetPrice(), s.price):
			bad = append(bad, fmt.Sprintf("acknowledged trades: request %s acknowledged as %v, stored as %+v", s.rid, a, s))
		}
		if !sameDecimal(s.price, prices[s.symbol]) {
			bad = append(bad, fmt.Sprintf("trade prices: trade %d priced %s at %s, the stock service says %s",
				s.id, s.symbol, s.price, prices[s.symbol]))
		}
	}
	for _, rid := range slices.Sorted(maps.Keys(h.trades)) {
		if n := seen[rid]; n != 1 {
			bad = append(bad, fmt.Sprintf("acknowledged trades: trade %d (request %s) stored %d times, want once",
				h.trades[rid].GetId(), rid, n))
		}
	}

	// Deposits and withdrawals likewise.
	rows, _ = pool.Query(ctx, `SELECT id, portfolio_id, request_id, amount::text FROM portfolio.cash_movements
		WHERE trade_id IS NULL ORDER BY id`)
	seen = map[string]int{}
	for rows.Next() {
		var id, portfolio int64
		var rid, amount string
		if err := rows.Scan(&id, &portfolio, &rid, &amount); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read cash movements: %w", err)
		}
		seen[rid]++
		a, ok := h.movements[rid]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("acknowledged movements: movement %d (request %s, %s) was never acknowledged", id, rid, amount))
		case a.GetId() != id || a.GetPortfolioId() != portfolio || !sameDecimal(a.GetAmount(), amount):
			bad = append(bad, fmt.Sprintf("acknowledged movements: request %s acknowledged as %v, stored as %d of %s in portfolio %d",
				rid, a, id, amount, portfolio))
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read cash movements: %w", err)
	}
	for _, rid := range slices.Sorted(maps.Keys(h.movements)) {
		if n := seen[rid]; n != 1 {
			bad = append(bad, fmt.Sprintf("acknowledged movements: movement %d (request %s) stored %d times, want once",
				h.movements[rid].GetId(), rid, n))
		}
	}
	return bad, nil
}

// checkNoFailures fails t if any client saw an error other than FAILED_PRECONDITION, or if a
// re-sent operation was answered otherwise than the first time.
func checkNoFailures(t *testing.T, h *history) {
	t.Helper()
	if n := h.failureCount(); n > 0 {
		t.Errorf("%d client-visible failures %v, e.g. %s", n, h.failures, h.example)
	}
	t.Logf("re-sent OK operations answered differently: %d/%d", h.resentDiffer, h.resent)
	if h.resentDiffer > 0 {
		t.Errorf("re-sent OK operations answered differently: %d/%d, e.g. %s", h.resentDiffer, h.resent, h.resentExample)
	}
}

// logRun prints the throughput and the retries the servers' Retriers counted.
func logRun(t *testing.T, h *history, retriers ...*retry.Retrier) {
	t.Helper()
	var s retry.Stats
	for _, r := range retriers {
		st := r.Stats()
		s.Operations += st.Operations
		s.Retries += st.Retries
		s.Exhausted += st.Exhausted
		s.SerializationFailures += st.SerializationFailures
		s.Deadlocks += st.Deadlocks
		s.LockTimeouts += st.LockTimeouts
	}
	secs := h.elapsed.Seconds()
	t.Logf("%d ops in %v (%.0f ops/s): %d trades (%.0f trades/s), %d deposits/withdrawals, %d refused (FAILED_PRECONDITION), %d failed",
		h.ops, h.elapsed.Round(time.Millisecond), float64(h.ops)/secs, len(h.trades), float64(len(h.trades))/secs,
		len(h.movements), h.refused, h.failureCount())
	t.Logf("retrier: %d operations, %d retries (%d serialization failures, %d deadlocks, %d lock timeouts), %d exhausted",
		s.Operations, s.Retries, s.SerializationFailures, s.Deadlocks, s.LockTimeouts, s.Exhausted)
}

// checkNoConflicts fails t if any transaction failed to serialize or deadlocked: under the
// portfolio lock, transactions of one portfolio are serial and those of different portfolios
// share no rows, so a conflict is a false one (SERIALIZABLE's page-level predicate locks made
// hundreds per run, and some ran out of retries).
func checkNoConflicts(t *testing.T, retriers ...*retry.Retrier) {
	t.Helper()
	for _, r := range retriers {
		if s := r.Stats(); s.SerializationFailures > 0 || s.Deadlocks > 0 {
			t.Errorf("%d serialization failures and %d deadlocks, want none: writers of different portfolios conflicted",
				s.SerializationFailures, s.Deadlocks)
		}
	}
}

func TestInvariants_oneInstance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := bank.run(t, e.client)
	logRun(t, h, e.retry)
	checkNoFailures(t, h)
	checkNoConflicts(t, e.retry)
	checkInvariants(t, e.pool, h)
}

func TestInvariants_twoInstances(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	shared := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t, migrations.Set)} // one database, two instances
	// Two replicas: each its own pool, Retrier and Locker; only the database is shared, so the
	// portfolio locks must hold across them.
	a := serve(t, stock.Addr, api.New, shared)
	b := serve(t, stock.Addr, api.New, shared)
	h := bank.run(t, a.client, b.client)
	logRun(t, h, a.retry, b.retry)
	checkNoFailures(t, h)
	checkNoConflicts(t, a.retry, b.retry)
	checkInvariants(t, a.pool, h)
}

// TestInvariants_weakenedPathFails is the negative control: without the portfolio lock (and
// at READ COMMITTED), a contended workload must break an invariant, or the checker proves
// nothing.
func TestInvariants_weakenedPathFails(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	e := serve(t, stock.Addr, api.NewWeakened, nil)
	contended := workload{portfolios: 1, clients: 64, ops: 20, funding: "100000", weights: [4]int{2, 1, 3, 2}}
	h := contended.run(t, e.client)
	logRun(t, h, e.retry)
	if n := h.failureCount(); n > 0 {
		t.Logf("weakened server: %d client-visible failures %v, e.g. %s", n, h.failures, h.example)
	}
	bad, err := invariantViolations(t.Context(), e.pool, h)
	if err != nil {
		t.Fatalf("check invariants: %v", err)
	}
	if len(bad) == 0 {
		t.Fatal("the checker found no violation on the weakened server (READ COMMITTED, no lock): it cannot tell a broken service from a correct one")
	}
	t.Logf("the checker found %d violations on the weakened server, e.g.:\n  %s", len(bad), strings.Join(bad[:min(len(bad), 3)], "\n  "))
}

// TestInvariants_unlockedRepeatableRead shows what holds without the portfolio lock, as when
// replicas lock different keys during a rollout: REPEATABLE READ alone keeps every invariant,
// because every money move updates its portfolio's row, so two concurrent moves of one
// portfolio conflict (40001) and one is retried on the other's result. Conflicts may run out
// of retries (ABORTED, nothing written); no answer may be wrong.
func TestInvariants_unlockedRepeatableRead(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	e := serve(t, stock.Addr, api.NewUnlocked, nil)
	contended := workload{portfolios: 1, clients: 64, ops: 20, funding: "100000", weights: [4]int{2, 1, 3, 2}}
	h := contended.run(t, e.client)
	logRun(t, h, e.retry)
	if n := h.failureCount(); n > 0 {
		t.Logf("unlocked server: %d client-visible failures %v, e.g. %s", n, h.failures, h.example)
	}
	for code := range h.failures {
		if code != codes.Aborted.String() {
			t.Errorf("unlocked server answered %d calls %s, e.g. %s; only ABORTED (a conflict out of retries) is expected",
				h.failures[code], code, h.example)
		}
	}
	if h.resentDiffer > 0 {
		t.Errorf("re-sent OK operations answered differently: %d/%d, e.g. %s", h.resentDiffer, h.resent, h.resentExample)
	}
	checkInvariants(t, e.pool, h)
}

// auditDDL makes every write of portfolio state (an insert into trades or cash_movements, an
// update of portfolios, any change of positions) record, from inside the writing transaction
// itself, its isolation level (SHOW transaction_isolation) and the exclusive advisory locks its
// session holds.
const auditDDL = `
CREATE TABLE public.write_audit (
	tbl            text NOT NULL,
	op             text NOT NULL,
	isolation      text NOT NULL,
	advisory_locks int NOT NULL
);
CREATE FUNCTION public.audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.write_audit VALUES (TG_TABLE_NAME, TG_OP, current_setting('transaction_isolation'),
		(SELECT count(*) FROM pg_locks
		 WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND mode = 'ExclusiveLock' AND granted));
	RETURN NULL;
END $$;
CREATE TRIGGER audit AFTER INSERT ON portfolio.trades FOR EACH ROW EXECUTE FUNCTION public.audit_write();
CREATE TRIGGER audit AFTER INSERT ON portfolio.cash_movements FOR EACH ROW EXECUTE FUNCTION public.audit_write();
CREATE TRIGGER audit AFTER UPDATE ON portfolio.portfolios FOR EACH ROW EXECUTE FUNCTION public.audit_write();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON portfolio.positions FOR EACH ROW EXECUTE FUNCTION public.audit_write();`

// TestMoneyMoves_lockedWrites proves, from inside the transactions a deposit, a buy, a sell
// and a withdrawal commit, that every write of portfolio state runs REPEATABLE READ holding an
// exclusive advisory lock (the portfolio's: the lock, not the isolation level, orders a
// portfolio's writes; see api.writeTx), and that the weakened server used by the negative control
// does neither.
func TestMoneyMoves_lockedWrites(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	tests := []struct {
		name          string
		build         func(api.Deps) *api.Server
		wantIsolation string
		wantLocked    bool
	}{
		{"safe", api.New, "repeatable read", true},
		{"weakened", api.NewWeakened, "read committed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := serve(t, stock.Addr, tt.build, nil)
			pool := e.pool
			if _, err := pool.Exec(t.Context(), auditDDL); err != nil { // before the first write
				t.Fatalf("install audit triggers: %v", err)
			}
			pid := e.newPortfolio(t, "iso@example.com", "1000")
			for _, side := range []portfoliov1.Side{portfoliov1.Side_SIDE_BUY, portfoliov1.Side_SIDE_SELL} {
				if _, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid,
					Symbol: "AAPL", Side: side, Quantity: "2", RequestId: side.String()}); err != nil {
					t.Fatalf("ExecuteTrade(%v) = %v", side, err)
				}
			}
			if _, err := e.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "10", RequestId: "w"}); err != nil {
				t.Fatalf("Withdraw = %v", err)
			}

			rows, _ := pool.Query(t.Context(), `SELECT tbl, op, isolation, advisory_locks FROM public.write_audit`)
			n := map[string]int{}
			for rows.Next() {
				var tbl, op, iso string
				var locks int
				if err := rows.Scan(&tbl, &op, &iso, &locks); err != nil {
					t.Fatal(err)
				}
				n[tbl+" "+op]++
				if iso != tt.wantIsolation {
					t.Errorf("%s on %s ran at isolation %q, want %q", op, tbl, iso, tt.wantIsolation)
				}
				if got := locks > 0; got != tt.wantLocked {
					t.Errorf("%s on %s held %d exclusive advisory locks, want locked = %v", op, tbl, locks, tt.wantLocked)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			// The seed deposit, two trades with a movement each, and the withdrawal: four cash
			// updates; the buy opens the position, the sale of all of it removes it.
			want := map[string]int{"trades INSERT": 2, "cash_movements INSERT": 4, "portfolios UPDATE": 4,
				"positions INSERT": 1, "positions DELETE": 1}
			if d := cmp.Diff(want, n); d != "" {
				t.Errorf("audited writes (-want +got):\n%s", d)
			}
		})
	}
}
