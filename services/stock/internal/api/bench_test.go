package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
)

// Benchmarks compare each API path with the same work done straight on pgx, on the same
// database in the same run: the gap is what gRPC, validation and the service cost.
// `make bench` runs them; figures go into the README.

// BenchmarkGetStock: one point read by primary key, 32 callers at once.
func BenchmarkGetStock(b *testing.B) {
	e := newEnv(b)
	seedStocks(b, e, 500)
	const q = `SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time
		FROM stock.stocks WHERE symbol = $1`

	b.Run("pgx", func(b *testing.B) {
		b.SetParallelism(16) // x GOMAXPROCS(2) = 32 goroutines
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				var st struct {
					sym, name, sector, industry, exchange, currency string
					mcap                                            int64
					c, u                                            time.Time
				}
				err := e.pool.QueryRow(b.Context(), q, fmt.Sprintf("S%03d", i%500)).Scan(&st.sym, &st.name,
					&st.sector, &st.industry, &st.exchange, &st.currency, &st.mcap, &st.c, &st.u)
				if err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
	b.Run("grpc", func(b *testing.B) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := e.client.GetStock(b.Context(), &stockv1.GetStockRequest{Symbol: fmt.Sprintf("S%03d", i%500)}); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}

// BenchmarkIngestPrices: rows per second of a 1M-row load (500 symbols x 2000 bars) through
// IngestPrices, against a bare COPY of the same rows into a table of the same shape.
func BenchmarkIngestPrices(b *testing.B) {
	const symbols, bars = 500, 2000
	rows := symbols * bars
	prices := make([]*stockv1.Price, 0, rows)
	for s := range symbols {
		for i := range bars {
			prices = append(prices, &stockv1.Price{
				Symbol: fmt.Sprintf("S%03d", s), Time: timestamppb.New(day0.Add(time.Duration(i) * time.Hour)),
				Open: "100.5", High: "101.25", Low: "99.75", Close: fmt.Sprintf("%d.125", 100+i%7), Volume: int64(i),
			})
		}
	}

	b.Run("copy", func(b *testing.B) {
		e := newEnv(b)
		for b.Loop() {
			b.StopTimer()
			if _, err := e.pool.Exec(b.Context(), `DROP TABLE IF EXISTS raw_prices;
				CREATE TABLE raw_prices (LIKE stock.prices INCLUDING ALL)`); err != nil {
				b.Fatal(err)
			}
			src := pgx.CopyFromSlice(len(prices), func(i int) ([]any, error) {
				p := prices[i]
				var o, h, l, c pgtype.Numeric
				_ = o.Scan(p.GetOpen())
				_ = h.Scan(p.GetHigh())
				_ = l.Scan(p.GetLow())
				_ = c.Scan(p.GetClose())
				return []any{p.GetSymbol(), p.GetTime().AsTime(), o, h, l, c, p.GetVolume()}, nil
			})
			b.StartTimer()
			if _, err := e.pool.CopyFrom(b.Context(), pgx.Identifier{"raw_prices"},
				[]string{"symbol", "ts", "open", "high", "low", "close", "volume"}, src); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("grpc", func(b *testing.B) {
		e := newEnv(b)
		seedStocks(b, e, symbols)
		for b.Loop() {
			b.StopTimer()
			if _, err := e.pool.Exec(b.Context(), `TRUNCATE stock.prices, stock.latest_prices`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			resp, err := e.ingest(b, prices, 5000)
			if err != nil || resp.GetInsertedCount() != int64(rows) {
				b.Fatalf("ingest = %v, %v; want %d inserted", resp, err, rows)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkStreamPrices: rows per second of exporting 1M rows of one symbol through
// StreamPrices, against reading the same rows straight off pgx.
func BenchmarkStreamPrices(b *testing.B) {
	const rows = 1_000_000
	e := newEnv(b)
	seedStocks(b, e, 1)
	const fill = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S000', timestamptz '2020-01-01' + i * interval '1 minute', 100.5, 101.25, 99.75, 100 + i % 7, i
		FROM generate_series(1, $1) AS i`
	if _, err := e.pool.Exec(b.Context(), fill, rows); err != nil {
		b.Fatal(err)
	}
	b.Run("pgx", func(b *testing.B) {
		for b.Loop() {
			r, err := e.pool.Query(b.Context(), `SELECT symbol, ts, open::text, high::text, low::text, close::text, volume
				FROM stock.prices WHERE symbol = 'S000' ORDER BY ts`)
			if err != nil {
				b.Fatal(err)
			}
			var n int
			var p struct {
				sym, o, h, l, c string
				ts              time.Time
				v               int64
			}
			for r.Next() {
				if err := r.Scan(&p.sym, &p.ts, &p.o, &p.h, &p.l, &p.c, &p.v); err != nil {
					b.Fatal(err)
				}
				n++
			}
			if r.Err() != nil || n != rows {
				b.Fatalf("read %d rows, err %v", n, r.Err())
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
	b.Run("grpc", func(b *testing.B) {
		for b.Loop() {
			stream, err := e.client.StreamPrices(b.Context(), &stockv1.StreamPricesRequest{Symbol: "S000", BatchSize: 5000})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for {
				resp, err := stream.Recv()
				if err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					b.Fatal(err)
				}
				n += len(resp.GetPrices())
			}
			if n != rows {
				b.Fatalf("streamed %d rows, want %d", n, rows)
			}
		}
		b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	})
}

// BenchmarkListStocks: one page of 50 of a filtered, sorted list, 32 callers at once, first
// pages and the pages after them (a page token, so a keyset condition), against the SQL the
// service runs for the same pages, written by hand on pgx.
func BenchmarkListStocks(b *testing.B) {
	e := newEnv(b)
	seedStocks(b, e, 3000)
	const (
		filter  = `sector = "Technology" AND market_cap >= 2000000000`
		orderBy = "market_cap desc"
		q       = `SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time
			FROM stock.stocks WHERE (sector = $1 AND market_cap >= $2) ORDER BY market_cap DESC, symbol DESC LIMIT 51`
		qAfter = `SELECT symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time
			FROM stock.stocks WHERE ((sector = $1 AND market_cap >= $2) AND ((market_cap, symbol) < ($3, $4)))
			ORDER BY market_cap DESC, symbol DESC LIMIT 51`
	)
	first, err := e.client.ListStocks(b.Context(), &stockv1.ListStocksRequest{Filter: filter, OrderBy: orderBy})
	if err != nil || len(first.GetStocks()) != 50 || first.GetNextPageToken() == "" {
		b.Fatalf("ListStocks = %d stocks, token %q, %v; want a full page and a token",
			len(first.GetStocks()), first.GetNextPageToken(), err)
	}
	last := first.GetStocks()[49]

	b.Run("pgx", func(b *testing.B) {
		inParallel(b, func(i int) error {
			args := []any{"Technology", int64(2_000_000_000)}
			sql := q
			if i%2 == 1 {
				sql, args = qAfter, append(args, last.GetMarketCap(), last.GetSymbol())
			}
			rows, _ := e.pool.Query(b.Context(), sql, args...)
			var st struct {
				sym, name, sector, industry, exchange, currency string
				mcap                                            int64
				c, u                                            time.Time
			}
			return wantRows(rows, 51, &st.sym, &st.name, &st.sector, &st.industry, &st.exchange, &st.currency, &st.mcap, &st.c, &st.u)
		})
	})
	b.Run("grpc", func(b *testing.B) {
		inParallel(b, func(i int) error {
			req := &stockv1.ListStocksRequest{Filter: filter, OrderBy: orderBy}
			if i%2 == 1 {
				req.PageToken = first.GetNextPageToken()
			}
			resp, err := e.client.ListStocks(b.Context(), req)
			if err == nil && len(resp.GetStocks()) != 50 {
				err = fmt.Errorf("ListStocks returned %d stocks, want 50", len(resp.GetStocks()))
			}
			return err
		})
	})
}

// BenchmarkListPrices: one page of 100 bars of one symbol in a time range, 32 callers at
// once, first pages and pages after a token, against the same SQL on pgx.
func BenchmarkListPrices(b *testing.B) {
	e := newEnv(b)
	seedStocks(b, e, 1)
	const fill = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S000', timestamptz '2024-01-01' + i * interval '1 hour', 100.5, 101.25, 99.75, 100 + i % 7, i
		FROM generate_series(1, 20000) AS i`
	if _, err := e.pool.Exec(b.Context(), fill); err != nil {
		b.Fatal(err)
	}
	start, end := day0, day0.AddDate(1, 0, 0)
	const (
		q = `SELECT symbol, ts, open::text, high::text, low::text, close::text, volume
			FROM stock.prices WHERE symbol = $1 AND ts >= $2 AND ts < $3 ORDER BY ts ASC LIMIT 101`
		qAfter = `SELECT symbol, ts, open::text, high::text, low::text, close::text, volume
			FROM stock.prices WHERE symbol = $1 AND ts >= $2 AND ts < $3 AND (ts > $4) ORDER BY ts ASC LIMIT 101`
	)
	req := &stockv1.ListPricesRequest{Symbol: "S000", StartTime: timestamppb.New(start), EndTime: timestamppb.New(end), PageSize: 100}
	first, err := e.client.ListPrices(b.Context(), req)
	if err != nil || len(first.GetPrices()) != 100 || first.GetNextPageToken() == "" {
		b.Fatalf("ListPrices = %d prices, token %q, %v; want a full page and a token",
			len(first.GetPrices()), first.GetNextPageToken(), err)
	}
	last := first.GetPrices()[99].GetTime().AsTime()

	b.Run("pgx", func(b *testing.B) {
		inParallel(b, func(i int) error {
			args := []any{"S000", start, end}
			sql := q
			if i%2 == 1 {
				sql, args = qAfter, append(args, last)
			}
			rows, _ := e.pool.Query(b.Context(), sql, args...)
			var p struct {
				sym, o, h, l, c string
				ts              time.Time
				v               int64
			}
			return wantRows(rows, 101, &p.sym, &p.ts, &p.o, &p.h, &p.l, &p.c, &p.v)
		})
	})
	b.Run("grpc", func(b *testing.B) {
		inParallel(b, func(i int) error {
			r := &stockv1.ListPricesRequest{Symbol: "S000", StartTime: req.GetStartTime(), EndTime: req.GetEndTime(), PageSize: 100}
			if i%2 == 1 {
				r.PageToken = first.GetNextPageToken()
			}
			resp, err := e.client.ListPrices(b.Context(), r)
			if err == nil && len(resp.GetPrices()) != 100 {
				err = fmt.Errorf("ListPrices returned %d prices, want 100", len(resp.GetPrices()))
			}
			return err
		})
	})
}

// inParallel runs call from 32 goroutines until the benchmark has its count; i counts the
// calls of each goroutine, so that they alternate first pages and next pages.
func inParallel(b *testing.B, call func(i int) error) {
	b.SetParallelism(16) // x GOMAXPROCS(2) = 32 goroutines
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if err := call(i); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// wantRows scans every row into dest, as a store does, and fails unless there are n.
func wantRows(rows pgx.Rows, n int, dest ...any) error {
	got := 0
	if _, err := pgx.ForEachRow(rows, dest, func() error { got++; return nil }); err != nil {
		return err
	}
	if got != n {
		return fmt.Errorf("read %d rows, want %d", got, n)
	}
	return nil
}

// BenchmarkIngestPrices200k: rows per second of a 200k-row ingest of 200 symbols (1000 bars
// each, later than the stored ones) through both paths of IngestPrices, merge (staged) and
// append_only: the figure the outbox's events (one LatestPriceChanged per symbol, written by
// the statement that keeps stock.latest_prices) must leave nearly whole.
func BenchmarkIngestPrices200k(b *testing.B) {
	benchmarkIngestWatched(b, 0)
}

// BenchmarkIngestPrices200kWatched is BenchmarkIngestPrices200k with 1000 WatchLatestPrices
// subscribers of the 200 symbols attached (on 10 connections), each reading every message:
// what fan-out costs the ingest on the same server.
func BenchmarkIngestPrices200kWatched(b *testing.B) {
	benchmarkIngestWatched(b, 1000)
}

func benchmarkIngestWatched(b *testing.B, subscribers int) {
	const symbols, bars = 200, 1000
	e := newEnvWith(b, map[string]string{"STREAMS_PER_CALLER": "0"})
	seedStocks(b, e, symbols)
	names := make([]string, symbols)
	for s := range symbols {
		names[s] = fmt.Sprintf("S%03d", s)
	}
	var received atomic.Int64
	var heapPer, stacksPer int64
	if subscribers > 0 {
		ctx, stop := context.WithCancel(b.Context())
		var wg sync.WaitGroup
		defer func() {
			stop()
			wg.Wait()
		}()
		conns := make([]stockv1.StockServiceClient, 10)
		for i := range conns {
			conns[i] = stockv1.NewStockServiceClient(apptest.Dial(b, e.addr, authtest.Admin(b)))
		}
		var started sync.WaitGroup
		mem := func() (heap, stacks int64) {
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			return int64(m.HeapAlloc), int64(m.StackInuse)
		}
		heap0, stacks0 := mem()
		defer func() {
			b.Logf("memory per idle subscriber, client and server in this process: %d bytes of heap, %d of goroutine stacks", heapPer, stacksPer)
		}()
		for i := range subscribers {
			stream, err := conns[i%len(conns)].WatchLatestPrices(ctx, &stockv1.WatchLatestPricesRequest{Symbols: names})
			if err != nil {
				b.Fatal(err)
			}
			started.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := stream.Recv() // the snapshot
				started.Done()
				for err == nil {
					if _, err = stream.Recv(); err == nil {
						received.Add(1)
					}
				}
			}()
		}
		started.Wait()
		heap1, stacks1 := mem()
		heapPer, stacksPer = max(0, heap1-heap0)/int64(subscribers), max(0, stacks1-stacks0)/int64(subscribers)
	}
	// Each round ingests bars after the previous round's, so every round moves all 200
	// latest prices and no round pays for truncating between rounds.
	round := 0
	batch := func() []*stockv1.Price {
		prices := make([]*stockv1.Price, 0, symbols*bars)
		base := day0.Add(time.Duration(round*bars) * time.Minute)
		for s := range symbols {
			for i := range bars {
				prices = append(prices, &stockv1.Price{
					Symbol: names[s], Time: timestamppb.New(base.Add(time.Duration(i) * time.Minute)),
					Open: "100.5", High: "101.25", Low: "99.75", Close: fmt.Sprintf("%d.125", 100+i%7), Volume: int64(i),
				})
			}
		}
		round++
		return prices
	}
	for _, appendOnly := range []bool{false, true} {
		name := "merge"
		if appendOnly {
			name = "append_only"
		}
		b.Run(name, func(b *testing.B) {
			before := received.Load()
			for b.Loop() {
				b.StopTimer()
				prices := batch()
				b.StartTimer()
				resp, err := e.ingestStream(b, prices, 5000, appendOnly, names)
				if err != nil || resp.GetInsertedCount() != int64(len(prices)) {
					b.Fatalf("ingest = %v, %v; want %d inserted", resp, err, len(prices))
				}
			}
			b.ReportMetric(float64(symbols*bars)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			if subscribers > 0 { // messages after the snapshot, read by the end of the ingests
				b.ReportMetric(float64(received.Load()-before)/float64(subscribers*b.N), "msgs/subscriber/op")
			}
		})
	}
}

// BenchmarkWatchStockEvents: events per second from a write to a WatchStockEvents consumer: each round
// one UpsertStocks changes 5000 stocks (5000 StockChanged events in one transaction), and the
// round ends when a consumer, watching since before, has received all of them: append,
// sequencing, the feed into the ring and delivery.
func BenchmarkWatchStockEvents(b *testing.B) {
	const n = 5000
	e := newEnv(b)
	stocks := seedStocks(b, e, n)
	stream, err := e.client.WatchStockEvents(b.Context(), &stockv1.WatchStockEventsRequest{Types: []string{"pgfleet.stock.v1.StockChanged"}})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the first message: the stream has begun
		b.Fatal(err)
	}
	round := 0
	for b.Loop() {
		round++
		for _, st := range stocks {
			st.Name = fmt.Sprintf("Stock %s, round %d", st.GetSymbol(), round)
		}
		e.upsert(b, stocks...)
		for got := 0; got < n; {
			resp, err := stream.Recv()
			if err != nil {
				b.Fatal(err)
			}
			got += len(resp.GetEvents())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkExportPrices: rows per second of a 2M-row export (200 symbols x 10000 bars) through
// ExportPrices, protobuf and Arrow, batches of 10000, EXPORT_WORKERS=2, with the peak heap
// live (server and client in this process, sampled every 5ms) over its baseline: what the
// bounded queues promise to keep flat whatever the export's size.
func BenchmarkExportPrices(b *testing.B) {
	e := newEnv(b)
	seedStocks(b, e, 200)
	const fill = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || lpad(s::text, 3, '0'), timestamptz '2000-01-01' + i * interval '1 day', 100.5, 101.25, 99.75, 100 + i % 7, i
		FROM generate_series(0, 199) AS s, generate_series(1, 10000) AS i;
		ANALYZE stock.prices`
	if _, err := e.pool.Exec(b.Context(), fill); err != nil {
		b.Fatal(err)
	}
	// The same export of a tenth of the universe shows the peak heap is the queues', not the
	// export's size.
	for _, c := range []struct {
		name   string
		f      stockv1.ExportFormat
		filter string
		total  int
	}{
		{"proto_2M", stockv1.ExportFormat_EXPORT_FORMAT_PROTO, "", 2_000_000},
		{"arrow_2M", stockv1.ExportFormat_EXPORT_FORMAT_ARROW, "", 2_000_000},
		{"arrow_200k", stockv1.ExportFormat_EXPORT_FORMAT_ARROW, `symbol < "S020"`, 200_000},
	} {
		f, total := c.f, c.total
		b.Run(c.name, func(b *testing.B) {
			// Peak of the live heap (as each GC found it: runtime/metrics' /gc/heap/live:bytes)
			// over the baseline: what the export keeps, garbage not counted.
			runtime.GC()
			live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
			metrics.Read(live)
			base := live[0].Value.Uint64()
			var peak atomic.Uint64
			stop := make(chan struct{})
			sampled := make(chan struct{})
			go func() {
				defer close(sampled)
				t := time.NewTicker(5 * time.Millisecond)
				defer t.Stop()
				s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						metrics.Read(s)
						if v := s[0].Value.Uint64(); v > peak.Load() {
							peak.Store(v)
						}
					}
				}
			}()
			var bytes int64
			for b.Loop() {
				stream, err := e.client.ExportPrices(b.Context(), &stockv1.ExportPricesRequest{Format: f, Filter: c.filter})
				if err != nil {
					b.Fatal(err)
				}
				rows := 0
				for {
					msg, err := stream.Recv()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					rows += len(msg.GetRows())
					bytes += int64(len(msg.GetArrowIpc()))
				}
				if f == stockv1.ExportFormat_EXPORT_FORMAT_PROTO && rows != total {
					b.Fatalf("exported %d rows, want %d", rows, total)
				}
			}
			close(stop)
			<-sampled
			b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(peak.Load()-min(peak.Load(), base))/(1<<20), "peak-live-heap-MiB")
			if bytes > 0 {
				b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
			}
		})
	}
}
