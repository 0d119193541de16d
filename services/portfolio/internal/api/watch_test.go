package api_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

// valuation is GetPortfolio's answer as a WatchPortfolio message: what a stream must end on.
func (e env) valuation(t *testing.T, pid int64) *portfoliov1.WatchPortfolioResponse {
	t.Helper()
	v, err := e.client.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: pid})
	if err != nil {
		t.Fatalf("GetPortfolio: %v", err)
	}
	return &portfoliov1.WatchPortfolioResponse{Portfolio: v.GetPortfolio(), Positions: v.GetPositions(),
		PositionsValue: v.GetPositionsValue(), TotalValue: v.GetTotalValue(), PositionsValues: v.GetPositionsValues()}
}

// watchPortfolio opens a WatchPortfolio stream with opts, bounded by watchWait and more.
func (e env) watchPortfolio(t *testing.T, pid int64, opts ...grpc.CallOption) grpc.ServerStreamingClient[portfoliov1.WatchPortfolioResponse] {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*watchWait)
	t.Cleanup(cancel)
	stream, err := e.user.WatchPortfolio(ctx, &portfoliov1.WatchPortfolioRequest{PortfolioId: pid}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// awaitValuation reads stream until a message equals want, returning how many it read.
func awaitValuation(t *testing.T, stream grpc.ServerStreamingClient[portfoliov1.WatchPortfolioResponse], what string, want *portfoliov1.WatchPortfolioResponse) int {
	t.Helper()
	var last *portfoliov1.WatchPortfolioResponse
	for n := 1; ; n++ {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: WatchPortfolio ended (%v) before the valuation %v; last message %v", what, err, want, last)
		}
		if proto.Equal(msg, want) {
			return n
		}
		last = msg
	}
}

// ingest stores one price bar of symbol at close through the stock service.
func ingest(t *testing.T, c stockv1.StockServiceClient, symbol, close string, at time.Time) {
	t.Helper()
	stream, err := c.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{{Symbol: symbol, Time: timestamppb.New(at),
		Open: close, High: close, Low: close, Close: close, Volume: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("IngestPrices %s at %s: %v", symbol, close, err)
	}
}

// TestWatchPortfolio: the owner's stream starts with GetPortfolio's valuation and follows a
// deposit, a trade and a withdrawal with the valuation after each.
func TestWatchPortfolio(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "ada@example.com", "1000")
	stream := e.watchPortfolio(t, pid, authtest.As(t, "ada@example.com"))
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(e.valuation(t, pid), first, protocmp.Transform()); d != "" {
		t.Fatalf("first message mismatch (-GetPortfolio +WatchPortfolio):\n%s", d)
	}

	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "500", RequestId: "d1"}); err != nil {
		t.Fatal(err)
	}
	want := e.valuation(t, pid)
	if want.GetPortfolio().GetCash() != "1500" {
		t.Fatalf("cash after deposit = %s, want 1500", want.GetPortfolio().GetCash())
	}
	awaitValuation(t, stream, "after the deposit", want)

	e.mustTrade(t, pid, buy, "AAPL", "2", "t1")
	want = e.valuation(t, pid)
	if len(want.GetPositions()) != 1 || want.GetTotalValue() != "1500" || want.GetPortfolio().GetCash() != "1300" {
		t.Fatalf("valuation after buying 2 AAPL at 100 = %v, want cash 1300, one position, total 1500", want)
	}
	awaitValuation(t, stream, "after the trade", want)

	if _, err := e.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: pid, Amount: "300", RequestId: "w1"}); err != nil {
		t.Fatal(err)
	}
	awaitValuation(t, stream, "after the withdrawal", e.valuation(t, pid))
}

// TestWatchPortfolio_prices: a held symbol's new latest price on the stock service moves the
// valuation on the stream (through the process's one WatchStockEvents consumer of the stock
// service); another stream of a portfolio not holding it is not disturbed.
func TestWatchPortfolio_prices(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	e := serve(t, stock.Addr, api.New, nil)
	stocks := stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t)))
	pid := e.newPortfolio(t, "ada@example.com", "1000")
	e.mustTrade(t, pid, buy, "AAPL", "2", "t1")
	other := e.newPortfolio(t, "bob@example.com", "1000")
	e.mustTrade(t, other, buy, "MSFT", "1", "t2")

	stream := e.watchPortfolio(t, pid, authtest.As(t, "ada@example.com"))
	awaitValuation(t, stream, "first", e.valuation(t, pid))
	otherStream := e.watchPortfolio(t, other, authtest.As(t, "bob@example.com"))
	awaitValuation(t, otherStream, "first", e.valuation(t, other))

	at := time.Now().UTC().Truncate(time.Second) // later than the seeded bar, not in the future
	for i, close := range []string{"110", "120.5", "90"} {
		ingest(t, stocks, "AAPL", close, at.Add(time.Duration(i)*time.Millisecond))
		want := e.valuation(t, pid)
		if got := want.GetPositions()[0].GetLastPrice(); got != close {
			t.Fatalf("GetPortfolio after AAPL's new price %s: last price %s", close, got)
		}
		awaitValuation(t, stream, "after AAPL at "+close, want)
	}
	// bob's stream: MSFT never moved, so a change to his portfolio is what he sees next.
	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: other, Amount: "1", RequestId: "d1"}); err != nil {
		t.Fatal(err)
	}
	if n := awaitValuation(t, otherStream, "bob's after his deposit", e.valuation(t, other)); n != 1 {
		t.Errorf("bob's stream sent %d messages to reach his deposit, want 1: AAPL's prices reached a portfolio without AAPL", n)
	}
}

