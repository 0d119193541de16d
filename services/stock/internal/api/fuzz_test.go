package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// The fuzz targets send fuzzed requests through a real server (the production interceptors,
// validation, handlers) into PostgreSQL, so they see what a parser's fuzz target cannot: a
// value validation lets through that the database refuses (a NUL in text, a number past a
// column's precision) answers INTERNAL. Strings go as they are, UTF-8 or not
// (apptest.RawCodec). `go test` runs the seeds; to fuzz, from services/stock:
//
//	go test -run '^$' -fuzz '^FuzzListStocks$' -fuzztime 1m ./internal/api/

// fuzzRaw sends a request as it is, strings that are not UTF-8 included.
var fuzzRaw = grpc.ForceCodec(apptest.RawCodec{})

// fuzzStocks are the stocks the fuzz targets find stored.
var fuzzStocks = []*stockv1.Stock{
	{Symbol: "AAPL", Name: "Apple Inc.", Sector: "Technology", Exchange: "NASDAQ", Currency: "USD", MarketCap: 3e12},
	{Symbol: "MSFT", Name: "Microsoft Corp.", Sector: "Technology", Exchange: "NASDAQ", Currency: "USD", MarketCap: 2e12},
	{Symbol: "JPM", Name: "JPMorgan Chase & Co.", Sector: "Financials", Exchange: "NYSE", Currency: "USD", MarketCap: 6e11},
}

// fuzzStrings are seeds every string field gets: what reached PostgreSQL raw before.
var fuzzStrings = []string{"", "\x00", "a\x00b", "\xff", "a\xc3\x28", "\x01", "\x1b[31m", "\u2028", "  ", strings.Repeat("A", 10000)}

// fuzzDecimals are seeds of the decimal fields: the column holds numeric(20, 6).
var fuzzDecimals = []string{"99999999999999.999999", "100000000000000", "99999999999999999999.9999999", "1e400", "-0",
	"0.0000001", "NaN", "-1", "1,5", "1.2.3", "\x00", "1\x00"}

// wantGoodAnswer fails t if err is not an answer a service may give to any request.
func wantGoodAnswer(t *testing.T, what string, err error) {
	t.Helper()
	if bad := apptest.BadAnswer(err); bad != "" {
		t.Fatalf("%s = %s", what, bad)
	}
}

// fuzzChecksum returns a checksum of table's rows, to show that a refused write changed none.
func fuzzChecksum(t *testing.T, pool *pgxpool.Pool, table string) string {
	t.Helper()
	var sum string
	if err := pool.QueryRow(t.Context(), "SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM "+
		table+" t").Scan(&sum); err != nil {
		t.Fatal(err)
	}
	return sum
}

// FuzzListStocks sends filters, orderings, page tokens and page sizes.
func FuzzListStocks(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	page, err := e.client.ListStocks(f.Context(), &stockv1.ListStocksRequest{Filter: `sector = "Technology"`,
		OrderBy: "market_cap desc", PageSize: 1})
	if err != nil || page.GetNextPageToken() == "" {
		f.Fatalf("ListStocks: %v, token %q", err, page.GetNextPageToken())
	}
	token := page.GetNextPageToken()
	flipped := []byte(token)
	flipped[len(flipped)/2] ^= 1
	for _, s := range append(fuzzStrings, `sector = "Technology"`, `name = "a`+"\x00"+`"`, `name = "\xff"`,
		`market_cap > 99999999999999999999`, `market_cap > 1e400`, `create_time > "10000-01-01T00:00:00Z"`,
		`symbol = "A*" OR NOT (exchange = "NYSE")`, strings.Repeat("(", 50)+"x"+strings.Repeat(")", 50)) {
		f.Add(s, "", "", int32(0))
	}
	for _, s := range append(fuzzStrings, "market_cap desc", "symbol desc desc", "nope", "symbol\x00") {
		f.Add("", s, "", int32(0))
	}
	for _, s := range append(fuzzStrings, token, token[:len(token)-1], token+"\x00", string(flipped)) {
		f.Add(`sector = "Technology"`, "market_cap desc", s, int32(1))
	}
	for _, n := range []int32{-1, 0, 1, 1000, 1001, 1<<31 - 1, -1 << 31} {
		f.Add("", "", "", n)
	}
	f.Fuzz(func(t *testing.T, filter, orderBy, pageToken string, pageSize int32) {
		_, err := e.client.ListStocks(t.Context(), &stockv1.ListStocksRequest{Filter: filter, OrderBy: orderBy,
			PageToken: pageToken, PageSize: pageSize}, fuzzRaw)
		wantGoodAnswer(t, "ListStocks", err)
	})
}

