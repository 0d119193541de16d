package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	grpccodes "google.golang.org/grpc/codes"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestCrash_events: the portfolio binary is killed (SIGKILL, no drain) right after trades and
// deposits were acknowledged, with more in flight, so some committed events may not have
// been given a position yet. Started again on its database, it delivers through WatchPortfolioEvents
// from_oldest exactly one event per trade and deposit in the ledger, each event id once:
// every acknowledged request's among them, none for a request that did not commit.
func TestCrash_events(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/portfolio"); err != nil {
		t.Fatal(err)
	}
	stock := apptest.StartProcess(t, filepath.Join(bin, "stock"), "DATABASE_URL="+pgtest.NewDBURL(t))
	seedPrices(t, stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t))))
	dbURL := pgtest.NewDBURL(t)
	portfolio := apptest.StartProcess(t, filepath.Join(bin, "portfolio"), "DATABASE_URL="+dbURL,
		"STOCK_ADDR="+stock.Addr, "STOCK_TIMEOUT=10s", "MAX_PRICE_AGE=0")
	client := portfoliov1.NewPortfolioServiceClient(apptest.Dial(t, portfolio.Addr, authtest.Admin(t)))
	pid := newFundedPortfolio(t, client)

	load := startLoad(t, client, pid, 4)
	load.waitAcks(t, 30, time.Time{})
	if err := syscall.Kill(portfolio.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "the portfolio process to exit", portfolio.Exited)
	ops := load.stop()

	// The dead process's sessions end (a COMMIT it sent completes or not) before the ledger
	// is read: it is final from then on.
	db := pgtest.Connect(t, dbURL)
	pgtest.Poll(t, "the killed process's sessions to end", func() bool {
		var n int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	var pending, total int
	if err := db.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE position IS NULL), count(*) FROM portfolio.outbox`).
		Scan(&pending, &total); err != nil {
		t.Fatal(err)
	}
	ledger := map[string]bool{} // "trade 12", "movement 40"
	rows, err := db.Query(t.Context(), `SELECT 'trade ' || id FROM portfolio.trades WHERE portfolio_id = $1
		UNION ALL SELECT 'movement ' || id FROM portfolio.cash_movements WHERE portfolio_id = $1 AND trade_id IS NULL`, pid)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		ledger[k] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if total != len(ledger) {
		t.Errorf("%d events in the outbox, %d trades and deposits in the ledger", total, len(ledger))
	}

	portfolio.Start(t) // the same binary and database, a new process
	// A new connection: the old one may still wait out its reconnection backoff.
	client = portfoliov1.NewPortfolioServiceClient(apptest.Dial(t, portfolio.Addr, authtest.Admin(t)))
	ctx, cancel := context.WithTimeout(t.Context(), failoverWait)
	defer cancel()
	stream, err := client.WatchPortfolioEvents(ctx, &portfoliov1.WatchPortfolioEventsRequest{FromOldest: true})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	delivered := map[string]int{}
	for len(delivered) < len(ledger) {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchPortfolioEvents after %d of %d events: %v", len(delivered), len(ledger), err)
		}
		for _, ev := range resp.GetEvents() {
			ids[ev.GetId()]++
			var key string
			switch ev.GetType() {
			case "pgfleet.portfolio.v1.TradeExecuted":
				m := &portfoliov1.TradeExecuted{}
				if err := ev.GetPayload().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				key = fmt.Sprint("trade ", m.GetTrade().GetId())
			case "pgfleet.portfolio.v1.CashMoved":
				m := &portfoliov1.CashMoved{}
				if err := ev.GetPayload().UnmarshalTo(m); err != nil {
					t.Fatal(err)
				}
				key = fmt.Sprint("movement ", m.GetMovement().GetId())
			}
			if !ledger[key] {
				t.Errorf("event %s (%s) names %q, which is not in the ledger", ev.GetId(), ev.GetType(), key)
			}
			delivered[key]++
		}
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s delivered %d times in one stream, want once", id, n)
		}
	}
	for k, n := range delivered {
		if n != 1 {
			t.Errorf("%s has %d events, want 1", k, n)
		}
	}
	acked, failedCommitted, failed := 0, 0, 0
	for _, o := range ops {
		key := "movement "
		if o.kind == "trade" {
			key = "trade "
		}
		if o.err == nil {
			acked++
			if k := fmt.Sprint(key, o.ackedID()); delivered[k] != 1 {
				t.Errorf("%s %s acknowledged as %s: %d events delivered, want 1", o.kind, o.rid, k, delivered[k])
			}
			continue
		}
		failed++
		if o.stored(t, db, pid) > 0 {
			failedCommitted++ // committed, its answer lost with the process: its event is there too
		}
	}
	t.Logf("%d requests acknowledged, %d failed (%d of them committed nonetheless); at the kill %d of %d events had no position yet; all %d delivered once after the restart",
		acked, failed, failedCommitted, pending, total, len(delivered))
}

// TestShutdown_watchStreams: SIGTERM ends the binary's open streams, WatchPortfolio and
// WatchPortfolioEvents, with UNAVAILABLE SHUTTING_DOWN (clients reconnect to another
// replica), and the process drains and exits.
func TestShutdown_watchStreams(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/portfolio"); err != nil {
		t.Fatal(err)
	}
	stock := apptest.StartProcess(t, filepath.Join(bin, "stock"), "DATABASE_URL="+pgtest.NewDBURL(t))
	seedPrices(t, stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t))))
	portfolio := apptest.StartProcess(t, filepath.Join(bin, "portfolio"), "DATABASE_URL="+pgtest.NewDBURL(t),
		"STOCK_ADDR="+stock.Addr, "MAX_PRICE_AGE=0")
	client := portfoliov1.NewPortfolioServiceClient(apptest.Dial(t, portfolio.Addr, authtest.Admin(t)))
	pid := newFundedPortfolio(t, client)
	if _, err := client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
		Side: portfoliov1.Side_SIDE_BUY, Quantity: "1", RequestId: "t1"}); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), failoverWait)
	defer cancel()
	valuations, err := client.WatchPortfolio(ctx, &portfoliov1.WatchPortfolioRequest{PortfolioId: pid})
	if err != nil {
		t.Fatal(err)
	}
	events, err := client.WatchPortfolioEvents(ctx, &portfoliov1.WatchPortfolioEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := valuations.Recv(); err != nil {
		t.Fatal(err)
	}
	if _, err := events.Recv(); err != nil {
		t.Fatal(err)
	}
	portfolio.Stop(t)
	for {
		m, err := valuations.Recv()
		if err != nil {
			apptest.WantReason(t, err, apierr.ShuttingDown, nil)
			apptest.WantCode(t, err, grpccodes.Unavailable)
			break
		}
		t.Logf("valuation %v", m)
	}
	for {
		if _, err := events.Recv(); err != nil {
			apptest.WantReason(t, err, apierr.ShuttingDown, nil)
			apptest.WantCode(t, err, grpccodes.Unavailable)
			break
		}
	}
}
