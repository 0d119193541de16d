package api_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

// watchWait bounds a test's wait for a stream to deliver what it polls for: generous, for a
// loaded machine; every wait ends as soon as its condition holds.
const watchWait = 2 * time.Minute

var (
	tradeExecuted = api.EventTypes[0]
	cashMoved     = api.EventTypes[1]
)

// storedEvents are the events of one portfolio in its outbox table, sequenced or not: per
// trade id and per cash movement id, how many events name it, and the payloads.
type storedEvents struct {
	trades    map[int64]int
	movements map[int64]int
	tradeMsgs map[int64]*portfoliov1.TradeExecuted
	cashMsgs  map[int64]*portfoliov1.CashMoved
	total     int
}

// eventsOf reads portfolio pid's events from the outbox table.
func eventsOf(t *testing.T, pool *pgxpool.Pool, pid int64) storedEvents {
	t.Helper()
	s := storedEvents{trades: map[int64]int{}, movements: map[int64]int{},
		tradeMsgs: map[int64]*portfoliov1.TradeExecuted{}, cashMsgs: map[int64]*portfoliov1.CashMoved{}}
	rows, err := pool.Query(t.Context(), `SELECT aggregatetype, type, payload FROM portfolio.outbox WHERE aggregateid = $1`,
		fmt.Sprint(pid))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var at, typ string
		var payload []byte
		if err := rows.Scan(&at, &typ, &payload); err != nil {
			t.Fatal(err)
		}
		s.total++
		if at != "portfolio" {
			t.Errorf("event of portfolio %d has aggregate type %q, want portfolio", pid, at)
		}
		switch typ {
		case tradeExecuted:
			m := &portfoliov1.TradeExecuted{}
			if err := proto.Unmarshal(payload, m); err != nil {
				t.Fatal(err)
			}
			s.trades[m.GetTrade().GetId()]++
			s.tradeMsgs[m.GetTrade().GetId()] = m
		case cashMoved:
			m := &portfoliov1.CashMoved{}
			if err := proto.Unmarshal(payload, m); err != nil {
				t.Fatal(err)
			}
			s.movements[m.GetMovement().GetId()]++
			s.cashMsgs[m.GetMovement().GetId()] = m
		default:
			t.Errorf("event type %q, want one of %v", typ, api.EventTypes)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// ledgerIDs returns the ids of portfolio pid's trades and of its deposits and withdrawals.
func ledgerIDs(t *testing.T, pool *pgxpool.Pool, pid int64) (trades, movements []int64) {
	t.Helper()
	err := pool.QueryRow(t.Context(), `SELECT
		coalesce((SELECT array_agg(id ORDER BY id) FROM portfolio.trades WHERE portfolio_id = $1), '{}'),
		coalesce((SELECT array_agg(id ORDER BY id) FROM portfolio.cash_movements WHERE portfolio_id = $1 AND trade_id IS NULL), '{}')`,
		pid).Scan(&trades, &movements)
	if err != nil {
		t.Fatal(err)
	}
	return trades, movements
}

// checkEventsMatchLedger: every trade and cash movement of portfolio pid in the ledger has
// exactly one event, and no event names anything the ledger lacks. It returns the events.
func checkEventsMatchLedger(t *testing.T, pool *pgxpool.Pool, pid int64) storedEvents {
	t.Helper()
	ev := eventsOf(t, pool, pid)
	trades, movements := ledgerIDs(t, pool, pid)
	check := func(kind string, ledger []int64, events map[int64]int) {
		in := map[int64]bool{}
		for _, id := range ledger {
			in[id] = true
			if n := events[id]; n != 1 {
				t.Errorf("%s %d is in the ledger with %d events, want 1", kind, id, n)
			}
		}
		for id := range events {
			if !in[id] {
				t.Errorf("%s %d has an event but is not in the ledger", kind, id)
			}
		}
	}
	check("trade", trades, ev.trades)
	check("cash movement", movements, ev.movements)
	return ev
}

// failAtCommit makes every transaction that writes a ledger row with a request_id starting
// with "rollback-" fail at COMMIT, after everything it wrote, its event included: a deferred
// constraint trigger runs then.
func failAtCommit(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	_, err := pool.Exec(t.Context(), `
		CREATE FUNCTION portfolio.test_fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.request_id LIKE 'rollback-%' THEN
				RAISE EXCEPTION 'test: % rolled back at commit', NEW.request_id;
			END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON portfolio.cash_movements
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION portfolio.test_fail_at_commit();`)
	if err != nil {
		t.Fatal(err)
	}
}

// TestEvents_atomicity: a refused trade or cash movement emits nothing, nor does one that
// rolls back at its COMMIT (after its event was appended); a committed one emits exactly one
// event with what its answer said; a repeat of a request_id emits nothing new.
// WatchPortfolioEvents from_oldest then delivers exactly those events.
func TestEvents_atomicity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	pid := e.newPortfolio(t, "ada@example.com", "1000")
	failAtCommit(t, e.pool)

	trade := func(rid string, side portfoliov1.Side, qty string) (*portfoliov1.ExecuteTradeResponse, error) {
		return e.client.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL", Side: side,
			Quantity: qty, RequestId: rid})
	}
	deposit := func(rid, amount string) (*portfoliov1.DepositResponse, error) {
		return e.client.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: pid, Amount: amount, RequestId: rid})
	}

	// Refused before anything is written.
	_, err := trade("overdraft", buy, "100") // 10,000 of AAPL with 1,000 of cash
	apptest.WantCode(t, err, codes.FailedPrecondition)
	_, err = trade("oversell", sell, "1")
	apptest.WantCode(t, err, codes.FailedPrecondition)
	_, err = e.client.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "5000", RequestId: "too-much"})
	apptest.WantCode(t, err, codes.FailedPrecondition)
	// Rolled back at COMMIT, event appended.
	_, err = trade("rollback-trade", buy, "1")
	apptest.WantCode(t, err, codes.Internal)
	_, err = deposit("rollback-deposit", "10")
	apptest.WantCode(t, err, codes.Internal)

	// Committed.
	t1, err := trade("t1", buy, "2")
	if err != nil {
		t.Fatal(err)
	}
	d1, err := deposit("d1", "50")
	if err != nil {
		t.Fatal(err)
	}
	t2, err := trade("t2", sell, "1")
	if err != nil {
		t.Fatal(err)
	}
	w1, err := e.client.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "10", RequestId: "w1"})
	if err != nil {
		t.Fatal(err)
	}
	// Repeats answer the first answer and emit nothing.
	if again, err := trade("t1", buy, "2"); err != nil || !proto.Equal(again, t1) {
		t.Fatalf("t1 again = %v, %v; want its first answer %v", again, err, t1)
	}
	if again, err := deposit("d1", "50"); err != nil || !proto.Equal(again.GetMovement(), d1.GetMovement()) {
		t.Fatalf("d1 again = %v, %v; want its first answer %v", again, err, d1)
	}

	ev := checkEventsMatchLedger(t, e.pool, pid)
	if ev.total != 5 { // the seed deposit, t1, d1, t2, w1
		t.Errorf("%d events, want 5 (seed deposit, t1, d1, t2, w1)", ev.total)
	}
	for _, tr := range []*portfoliov1.ExecuteTradeResponse{t1, t2} {
		want := &portfoliov1.TradeExecuted{Trade: tr.GetTrade(), Cash: tr.GetCash()}
		if d := cmp.Diff(want, ev.tradeMsgs[tr.GetTrade().GetId()], protocmp.Transform()); d != "" {
			t.Errorf("TradeExecuted of %s mismatch (-answer +event):\n%s", tr.GetTrade().GetRequestId(), d)
		}
	}
	want := &portfoliov1.CashMoved{Movement: d1.GetMovement(), Cash: d1.GetPortfolio().GetCash()}
	if d := cmp.Diff(want, ev.cashMsgs[d1.GetMovement().GetId()], protocmp.Transform()); d != "" {
		t.Errorf("CashMoved of d1 mismatch (-answer +event):\n%s", d)
	}
	want = &portfoliov1.CashMoved{Movement: w1.GetMovement(), Cash: w1.GetPortfolio().GetCash()}
	if d := cmp.Diff(want, ev.cashMsgs[w1.GetMovement().GetId()], protocmp.Transform()); d != "" {
		t.Errorf("CashMoved of w1 mismatch (-answer +event):\n%s", d)
	}

	// The same five through WatchPortfolioEvents, in commit order.
	wctx, cancel := context.WithTimeout(ctx, watchWait)
	defer cancel()
	stream, err := e.client.WatchPortfolioEvents(wctx, &portfoliov1.WatchPortfolioEventsRequest{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 5 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchPortfolioEvents after %v: %v", got, err)
		}
		for _, ev := range resp.GetEvents() {
			if ev.GetAggregateType() != "portfolio" || ev.GetAggregateId() != fmt.Sprint(pid) {
				t.Errorf("event %v: want aggregate portfolio %d", ev, pid)
			}
			got = append(got, ev.GetType())
		}
	}
	wantTypes := []string{cashMoved, tradeExecuted, cashMoved, tradeExecuted, cashMoved}
	if d := cmp.Diff(wantTypes, got); d != "" {
		t.Errorf("WatchPortfolioEvents types mismatch (-want +got):\n%s", d)
	}
}