// TestWatchPortfolio_slowReader: a subscriber that does not read while its portfolio
// changes many times ends, once it reads, on the final valuation, having been sent at most
// one message per change (never a backlog of stale ones after the final).
func TestWatchPortfolio_slowReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pid := e.newPortfolio(t, "ada@example.com", "10000")
	stream := e.watchPortfolio(t, pid, authtest.As(t, "ada@example.com"))
	awaitValuation(t, stream, "first", e.valuation(t, pid))

	const changes = 40
	for i := range changes {
		if i%4 == 0 {
			e.mustTrade(t, pid, buy, "MSFT", "1", fmt.Sprint("t", i))
			continue
		}
		if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "1.5",
			RequestId: fmt.Sprint("d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	n := awaitValuation(t, stream, "final", e.valuation(t, pid))
	t.Logf("%d changes while the subscriber did not read; it then read %d messages to the final valuation", changes, n)
	if n > changes {
		t.Errorf("read %d messages for %d changes: a backlog", n, changes)
	}
}

// TestWatchPortfolio_access: a stream of another user's portfolio is refused exactly as
// GetPortfolio refuses it, and as a missing one; an admin watches anyone's; a bad id is
// INVALID_ARGUMENT; WatchPortfolioEvents (every user's trades) is for the service role and
// admins.
func TestWatchPortfolio_access(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ada, bob := authtest.As(t, "ada@example.com"), authtest.As(t, "bob@example.com")
	pid := e.newPortfolio(t, "ada@example.com", "100")
	e.newPortfolio(t, "bob@example.com", "100")

	recvErr := func(pid int64, opts ...grpc.CallOption) error {
		_, err := e.watchPortfolio(t, pid, opts...).Recv()
		return err
	}
	for name, tc := range map[string]struct {
		pid int64
		as  grpc.CallOption
	}{"another user's": {pid, bob}, "missing": {pid + 1000, ada}} {
		_, getErr := e.user.GetPortfolio(t.Context(), &portfoliov1.GetPortfolioRequest{PortfolioId: tc.pid}, tc.as)
		err := recvErr(tc.pid, tc.as)
		apptest.WantReason(t, err, apierr.PortfolioNotFound, map[string]string{"portfolio_id": fmt.Sprint(tc.pid)})
		if status.Code(err) != status.Code(getErr) || status.Convert(err).Message() != status.Convert(getErr).Message() {
			t.Errorf("%s portfolio: WatchPortfolio %v, GetPortfolio %v: want the same refusal", name, err, getErr)
		}
	}
	for _, bad := range []int64{0, -1} {
		apptest.WantCode(t, recvErr(bad, ada), codes.InvalidArgument)
	}
	apptest.WantCode(t, recvErr(pid), codes.Unauthenticated)
	admin := authtest.As(t, "root.pgfleet.test", auth.RoleAdmin)
	if _, err := e.watchPortfolio(t, pid, admin).Recv(); err != nil {
		t.Errorf("an admin's WatchPortfolio of ada's portfolio: %v", err)
	}

	watchEvents := func(opts ...grpc.CallOption) error {
		ctx, cancel := context.WithTimeout(t.Context(), watchWait)
		defer cancel()
		stream, err := e.user.WatchPortfolioEvents(ctx, &portfoliov1.WatchPortfolioEventsRequest{}, opts...)
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	apptest.WantCode(t, watchEvents(ada), codes.PermissionDenied)
	apptest.WantCode(t, watchEvents(), codes.Unauthenticated)
	for _, role := range []string{auth.RoleService, auth.RoleAdmin} {
		if err := watchEvents(authtest.As(t, "x.pgfleet.test", role)); err != nil {
			t.Errorf("WatchPortfolioEvents as %s: %v", role, err)
		}
	}
}

// TestWatchPortfolio_stockRestart: the stock service goes away and comes back while a
// portfolio is watched. Meanwhile the stream goes on (a deposit is valued, without prices);
// afterwards the stream values it with prices again by itself, and the process's price feed
// has reconnected: a new price of a held symbol reaches the stream again.
func TestWatchPortfolio_stockRestart(t *testing.T) {
	t.Parallel()
	stock := newStockService(t)
	e := serve(t, stock.Addr, api.New, nil)
	pid := e.newPortfolio(t, "ada@example.com", "1000")
	e.mustTrade(t, pid, buy, "AAPL", "2", "t1")
	stream := e.watchPortfolio(t, pid, authtest.As(t, "ada@example.com"))
	awaitValuation(t, stream, "first", e.valuation(t, pid))

	stock.Stop(t)
	if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: pid, Amount: "5", RequestId: "d1"}); err != nil {
		t.Fatal(err)
	}
	want := e.valuation(t, pid)
	if want.GetPositions()[0].GetLastPrice() != "" {
		t.Fatalf("GetPortfolio with the stock service stopped: %v, want no prices", want)
	}
	awaitValuation(t, stream, "after a deposit with the stock service stopped", want)

	stock.Start(t)
	// Priced again once the stock client's breaker lets calls through; the stream gets there
	// by itself, with no price change to wake it.
	pgtest.Poll(t, "GetPortfolio priced again", func() bool { return e.valuation(t, pid).GetTotalValue() != "" })
	awaitValuation(t, stream, "priced again, no price changed", e.valuation(t, pid))
	// A connection dialled now: one dialled before the restart may still wait out its
	// reconnection backoff.
	stocks := stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t)))
	ingest(t, stocks, "AAPL", "130", time.Now().UTC().Truncate(time.Second))
	want = e.valuation(t, pid)
	if got := want.GetPositions()[0].GetLastPrice(); got != "130" {
		t.Fatalf("GetPortfolio after AAPL's new price 130: last price %s", got)
	}
	awaitValuation(t, stream, "after AAPL's new price, the stock service restarted", want)
}

