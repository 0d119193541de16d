package api_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/query/querytest"
)

// sectors holds the demo sectors tests spread stocks over.
var sectors = []string{"Technology", "Energy", "Financials"}

// seedStocks stores n stocks S000..S(n-1) over sectors, with market caps that repeat so
// sorting must break ties by symbol.
func seedStocks(t testing.TB, e env, n int) []*stockv1.Stock {
	t.Helper()
	stocks := make([]*stockv1.Stock, n)
	for i := range stocks {
		stocks[i] = &stockv1.Stock{
			Symbol: fmt.Sprintf("S%03d", i), Name: fmt.Sprintf("Stock %d", i),
			Sector: sectors[i%len(sectors)], Exchange: "NYSE", Currency: "USD",
			MarketCap: int64(1_000_000_000 * (1 + i%7)),
		}
	}
	e.upsert(t, stocks...)
	return stocks
}

func TestGetStock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "AAPL", Name: "Apple Inc.", Sector: "Technology", MarketCap: 3_000_000_000_000})

	got, err := e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "AAPL"})
	if err != nil {
		t.Fatalf("GetStock(AAPL): %v", err)
	}
	want := &stockv1.Stock{Symbol: "AAPL", Name: "Apple Inc.", Sector: "Technology", Currency: "USD", MarketCap: 3_000_000_000_000}
	if diff := gocmp.Diff(want, got.GetStock(), protocmp.Transform(),
		protocmp.IgnoreFields(&stockv1.Stock{}, "create_time", "update_time")); diff != "" {
		t.Errorf("GetStock(AAPL) mismatch (-want +got):\n%s", diff)
	}
	if got.GetStock().GetCreateTime() == nil {
		t.Errorf("GetStock(AAPL) has no create_time")
	}

	_, err = e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "ZZZZ"})
	apptest.WantCode(t, err, codes.NotFound)
	if !strings.Contains(status.Convert(err).Message(), "ZZZZ") {
		t.Errorf("NotFound message %q does not name the symbol", status.Convert(err).Message())
	}
	apptest.WantReason(t, err, apierr.StockNotFound, map[string]string{"symbol": "ZZZZ"})

	_, err = e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "aapl; drop"})
	apptest.WantCode(t, err, codes.InvalidArgument)
	var fields []string
	for _, d := range status.Convert(err).Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue // the ErrorInfo
		}
		for _, v := range br.GetFieldViolations() {
			fields = append(fields, v.GetField())
		}
	}
	if diff := gocmp.Diff([]string{"symbol"}, fields); diff != "" {
		t.Errorf("violations mismatch (-want +got):\n%s", diff)
	}
}

func TestListStocks_pages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stocks := seedStocks(t, e, 60)

	req := &stockv1.ListStocksRequest{Filter: `sector = "Technology"`, OrderBy: "market_cap desc", PageSize: 5}
	first, err := e.client.ListStocks(t.Context(), req)
	if err != nil {
		t.Fatalf("ListStocks: %v", err)
	}
	if len(first.GetStocks()) != 5 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %d stocks, token %q; want 5 and a token", len(first.GetStocks()), first.GetNextPageToken())
	}

	// Walk every page and compare with the expected order computed here.
	var got []string
	for token := ""; ; {
		req.PageToken = token
		resp, err := e.client.ListStocks(t.Context(), req)
		if err != nil {
			t.Fatalf("ListStocks(token %q): %v", token, err)
		}
		for _, st := range resp.GetStocks() {
			got = append(got, st.GetSymbol())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	var tech []*stockv1.Stock
	for _, st := range stocks {
		if st.GetSector() == "Technology" {
			tech = append(tech, st)
		}
	}
	// market_cap desc; equal caps by symbol in the same direction.
	slices.SortFunc(tech, func(a, b *stockv1.Stock) int {
		if c := cmp.Compare(a.GetMarketCap(), b.GetMarketCap()); c != 0 {
			return -c
		}
		return -strings.Compare(a.GetSymbol(), b.GetSymbol())
	})
	var want []string
	for _, st := range tech {
		want = append(want, st.GetSymbol())
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("pages mismatch (-want +got):\n%s", diff)
	}
}

func TestListStocks_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 12)
	page, err := e.client.ListStocks(t.Context(), &stockv1.ListStocksRequest{PageSize: 2})
	if err != nil {
		t.Fatalf("ListStocks: %v", err)
	}

	tests := []struct {
		name      string
		req       *stockv1.ListStocksRequest
		wantField string
		wantText  string
	}{
		{"undeclared field", &stockv1.ListStocksRequest{Filter: `colour = "red"`}, "filter", "colour"},
		{"wrong literal type", &stockv1.ListStocksRequest{Filter: `market_cap = "big"`}, "filter", "market_cap"},
		{"syntax", &stockv1.ListStocksRequest{Filter: `sector = `}, "filter", ""},
		{"unsortable order", &stockv1.ListStocksRequest{OrderBy: "colour desc"}, "order_by", "colour"},
		{"malformed token", &stockv1.ListStocksRequest{PageToken: "garbage!"}, "page_token", ""},
		{"token of another filter", &stockv1.ListStocksRequest{PageSize: 2, Filter: `sector = "Energy"`, PageToken: page.GetNextPageToken()}, "page_token", ""},
		{"negative page size", &stockv1.ListStocksRequest{PageSize: -1}, "page_size", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.client.ListStocks(t.Context(), tt.req)
			apptest.WantCode(t, err, codes.InvalidArgument)
			st := status.Convert(err)
			if !strings.Contains(st.Message(), tt.wantText) {
				t.Errorf("message %q does not mention %q", st.Message(), tt.wantText)
			}
			var br *errdetails.BadRequest
			for _, d := range st.Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil || br.GetFieldViolations()[0].GetField() != tt.wantField {
				t.Errorf("details = %v, want a BadRequest violation on %q", st.Details(), tt.wantField)
			}
		})
	}
}

func TestBatchGetStocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 5)
	resp, err := e.client.BatchGetStocks(t.Context(), &stockv1.BatchGetStocksRequest{Symbols: []string{"S003", "NOPE", "S001"}})
	if err != nil {
		t.Fatalf("BatchGetStocks: %v", err)
	}
	var got []string
	for _, st := range resp.GetStocks() {
		got = append(got, st.GetSymbol())
	}
	if diff := gocmp.Diff([]string{"S003", "S001"}, got); diff != "" {
		t.Errorf("stocks mismatch (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"NOPE"}, resp.GetMissingSymbols()); diff != "" {
		t.Errorf("missing mismatch (-want +got):\n%s", diff)
	}
	_, err = e.client.BatchGetStocks(t.Context(), &stockv1.BatchGetStocksRequest{})
	apptest.WantCode(t, err, codes.InvalidArgument)
}

func TestUpsertStocks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := &stockv1.Stock{Symbol: "AAA", Name: "A", MarketCap: 1}
	b := &stockv1.Stock{Symbol: "BBB", Name: "B", MarketCap: 2}

	resp, err := e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{a, b}})
	if err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
	if resp.GetInsertedCount() != 2 || resp.GetUpdatedCount() != 0 {
		t.Errorf("first upsert = %v, want 2 inserted", resp)
	}
	b2 := &stockv1.Stock{Symbol: "BBB", Name: "B", MarketCap: 3}
	c := &stockv1.Stock{Symbol: "CCC", Name: "C"}
	resp, err = e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{a, b2, c}})
	if err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
	if resp.GetInsertedCount() != 1 || resp.GetUpdatedCount() != 1 {
		t.Errorf("second upsert = %v, want 1 inserted (CCC), 1 updated (BBB), AAA unchanged", resp)
	}
	got, err := e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "BBB"})
	if err != nil || got.GetStock().GetMarketCap() != 3 {
		t.Errorf("GetStock(BBB) = %v, %v; want market_cap 3", got, err)
	}

	// A bad row rejects the whole request: nothing is written.
	_, err = e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{
		{Symbol: "DDD", Name: "D"}, {Symbol: "EEE"}, {Symbol: "DDD", Name: "again"},
	}})
	apptest.WantCode(t, err, codes.InvalidArgument)
	for _, want := range []string{"stocks[1].name", "stocks[2].symbol"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	_, err = e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "DDD"})
	apptest.WantCode(t, err, codes.NotFound)
}