// concurrentTrades sends rounds of trades on one portfolio from several goroutines at once
// (buy and sell of AAPL in turn, request_ids unique) until enough() says so after a round;
// rounds bounds them. It returns how many were acknowledged and how many failed.
func concurrentTrades(t *testing.T, c portfoliov1.PortfolioServiceClient, pid int64, tag string, rounds int, enough func() bool) (acked, failed int) {
	t.Helper()
	const workers, perWorker = 6, 5
	var mu sync.Mutex
	for r := range rounds {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range perWorker {
					side := buy
					if i%2 == 1 {
						side = sell
					}
					_, err := c.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
						Side: side, Quantity: "1", RequestId: fmt.Sprintf("%s-%d-%d-%d", tag, r, w, i)})
					mu.Lock()
					if err != nil {
						failed++
					} else {
						acked++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if enough() {
			break
		}
	}
	return acked, failed
}

// TestEvents_exactlyOnceUnderRetries: trades whose transactions conflicted and were retried
// (the unlocked server's REPEATABLE READ writes of one portfolio fail to serialize and
// RunTx runs them again) still emit exactly one event per trade in the ledger, and a trade
// that gave up emits none. The locked server (the binary's) likewise.
func TestEvents_exactlyOnceUnderRetries(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	for name, build := range map[string]func(api.Deps) *api.Server{"unlocked": api.NewUnlocked, "locked": api.New} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := serve(t, stock.Addr, build, nil)
			pid := e.newPortfolio(t, name+"@example.com", "1000000")
			enough := func() bool { return name == "locked" || e.retry.Stats().Retries > 0 }
			acked, failed := concurrentTrades(t, e.client, pid, name, 20, enough)
			if !enough() {
				t.Fatalf("no transaction was retried in 20 rounds of concurrent trades: the test proves nothing")
			}
			ev := checkEventsMatchLedger(t, e.pool, pid)
			trades, _ := ledgerIDs(t, e.pool, pid)
			if len(trades) < acked {
				t.Errorf("%d trades in the ledger, %d acknowledged", len(trades), acked)
			}
			s := e.retry.Stats()
			t.Logf("%d trades acknowledged, %d failed, %d in the ledger, %d trade events; %d retries (%d serialization failures, %d exhausted)",
				acked, failed, len(trades), len(ev.trades), s.Retries, s.SerializationFailures, s.Exhausted)
		})
	}
}