// TestWatchPortfolio_priceCursorExpired: while the stock service is away, a price change the
// process's price feed has not read is pruned from the stock service's outbox. Back, the
// feed's cursor is CURSOR_EXPIRED: it follows from now and values every watched portfolio
// again, so the change it could not read still reaches the stream.
func TestWatchPortfolio_priceCursorExpired(t *testing.T) {
	t.Parallel()
	stockURL := pgtest.NewDBURL(t)
	stock := newStockServiceOn(t, stockURL)
	e := serve(t, stock.Addr, api.New, nil)
	pid := e.newPortfolio(t, "ada@example.com", "1000")
	e.mustTrade(t, pid, buy, "AAPL", "2", "t1")
	stream := e.watchPortfolio(t, pid, authtest.As(t, "ada@example.com"))
	awaitValuation(t, stream, "first", e.valuation(t, pid))
	at := time.Now().UTC().Truncate(time.Second)
	// The feed follows the stock service's events: a first change reaches the stream.
	ingest(t, stockv1.NewStockServiceClient(apptest.Dial(t, stock.Addr, authtest.Admin(t))), "AAPL", "110", at)
	awaitValuation(t, stream, "after AAPL at 110", e.valuation(t, pid))

	stock.Stop(t)
	// Another stock process on the same database, at an address the feed does not know,
	// changes AAPL; its sequencer numbers the event, which is then pruned.
	other := apptest.StartProcess(t, stockBin, "DATABASE_URL="+stockURL)
	ingest(t, stockv1.NewStockServiceClient(apptest.Dial(t, other.Addr, authtest.Admin(t))), "AAPL", "140", at.Add(time.Millisecond))
	db := pgtest.Connect(t, stockURL)
	var pending int
	pgtest.Poll(t, "the stock outbox sequenced", func() bool {
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM stock.outbox WHERE position IS NULL`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	last, err := outbox.Last(t.Context(), db, "stock")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := outbox.Prune(t.Context(), db, "stock", outbox.Retention{Before: last + 1}); err != nil {
		t.Fatal(err)
	}
	other.Stop(t)

	stock.Start(t)
	pgtest.Poll(t, "GetPortfolio priced again", func() bool { return e.valuation(t, pid).GetTotalValue() != "" })
	want := e.valuation(t, pid)
	if got := want.GetPositions()[0].GetLastPrice(); got != "140" {
		t.Fatalf("GetPortfolio after AAPL's new price 140: last price %s", got)
	}
	awaitValuation(t, stream, "after AAPL at 140, its event pruned", want)
}
