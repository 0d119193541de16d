package api_test

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// TestWatchLatestPrices: the first message holds the watched symbols that have a price,
// sorted, a delisted stock's final price included (with delist_time); then each change of a
// watched symbol comes, and a delisted symbol stored again is cleared.
func TestWatchLatestPrices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A"}, &stockv1.Stock{Symbol: "BBB", Name: "B"},
		&stockv1.Stock{Symbol: "DEL", Name: "D"}, &stockv1.Stock{Symbol: "NOP", Name: "No price"})
	if _, err := e.ingest(t, append(append(dailyPrices("BBB", 2), dailyPrices("DEL", 1)...), dailyPrices("AAA", 1)...), 10); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: "DEL"}); err != nil {
		t.Fatal(err)
	}
	latest := func(symbols ...string) []*stockv1.Price {
		t.Helper()
		resp, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: symbols})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetPrices()
	}
	stream, err := e.client.WatchLatestPrices(t.Context(), &stockv1.WatchLatestPricesRequest{Symbols: []string{"NOP", "DEL", "BBB", "AAA"}})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(what string, want *stockv1.WatchLatestPricesResponse) {
		t.Helper()
		got, err := stream.Recv()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Fatalf("%s: mismatch (-want +got):\n%s", what, diff)
		}
	}
	snapshot := latest("AAA", "BBB", "DEL")
	if snapshot[2].GetDelistTime() == nil {
		t.Fatalf("GetLatestPrices(DEL) = %v, want a delist_time", snapshot[2])
	}
	recv("snapshot", &stockv1.WatchLatestPricesResponse{Prices: snapshot})

	if _, err := e.ingest(t, dailyPrices("BBB", 3)[2:], 10); err != nil {
		t.Fatal(err)
	}
	recv("after an ingest of BBB", &stockv1.WatchLatestPricesResponse{Prices: latest("BBB")})
	e.upsert(t, &stockv1.Stock{Symbol: "DEL", Name: "Listed again"})
	recv("after DEL was stored again", &stockv1.WatchLatestPricesResponse{ClearedSymbols: []string{"DEL"}})
	if _, err := e.ingest(t, append(dailyPrices("NOP", 1), dailyPrices("DEL", 1)...), 10); err != nil {
		t.Fatal(err)
	}
	recv("after the first bars of DEL and NOP", &stockv1.WatchLatestPricesResponse{Prices: latest("DEL", "NOP")})
}

// TestWatch_badInput: requests a watch refuses, with the reason a client acts on.
func TestWatch_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A"}, &stockv1.Stock{Symbol: "DEL", Name: "D"}, &stockv1.Stock{Symbol: "GONE", Name: "G"})
	if _, err := e.ingest(t, append(dailyPrices("AAA", 3), dailyPrices("DEL", 1)...), 10); err != nil {
		t.Fatal(err)
	}
	for _, sym := range []string{"DEL", "GONE"} { // GONE had no price: nothing is left of it
		if _, err := e.client.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: sym}); err != nil {
			t.Fatal(err)
		}
	}
	many := make([]string, 1001)
	for i := range many {
		many[i] = fmt.Sprintf("S%04d", i)
	}
	prices := func(symbols ...string) error {
		stream, err := e.client.WatchLatestPrices(t.Context(), &stockv1.WatchLatestPricesRequest{Symbols: symbols})
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	evs := func(req *stockv1.WatchStockEventsRequest) error {
		stream, err := e.client.WatchStockEvents(t.Context(), req)
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	types21 := make([]string, 21)
	for i := range types21 {
		types21[i] = "pgfleet.stock.v1.StockChanged"
	}
	invalid := []struct {
		name  string
		err   error
		field string
	}{
		{"no symbols", prices(), "symbols"},
		{"1001 symbols", prices(many...), "symbols"},
		{"duplicate", prices("AAA", "AAA"), "symbols[1]"},
		{"malformed", prices("AAA", "aapl"), "symbols[1]"},
		{"21 types", evs(&stockv1.WatchStockEventsRequest{Types: types21}), "types"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			wantFieldViolation(t, tt.err, tt.field)
		})
	}

	t.Run("unknown symbols", func(t *testing.T) {
		err := prices("ZZZ", "AAA", "DEL", "GONE", "NOPE")
		apptest.WantCode(t, err, codes.NotFound)
		apptest.WantReason(t, err, apierr.StockNotFound, map[string]string{"symbols": "GONE,NOPE,ZZZ"})
	})
	t.Run("a delisted stock with a final price is known", func(t *testing.T) {
		if err := prices("DEL"); err != nil {
			t.Errorf("WatchLatestPrices(DEL): %v", err)
		}
	})

	// Events to have a cursor to prune.
	last := watchEventsUntil(t, e.client, &stockv1.WatchStockEventsRequest{FromOldest: true},
		func(ev *opsv1.Event) bool { return ev.GetType() == "pgfleet.stock.v1.StockDeleted" })
	if n := len(last); n < 4 {
		t.Fatalf("events before StockDeleted: %d, want at least 4", n)
	}
	first := last[0].GetCursor()
	cursors := []struct {
		name   string
		req    *stockv1.WatchStockEventsRequest
		reason apierr.Reason
	}{
		{"malformed cursor", &stockv1.WatchStockEventsRequest{Cursor: "not a cursor"}, apierr.CursorMalformed},
		{"cursor of another schema", &stockv1.WatchStockEventsRequest{Cursor: outbox.Cursor("portfolio", 1)}, apierr.CursorMalformed},
		{"cursor ahead of the last event", &stockv1.WatchStockEventsRequest{Cursor: outbox.Cursor("stock", 1<<40)}, apierr.CursorMalformed},
		{"cursor too long", &stockv1.WatchStockEventsRequest{Cursor: string(make([]byte, 201))}, apierr.InvalidField},
		{"unknown type", &stockv1.WatchStockEventsRequest{Types: []string{"pgfleet.portfolio.v1.TradeExecuted"}}, apierr.InvalidField},
		{"type of no message", &stockv1.WatchStockEventsRequest{Types: []string{"StockChanged"}}, apierr.InvalidField},
	}
	for _, tt := range cursors {
		t.Run(tt.name, func(t *testing.T) {
			err := evs(tt.req)
			apptest.WantCode(t, err, codes.InvalidArgument)
			apptest.WantReason(t, err, tt.reason, nil)
		})
	}

	t.Run("pruned cursor", func(t *testing.T) {
		if err := evs(&stockv1.WatchStockEventsRequest{Cursor: first}); err != nil {
			t.Fatalf("WatchStockEvents from the first event's cursor before pruning: %v", err)
		}
		if _, err := outbox.Prune(t.Context(), e.pool, "stock", outbox.Retention{Before: position(t, last[2].GetCursor())}); err != nil {
			t.Fatal(err)
		}
		// A replica started since: its ring begins after the pruned events, so it reads the
		// table, which no longer has them. (The first replica's ring may still hold them.)
		other := newEnvWith(t, map[string]string{"DATABASE_URL": e.pool.Config().ConnString()})
		evs := func(req *stockv1.WatchStockEventsRequest) error {
			stream, err := other.client.WatchStockEvents(t.Context(), req)
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		}
		err := evs(&stockv1.WatchStockEventsRequest{Cursor: first})
		apptest.WantCode(t, err, codes.FailedPrecondition)
		apptest.WantReason(t, err, apierr.CursorExpired, nil)
		if err := evs(&stockv1.WatchStockEventsRequest{Cursor: last[1].GetCursor()}); err != nil {
			t.Errorf("WatchStockEvents from the last pruned event's cursor (the next is kept): %v", err)
		}
	})
}
