package api_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// The fuzz targets send fuzzed requests through a real server (the production interceptors,
// validation, handlers, the stock service for prices) into PostgreSQL, so they see what a
// parser's fuzz target cannot: a value validation lets through that the database refuses (a
// NUL in text, an amount past numeric(20, 6)) answers INTERNAL. Strings go as they are,
// UTF-8 or not (apptest.RawCodec). `go test` runs the seeds; to fuzz, from services/portfolio:
//
//	go test -run '^$' -fuzz '^FuzzExecuteTrade$' -fuzztime 1m ./internal/api/

// fuzzRaw sends a request as it is, strings that are not UTF-8 included.
var fuzzRaw = grpc.ForceCodec(apptest.RawCodec{})

// fuzzStrings are seeds every string field gets: what reached PostgreSQL raw before.
var fuzzStrings = []string{"", "\x00", "a\x00b", "\xff", "a\xc3\x28", "\x01", "\x1b[31m", "\u2028", "  ", strings.Repeat("A", 10000)}

// fuzzDecimals are seeds of the amount fields: cash and quantities are numeric(20, 6).
var fuzzDecimals = []string{"99999999999999.999999", "100000000000000", "99999999999999999999.9999999", "1e400", "-0",
	"0.0000001", "0.000001", "NaN", "Infinity", "-1", "0", "1,5", " 1", "1.2.3", "\x00", "1\x00", "١"}

// fuzzLedger returns the portfolio's cash and a checksum of its trades, positions and
// movements, to show that a refused call moved nothing.
func fuzzLedger(t *testing.T, e env, portfolio int64) string {
	t.Helper()
	var sum string
	err := e.pool.QueryRow(t.Context(), `
		SELECT (SELECT cash::text FROM portfolio.portfolios WHERE id = $1)
			|| (SELECT count(*) || md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM portfolio.trades t WHERE portfolio_id = $1)
			|| (SELECT count(*) || md5(coalesce(string_agg(p::text, ',' ORDER BY p::text), '')) FROM portfolio.positions p WHERE portfolio_id = $1)
			|| (SELECT count(*) || md5(coalesce(string_agg(m::text, ',' ORDER BY m::text), '')) FROM portfolio.cash_movements m WHERE portfolio_id = $1)`,
		portfolio).Scan(&sum)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// wantGoodAnswer fails t if err is not an answer a service may give to any request.
func wantGoodAnswer(t *testing.T, what string, err error) {
	t.Helper()
	if bad := apptest.BadAnswer(err); bad != "" {
		t.Fatalf("%s = %s", what, bad)
	}
}

// FuzzExecuteTrade sends a trade's fields for a portfolio with cash; a refused trade must
// move nothing.
func FuzzExecuteTrade(f *testing.F) {
	e := newEnv(f)
	id := e.newPortfolio(f, "fuzz@example.com", "1000000")
	buy, sell := int32(portfoliov1.Side_SIDE_BUY), int32(portfoliov1.Side_SIDE_SELL)
	f.Add("AAPL", buy, "1", "", "r")
	f.Add("AAPL", sell, "1", "", "r")
	f.Add("AAPL", buy, "1", "1000", "r")
	for _, d := range fuzzDecimals {
		f.Add("AAPL", buy, d, "", "r")
		f.Add("AAPL", sell, d, "", "r")
		f.Add("AAPL", buy, "1", d, "r")
	}
	for _, s := range fuzzStrings {
		f.Add(s, buy, "1", "", "r")
		f.Add("AAPL", buy, "1", "", s)
	}
	for _, side := range []int32{0, 3, -1, 1<<31 - 1} {
		f.Add("AAPL", side, "1", "", "r")
	}
	f.Add("OLD", buy, "1", "", "r")  // a price past MAX_PRICE_AGE
	f.Add("SAP", buy, "1", "", "r")  // another currency
	f.Add("ZZZZ", buy, "1", "", "r") // no such stock
	n := 0
	f.Fuzz(func(t *testing.T, symbol string, side int32, quantity, limitPrice, requestID string) {
		n++
		if requestID == "r" { // the seeds' own, so that each reaches the business checks
			requestID = fmt.Sprintf("fuzz-%d", n)
		}
		before := fuzzLedger(t, e, id)
		_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: id, Symbol: symbol,
			Side: portfoliov1.Side(side), Quantity: quantity, LimitPrice: limitPrice, RequestId: requestID}, fuzzRaw)
		wantGoodAnswer(t, "ExecuteTrade", err)
		if err != nil && fuzzLedger(t, e, id) != before {
			t.Fatalf("ExecuteTrade = %v, and moved cash or shares", err)
		}
	})
}

// FuzzDeposit sends deposits and withdrawals of fuzzed amounts; a refused one must move
// nothing. A deposit past the largest balance (99999999999999.999999) is BALANCE_LIMIT.
func FuzzDeposit(f *testing.F) {
	e := newEnv(f)
	id := e.newPortfolio(f, "fuzz@example.com", "100")
	for _, d := range fuzzDecimals {
		f.Add(d, "r", false)
		f.Add(d, "r", true)
	}
	for _, s := range fuzzStrings {
		f.Add("1", s, false)
	}
	n := 0
	f.Fuzz(func(t *testing.T, amount, requestID string, withdraw bool) {
		n++
		if requestID == "r" {
			requestID = fmt.Sprintf("fuzz-%d", n)
		}
		before := fuzzLedger(t, e, id)
		var err error
		if withdraw {
			_, err = e.client.Withdraw(t.Context(), &portfoliov1.WithdrawRequest{PortfolioId: id, Amount: amount, RequestId: requestID}, fuzzRaw)
		} else {
			_, err = e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: id, Amount: amount, RequestId: requestID}, fuzzRaw)
		}
		wantGoodAnswer(t, "Deposit/Withdraw", err)
		if err != nil && fuzzLedger(t, e, id) != before {
			t.Fatalf("Deposit/Withdraw(%q) = %v, and moved cash", amount, err)
		}
	})
}
