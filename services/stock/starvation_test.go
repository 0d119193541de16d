package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// bigBars is how many bars the exported symbol holds: far more than an unread stream's
// flow-control windows take, so its handler blocks in Send.
const bigBars = 20_000

// readBound bounds each read made while idle streams are open: generous, since the point is
// that the read succeeds at all, not how fast.
const readBound = 10 * time.Second

// TestStarvation is issue 12's second defect: streams whose clients never read (exports) or
// never send the rest (ingests), more of them than the pool has connections, held every
// pooled connection, and every stock read timed out. With them open, reads must succeed.
func TestStarvation(t *testing.T) {
	t.Parallel()
	const pool = 4
	dbURL := pgtest.NewDBURL(t)
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":     dbURL,
		"DB_POOL_SIZE":     fmt.Sprint(pool),
		"DB_POOL_MIN_IDLE": "1",
		"DRAIN_TIMEOUT":    "2s",
		// Long, so that what keeps reads alive is the ingests' share of the pool, not the
		// idle timeout ending them.
		"INGEST_IDLE_TIMEOUT": "5m",
	})
	apptest.AwaitHealth(t, svc.Conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)
	admin := stockv1.NewStockServiceClient(svc.Conn)
	ingestSymbols := make([]string, 3*pool)
	stocks := []*stockv1.Stock{{Symbol: "AAPL", Name: "Apple Inc."}, {Symbol: "BIG", Name: "Big Corp."}}
	for i := range ingestSymbols {
		ingestSymbols[i] = fmt.Sprintf("IN%02d", i)
		stocks = append(stocks, &stockv1.Stock{Symbol: ingestSymbols[i], Name: ingestSymbols[i]})
	}
	if _, err := admin.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	ingestBars(t, admin, "AAPL", start, 1)
	ingestBars(t, admin, "BIG", start, bigBars)

	// Idle clients dial their own connection with the smallest flow-control windows (which
	// also turns off grpc's window growth), so an unread stream fills them quickly.
	idle := stockv1.NewStockServiceClient(apptest.Dial(t, svc.GRPCAddr,
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))

	t.Run("idle exports", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel() // ends the idle streams
		for i := range 3 * pool {
			// Each from its own caller, so per-caller limits do not refuse them: what is
			// tested is the pool.
			stream, err := idle.StreamPrices(ctx, &stockv1.StreamPricesRequest{Symbol: "BIG"},
				authtest.As(t, fmt.Sprintf("reader%d@example.com", i)))
			if err != nil {
				t.Fatalf("StreamPrices %d: %v", i, err)
			}
			awaitHeader(t, i, stream)
		}
		requireReads(t, admin)
	})

	t.Run("idle ingests", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel() // ends the idle streams: nothing they sent is written
		for i, sym := range ingestSymbols {
			stream, err := idle.IngestPrices(ctx, authtest.As(t, fmt.Sprintf("feed%d@example.com", i), auth.RoleIngest))
			if err != nil {
				t.Fatalf("IngestPrices %d: %v", i, err)
			}
			// One batch, then nothing: the stream stays open, waiting for more.
			if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars(sym, start, 10)}); err != nil {
				t.Fatalf("IngestPrices %d: Send: %v", i, err)
			}
		}
		// Once an ingest holds a transaction open, the service is working on them.
		awaitTransaction(t, dbURL)
		requireReads(t, admin)
	})
}

// awaitHeader waits for the header of an export, sent with its first message, so that its
// handler is known to be running, and fails t if it does not come within readBound.
func awaitHeader(t *testing.T, i int, stream grpc.ServerStreamingClient[stockv1.StreamPricesResponse]) {
	t.Helper()
	got := make(chan error, 1)
	go func() {
		_, err := stream.Header()
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("StreamPrices %d: Header: %v", i, err)
		}
	case <-time.After(readBound):
		t.Errorf("StreamPrices %d: no first message within %v: the export is waiting for a connection", i, readBound)
	}
}

// requireReads fails t unless reads of stocks and latest prices succeed, each within
// readBound.
func requireReads(t *testing.T, c stockv1.StockServiceClient) {
	t.Helper()
	for round := range 3 {
		ctx, cancel := context.WithTimeout(t.Context(), readBound)
		if _, err := c.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAPL"}); err != nil {
			t.Errorf("round %d: GetStock with idle streams open: %v", round, err)
		}
		cancel()
		ctx, cancel = context.WithTimeout(t.Context(), readBound)
		resp, err := c.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: []string{"AAPL", "BIG"}})
		cancel()
		if err != nil {
			t.Errorf("round %d: GetLatestPrices with idle streams open: %v", round, err)
		} else if len(resp.GetPrices()) != 2 {
			t.Errorf("round %d: GetLatestPrices = %v, want AAPL's and BIG's", round, resp)
		}
	}
}

// awaitTransaction waits until another session on the database is in a transaction: an
// ingest's, copying its stream (state active) or between statements (idle in transaction).
func awaitTransaction(t *testing.T, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const q = `
		SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`
	for deadline := time.Now().Add(readBound); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int
		if err := conn.QueryRow(t.Context(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatalf("no ingest began a transaction within %v", readBound)
}

// bars returns n one-minute bars of symbol from start.
func bars(symbol string, start time.Time, n int) []*stockv1.Price {
	out := make([]*stockv1.Price, n)
	for i := range out {
		c := fmt.Sprintf("%d.25", 100+i%7)
		out[i] = &stockv1.Price{Symbol: symbol, Time: timestamppb.New(start.Add(time.Duration(i) * time.Minute)),
			Open: "100.5", High: "110", Low: "90", Close: c, Volume: int64(i)}
	}
	return out
}

// ingestBars stores n bars of symbol from start, as an append-only stream.
func ingestBars(t *testing.T, c stockv1.StockServiceClient, symbol string, start time.Time, n int) {
	t.Helper()
	// Built before the stream opens: the service ends an ingest that sends nothing for
	// INGEST_IDLE_TIMEOUT (5 s in TestLimits), and building 20,000 bars under the race
	// detector on a busy machine can take longer than that.
	all := bars(symbol, start, n)
	stream, err := c.IngestPrices(t.Context())
	if err != nil {
		t.Fatalf("IngestPrices: %v", err)
	}
	for i := 0; i < n; i += 10_000 {
		msg := &stockv1.IngestPricesRequest{Prices: all[i:min(i+10_000, n)]}
		if i == 0 {
			msg.AppendOnly = &stockv1.AppendOnly{Symbols: []string{symbol}}
		}
		if err := stream.Send(msg); err != nil {
			_, status := stream.CloseAndRecv() // Send sees io.EOF; the status says why
			t.Fatalf("IngestPrices: Send: %v (%v)", err, status)
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("IngestPrices %s: %v", symbol, err)
	}
}