// TestDeleteStock: a deleted stock's history, recommendations and listing go, its final
// price stays for GetLatestPrices (with its currency and delist_time), so that positions
// held in it can still be valued and sold; storing the symbol again is a new listing.
func TestDeleteStock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stocks := seedStocks(t, e, 2)
	stocks[0].Currency = "EUR"
	e.upsert(t, stocks[0])
	bars := dailyPrices("S000", 10)
	if _, err := e.ingest(t, bars, 100); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	before := time.Now()
	if _, err := e.client.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: "S000"}); err != nil {
		t.Fatalf("DeleteStock: %v", err)
	}
	var prices int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM stock.prices WHERE symbol = 'S000'`).Scan(&prices); err != nil {
		t.Fatal(err)
	}
	if prices != 0 {
		t.Errorf("after DeleteStock: %d prices left, want none", prices)
	}
	_, err := e.client.GetStock(t.Context(), &stockv1.GetStockRequest{Symbol: "S000"})
	apptest.WantCode(t, err, codes.NotFound)
	_, err = e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "S000"})
	apptest.WantCode(t, err, codes.NotFound)

	latest, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S000", "S001"}})
	if err != nil {
		t.Fatalf("GetLatestPrices: %v", err)
	}
	final := withCurrency(bars[9], "EUR")
	if len(latest.GetPrices()) != 1 {
		t.Fatalf("GetLatestPrices after DeleteStock = %v, want the final price of S000", latest)
	}
	got := latest.GetPrices()[0]
	if dt := got.GetDelistTime().AsTime(); got.GetDelistTime() == nil || dt.Before(before.Add(-time.Minute)) || dt.After(time.Now().Add(time.Minute)) {
		t.Errorf("final price delist_time = %v, want the time of the DeleteStock call", got.GetDelistTime())
	}
	if diff := gocmp.Diff(final, got, protocmp.Transform(), protocmp.IgnoreFields(&stockv1.Price{}, "delist_time")); diff != "" {
		t.Errorf("final price mismatch (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"S001"}, latest.GetMissingSymbols()); diff != "" {
		t.Errorf("missing symbols (-want +got):\n%s", diff)
	}

	_, err = e.client.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: "S000"})
	apptest.WantCode(t, err, codes.NotFound)
	_, err = e.ingest(t, dailyPrices("S000", 1), 1)
	apptest.WantCode(t, err, codes.InvalidArgument) // an unknown stock, as before

	// Stored again: a new listing, without the old one's final price until its own prices come.
	stocks[0].Currency = "USD"
	e.upsert(t, stocks[0])
	latest, err = e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S000"}})
	if err != nil {
		t.Fatalf("GetLatestPrices: %v", err)
	}
	if diff := gocmp.Diff(&stockv1.GetLatestPricesResponse{MissingSymbols: []string{"S000"}}, latest, protocmp.Transform()); diff != "" {
		t.Errorf("GetLatestPrices after relisting (-want +got):\n%s", diff)
	}
	if _, err := e.ingest(t, bars[:3], 100); err != nil {
		t.Fatalf("ingest after relisting: %v", err)
	}
	latest, err = e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S000"}})
	if err != nil {
		t.Fatalf("GetLatestPrices: %v", err)
	}
	want := &stockv1.GetLatestPricesResponse{Prices: []*stockv1.Price{withCurrency(bars[2], "USD")}}
	if diff := gocmp.Diff(want, latest, protocmp.Transform()); diff != "" {
		t.Errorf("GetLatestPrices of the new listing (-want +got):\n%s", diff)
	}
}

// withCurrency is p as GetLatestPrices returns it: with its stock's currency.
func withCurrency(p *stockv1.Price, currency string) *stockv1.Price {
	out := proto.Clone(p).(*stockv1.Price)
	out.Currency = currency
	return out
}

// TestList_everyOrderPages walks ListStocks and ListRecommendations in small pages under
// every order they accept: the page tokens hold each sort field's value of the last row.
func TestList_everyOrderPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stocks := seedStocks(t, e, 40)
	var recs []*stockv1.Recommendation
	for i, st := range stocks {
		for j, source := range []string{"model", "analyst"} {
			recs = append(recs, &stockv1.Recommendation{
				Symbol: st.GetSymbol(), Source: source, Action: stockv1.Action(1 + (i+j)%3), Confidence: float64((i*7+j)%10) / 10,
			})
		}
	}
	if _, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: recs}); err != nil {
		t.Fatalf("UpsertRecommendations: %v", err)
	}

	t.Run("stocks", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListStocks(ctx, &stockv1.ListStocksRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			return querytest.Keys(resp.GetStocks(), (*stockv1.Stock).GetSymbol), resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 7, "symbol", "name", "sector", "industry", "exchange", "currency",
			"market_cap", "create_time", "update_time")
	})
	t.Run("recommendations", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListRecommendations(ctx, &stockv1.ListRecommendationsRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			key := func(r *stockv1.Recommendation) string { return r.GetSymbol() + "/" + r.GetSource() }
			return querytest.Keys(resp.GetRecommendations(), key), resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 7, "symbol", "source", "action", "confidence", "create_time", "update_time")
	})
}