// TestWatchPortfolioEvents_resume: a consumer that cancels its stream every few events and
// resumes from the cursor of the last event it handled, while trades run on several
// portfolios, receives every trade's event, in increasing positions, none missing.
func TestWatchPortfolioEvents_resume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	worker := authtest.As(t, "worker.pgfleet.test", auth.RoleService)
	pids := []int64{e.newPortfolio(t, "a@example.com", "100000"), e.newPortfolio(t, "b@example.com", "100000"),
		e.newPortfolio(t, "c@example.com", "100000")}

	ctx, cancel := context.WithTimeout(t.Context(), 3*watchWait)
	defer cancel()
	// Start from now, before the trades: the first message carries the cursor.
	first, err := e.user.WatchPortfolioEvents(ctx, &portfoliov1.WatchPortfolioEventsRequest{Types: []string{tradeExecuted}}, worker)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := first.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cursor := resp.GetCursor()

	var load sync.WaitGroup
	for _, pid := range pids {
		load.Go(func() { concurrentTrades(t, e.client, pid, fmt.Sprint("p", pid), 4, func() bool { return false }) })
	}
	loadDone := make(chan struct{})
	go func() { load.Wait(); close(loadDone) }()

	seen := map[int64]int{} // trade id: deliveries
	var last int64
	dups, streams := 0, 0
	wantN, counted := 0, false // the ledger's trades, once the load is over
	loadOver := func() bool {
		select {
		case <-loadDone:
			if !counted {
				for _, pid := range pids {
					trades, _ := ledgerIDs(t, e.pool, pid)
					wantN += len(trades)
				}
				counted = true
			}
			return true
		default:
			return false
		}
	}
	complete := func() bool { return loadOver() && len(seen) >= wantN }
	for !complete() {
		streams++
		sctx, stop := context.WithCancel(ctx)
		if !loadOver() {
			// A stream open when the load ends is cut then: it may have nothing more to say.
			go func() {
				select {
				case <-loadDone:
					stop()
				case <-sctx.Done():
				}
			}()
		}
		stream, err := e.user.WatchPortfolioEvents(sctx, &portfoliov1.WatchPortfolioEventsRequest{Types: []string{tradeExecuted}, Cursor: cursor}, worker)
		if err != nil {
			t.Fatal(err)
		}
		// Each stream handles a few events, often ending inside a message: it resumes from
		// the cursor of the last event it handled, not from the message's.
		for handled, k := 0, 3+streams%5; handled < k && !complete(); {
			resp, err := stream.Recv()
			if err != nil {
				if sctx.Err() != nil && ctx.Err() == nil {
					break // cut as the load ended
				}
				t.Fatalf("stream %d, after %d trades: %v", streams, len(seen), err)
			}
			for _, ev := range resp.GetEvents() {
				pos, err := outbox.ParseCursor("portfolio", ev.GetCursor())
				if err != nil {
					t.Fatalf("event cursor %q: %v", ev.GetCursor(), err)
				}
				if pos <= last {
					t.Fatalf("event at position %d after %d: want increasing positions", pos, last)
				}
				last = pos
				if ev.GetType() != tradeExecuted {
					t.Errorf("event of type %q, want only %q", ev.GetType(), tradeExecuted)
				}
				m := &portfoliov1.TradeExecuted{}
				if err := ev.GetPayload().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				if seen[m.GetTrade().GetId()]++; seen[m.GetTrade().GetId()] > 1 {
					dups++
				}
				cursor = ev.GetCursor() // handled: resume after it
				if handled++; handled == k {
					break
				}
			}
		}
		stop()
	}
	var ledger []int64
	for _, pid := range pids {
		trades, _ := ledgerIDs(t, e.pool, pid)
		ledger = append(ledger, trades...)
	}
	for _, id := range ledger {
		if seen[id] == 0 {
			t.Errorf("trade %d is in the ledger, its event was never delivered", id)
		}
	}
	if len(seen) != len(ledger) {
		t.Errorf("%d trades delivered, %d in the ledger", len(seen), len(ledger))
	}
	t.Logf("%d trade events over %d streams resumed from their cursor, %d delivered twice", len(seen), streams, dups)
}
