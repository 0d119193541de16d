package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// The data every scenario reads: cfg.stocks stocks S0000.., eleven sectors, market caps
// from 100 M to 3 T spread so that most of a sector passes the list filter's 1 B bound.
var sectors = []string{"Technology", "Health Care", "Financials", "Consumer Discretionary", "Communication Services",
	"Industrials", "Consumer Staples", "Energy", "Utilities", "Real Estate", "Materials"}

func symbolOf(i int) string { return fmt.Sprintf("S%04d", i) }

// loadStocks upserts the stocks through the stock service, 1000 per call.
func (b *bench) loadStocks(ctx context.Context) error {
	return b.upsertStocks(ctx, b.stock.grpcAddr, b.admin)
}

// upsertStocks upserts the stocks through the stock service at addr, 1000 per call, then
// analyzes them as admin (a superuser pool on the service's database).
func (b *bench) upsertStocks(ctx context.Context, addr string, admin *pgxpool.Pool) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := stockv1.NewStockServiceClient(conn)
	b.symbols = make([]string, b.cfg.stocks)
	for start := 0; start < b.cfg.stocks; start += 1000 {
		req := &stockv1.UpsertStocksRequest{}
		for i := start; i < min(start+1000, b.cfg.stocks); i++ {
			b.symbols[i] = symbolOf(i)
			req.Stocks = append(req.Stocks, &stockv1.Stock{
				Symbol: b.symbols[i], Name: "Bench Stock " + strconv.Itoa(i), Sector: sectors[i%len(sectors)],
				Industry: "Industry " + strconv.Itoa(i%37), Exchange: []string{"NYSE", "NASDAQ"}[i%2], Currency: "USD",
				MarketCap: 100_000_000 * int64(1+(i*7919)%30000),
			})
		}
		if _, err := client.UpsertStocks(outgoing(ctx, b.adminTok), req); err != nil {
			return fmt.Errorf("UpsertStocks: %w", err)
		}
	}
	_, err = admin.Exec(ctx, "ANALYZE stock.stocks")
	return err
}

// Ingest data: ingestSymbols x ingestBars hourly bars from 2020-01-01, symbol after symbol,
// each symbol's bars in time order, sent ingestBatch rows per message, as
// services/stock's BenchmarkIngestPrices sends them.
const (
	ingestSymbols = 500
	ingestBars    = 2000
	ingestBatch   = 5000
	ingestRows    = ingestSymbols * ingestBars
)

var ingestStart = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// ingestRow returns row n of the ingest data.
func ingestRow(n int) (symbol string, ts time.Time, open, high, low, close string, volume int64) {
	s, i := n/ingestBars, n%ingestBars
	return symbolOf(s), ingestStart.Add(time.Duration(i) * time.Hour), "100.5", "101.25", "99.75",
		strconv.Itoa(100+i%7) + ".125", int64(i)
}

// ingestMessages builds the IngestPrices stream's messages.
func ingestMessages() []*stockv1.IngestPricesRequest {
	msgs := make([]*stockv1.IngestPricesRequest, 0, ingestRows/ingestBatch)
	for start := 0; start < ingestRows; start += ingestBatch {
		m := &stockv1.IngestPricesRequest{Prices: make([]*stockv1.Price, 0, ingestBatch)}
		for n := start; n < start+ingestBatch; n++ {
			sym, ts, o, h, l, c, v := ingestRow(n)
			m.Prices = append(m.Prices, &stockv1.Price{Symbol: sym, Time: timestamppb.New(ts), Open: o, High: h, Low: l, Close: c, Volume: v})
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// writeIngestCSV writes the same rows as CSV for psql's \copy.
func writeIngestCSV(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for n := range ingestRows {
		sym, ts, o, h, l, c, v := ingestRow(n)
		fmt.Fprintf(w, "%s,%s,%s,%s,%s,%s,%d\n", sym, ts.Format(time.RFC3339), o, h, l, c, v)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