// FuzzUpsertStocks sends one stock's fields; a refused upsert must change no row.
func FuzzUpsertStocks(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	valid := fuzzStocks[0]
	f.Add(valid.Symbol, valid.Name, valid.Sector, valid.Exchange, valid.Currency, valid.MarketCap)
	for _, s := range fuzzStrings {
		f.Add(s, valid.Name, valid.Sector, valid.Exchange, valid.Currency, valid.MarketCap)
		f.Add(valid.Symbol, s, valid.Sector, valid.Exchange, valid.Currency, valid.MarketCap)
		f.Add(valid.Symbol, valid.Name, s, valid.Exchange, valid.Currency, valid.MarketCap)
		f.Add(valid.Symbol, valid.Name, valid.Sector, s, valid.Currency, valid.MarketCap)
		f.Add(valid.Symbol, valid.Name, valid.Sector, valid.Exchange, s, valid.MarketCap)
	}
	for _, n := range []int64{-1, 0, 1<<63 - 1, -1 << 63} {
		f.Add(valid.Symbol, valid.Name, valid.Sector, valid.Exchange, valid.Currency, n)
	}
	f.Fuzz(func(t *testing.T, symbol, name, sector, exchange, currency string, marketCap int64) {
		before := fuzzChecksum(t, e.pool, "stock.stocks")
		_, err := e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: symbol,
			Name: name, Sector: sector, Exchange: exchange, Currency: currency, MarketCap: marketCap}}}, fuzzRaw)
		wantGoodAnswer(t, "UpsertStocks", err)
		if err != nil {
			if after := fuzzChecksum(t, e.pool, "stock.stocks"); after != before {
				t.Fatalf("UpsertStocks = %v, and changed stock.stocks", err)
			}
		}
	})
}

// FuzzIngestPrices sends one bar of a stored stock, its decimals and time fuzzed; a refused
// ingest must change no row.
func FuzzIngestPrices(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC).Unix()
	f.Add("AAPL", day, "187.25", "190", "185.5", "189.75", int64(1000))
	for _, d := range fuzzDecimals {
		f.Add("AAPL", day, d, "190", "185.5", "189.75", int64(1000))
		f.Add("AAPL", day, "187.25", "190", "185.5", d, int64(1000))
	}
	for _, s := range fuzzStrings {
		f.Add(s, day, "187.25", "190", "185.5", "189.75", int64(1000))
	}
	for _, sec := range []int64{0, -62135596801, 253402300800, 1<<63 - 1, -1 << 63} {
		f.Add("AAPL", sec, "187.25", "190", "185.5", "189.75", int64(1000))
	}
	f.Add("AAPL", day, "187.25", "190", "185.5", "189.75", int64(-1))
	f.Fuzz(func(t *testing.T, symbol string, seconds int64, open, high, low, closing string, volume int64) {
		before := fuzzChecksum(t, e.pool, "stock.prices") + fuzzChecksum(t, e.pool, "stock.latest_prices")
		err := ingestOne(t.Context(), e.client, &stockv1.Price{Symbol: symbol, Time: &timestamppb.Timestamp{Seconds: seconds},
			Open: open, High: high, Low: low, Close: closing, Volume: volume})
		wantGoodAnswer(t, "IngestPrices", err)
		if err != nil {
			if after := fuzzChecksum(t, e.pool, "stock.prices") + fuzzChecksum(t, e.pool, "stock.latest_prices"); after != before {
				t.Fatalf("IngestPrices = %v, and changed stock.prices", err)
			}
		}
	})
}

// ingestOne sends p alone through IngestPrices, as it is.
func ingestOne(ctx context.Context, c stockv1.StockServiceClient, p *stockv1.Price) error {
	stream, err := c.IngestPrices(ctx, fuzzRaw)
	if err != nil {
		return err
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{p}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

// FuzzWatchLatestPrices sends two symbols, as they are; an answer is the first message or a
// refusal, never an INTERNAL one.
func FuzzWatchLatestPrices(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	f.Add("AAPL", "MSFT")
	f.Add("AAPL", "AAPL")
	f.Add("AAPL", "NOPE")
	for _, s := range fuzzStrings {
		f.Add("AAPL", s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		stream, err := e.client.WatchLatestPrices(ctx, &stockv1.WatchLatestPricesRequest{Symbols: []string{a, b}}, fuzzRaw)
		if err == nil {
			_, err = stream.Recv()
		}
		wantGoodAnswer(t, "WatchLatestPrices", err)
	})
}

// FuzzWatchStockEvents sends a cursor, or a type (then from now on), as they are. A stream the
// server accepts answers once there is an event after its cursor: each call makes one.
func FuzzWatchStockEvents(f *testing.F) {
	e := newEnv(f)
	e.upsert(f, fuzzStocks...)
	first := watchEventsUntil(f, e.client, &stockv1.WatchStockEventsRequest{FromOldest: true}, func(*opsv1.Event) bool { return true })
	cursor := first[0].GetCursor()
	for _, s := range append(fuzzStrings, cursor, cursor[:len(cursor)-1], cursor+"=", outbox.Cursor("stock", -1),
		outbox.Cursor("stock", 1<<62), outbox.Cursor("portfolio", 1), "djEuc3RvY2suMDE") { // "v1.stock.01"
		f.Add(s, "")
	}
	for _, s := range append(fuzzStrings, "pgfleet.stock.v1.StockChanged", "pgfleet.stock.v1.Stock", "pgfleet.ops.v1.Event") {
		f.Add("", s)
	}
	var calls atomic.Int64
	f.Fuzz(func(t *testing.T, cursor, typ string) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req := &stockv1.WatchStockEventsRequest{Cursor: cursor}
		if typ != "" {
			req = &stockv1.WatchStockEventsRequest{Types: []string{typ}} // from now on: a first message at once
		}
		stream, err := e.client.WatchStockEvents(ctx, req, fuzzRaw)
		if err == nil && req.GetCursor() != "" {
			e.upsert(t, &stockv1.Stock{Symbol: "AAPL", Name: fmt.Sprintf("Apple %d", calls.Add(1))})
		}
		if err == nil {
			_, err = stream.Recv()
		}
		wantGoodAnswer(t, "WatchStockEvents", err)
	})
}
