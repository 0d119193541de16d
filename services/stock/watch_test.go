package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

// subscriber is one WatchLatestPrices stream's view: the newest price it got of each symbol.
type subscriber struct {
	symbols []string
	mu      sync.Mutex
	have    map[string]*stockv1.Price
	err     error // the first wrong message: a bar older than one it had, an unwatched symbol
}

func (s *subscriber) run(ctx context.Context, client stockv1.StockServiceClient, started *sync.WaitGroup) {
	stream, err := client.WatchLatestPrices(ctx, &stockv1.WatchLatestPricesRequest{Symbols: s.symbols})
	first := true
	for err == nil {
		var resp *stockv1.WatchLatestPricesResponse
		if resp, err = stream.Recv(); err != nil {
			break
		}
		s.mu.Lock()
		for _, p := range resp.GetPrices() {
			old, seen := s.have[p.GetSymbol()]
			switch {
			case !slices.Contains(s.symbols, p.GetSymbol()):
				s.err = firstErr(s.err, fmt.Errorf("got %s, not watched", p.GetSymbol()))
			case seen && p.GetTime().AsTime().Before(old.GetTime().AsTime()):
				s.err = firstErr(s.err, fmt.Errorf("%s: got the bar of %v after the one of %v", p.GetSymbol(), p.GetTime().AsTime(), old.GetTime().AsTime()))
			}
			s.have[p.GetSymbol()] = p
		}
		s.mu.Unlock()
		if first {
			first = false
			started.Done()
		}
	}
	if first {
		started.Done()
	}
	if ctx.Err() == nil {
		s.mu.Lock()
		s.err = firstErr(s.err, fmt.Errorf("stream ended: %w", err))
		s.mu.Unlock()
	}
}

// resumer is a WatchStockEvents consumer of LatestPriceChanged that cancels its stream every few
// messages and resumes from the last cursor it got.
type resumer struct {
	mu         sync.Mutex
	positions  []int64 // every event's position as received, duplicates included
	resumes    int
	during     int // resumes while ingestion ran
	duplicates int
	err        error
}

func (r *resumer) run(ctx context.Context, clients []stockv1.StockServiceClient, seed uint64, until func() int64, ingesting *atomic.Bool) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	cursor, maxPos := "", int64(0)
	for ctx.Err() == nil {
		if end := until(); end > 0 && maxPos >= end {
			return
		}
		req := &stockv1.WatchStockEventsRequest{Types: []string{"pgfleet.stock.v1.LatestPriceChanged"}, Cursor: cursor, FromOldest: cursor == ""}
		sctx, cancel := context.WithCancel(ctx)
		stream, err := clients[rnd.IntN(len(clients))].WatchStockEvents(sctx, req)
		for n := 1 + rnd.IntN(5); err == nil && n > 0; n-- {
			var resp *stockv1.WatchStockEventsResponse
			if resp, err = stream.Recv(); err != nil {
				break
			}
			r.mu.Lock()
			for _, ev := range resp.GetEvents() {
				pos, perr := outbox.ParseCursor("stock", ev.GetCursor())
				if perr != nil {
					r.err = firstErr(r.err, perr)
				}
				if pos <= maxPos {
					r.duplicates++
				}
				maxPos = max(maxPos, pos)
				r.positions = append(r.positions, pos)
			}
			r.mu.Unlock()
			cursor = resp.GetCursor()
			if end := until(); end > 0 && maxPos >= end {
				break
			}
		}
		cancel()
		if err != nil && ctx.Err() == nil {
			r.mu.Lock()
			r.err = firstErr(r.err, fmt.Errorf("WatchStockEvents from %q: %w", cursor, err))
			r.mu.Unlock()
			return
		}
		r.mu.Lock()
		r.resumes++
		if ingesting.Load() {
			r.during++
		}
		r.mu.Unlock()
	}
}

// TestWatch_noLoss: two stock processes on one database (two replicas sharing one outbox);
// 24 WatchLatestPrices subscribers split across both, each watching its own subset of 50
// symbols, and 4 WatchStockEvents consumers that cancel and resume from their last cursor every
// few messages, on either process, while 4 IngestPrices streams write 20,000 bars over the
// 50 symbols through both. When ingestion ends, every subscriber ends on exactly the final
// latest price of each symbol it watches (GetLatestPrices) and never got a bar older than one
// it had; every consumer got every LatestPriceChanged position, in order, none missing.
func TestWatch_noLoss(t *testing.T) {
	t.Parallel()
	// One caller (the admin) holds every stream here: lift its limit of open streams.
	env := map[string]string{"DATABASE_URL": pgtest.NewDBURL(t, migrations.Set), "DRAIN_TIMEOUT": "5s", "STREAMS_PER_CALLER": "100"}
	replicas := []apptest.Service{apptest.Start(t, run, env), apptest.Start(t, run, env)}
	for _, r := range replicas {
		apptest.AwaitHealth(t, r.Conn, "", healthpb.HealthCheckResponse_SERVING, time.Minute)
	}
	clients := []stockv1.StockServiceClient{stockv1.NewStockServiceClient(replicas[0].Conn), stockv1.NewStockServiceClient(replicas[1].Conn)}
	ctx := t.Context()

	const nSymbols, nSubscribers, nWriters, nResumers = 50, 24, 4, 4
	const barsPerWriter, batch = 5000, 250 // 20,000 bars, 80 ingests
	symbols := make([]string, nSymbols)
	stocks := make([]*stockv1.Stock, nSymbols)
	for i := range symbols {
		symbols[i] = fmt.Sprintf("S%02d", i)
		stocks[i] = &stockv1.Stock{Symbol: symbols[i], Name: "Stock " + symbols[i], Currency: "USD"}
	}
	if _, err := clients[0].UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatal(err)
	}

	watchCtx, stopWatching := context.WithCancel(ctx)
	defer stopWatching()
	subs := make([]*subscriber, nSubscribers)
	var started sync.WaitGroup
	var watching sync.WaitGroup
	for i := range subs {
		// Its own random subset of 20 to 50 symbols, sorted.
		rnd := rand.New(rand.NewPCG(uint64(i), 3))
		mine := slices.Clone(symbols)
		rnd.Shuffle(len(mine), func(a, b int) { mine[a], mine[b] = mine[b], mine[a] })
		mine = mine[:20+rnd.IntN(31)]
		slices.Sort(mine)
		subs[i] = &subscriber{symbols: mine, have: map[string]*stockv1.Price{}}
		started.Add(1)
		watching.Add(1)
		go func() {
			defer watching.Done()
			subs[i].run(watchCtx, clients[i%2], &started)
		}()
	}
	started.Wait()

	var endPos sync.Mutex
	end := int64(0) // the last LatestPriceChanged position, once ingestion has ended
	until := func() int64 {
		endPos.Lock()
		defer endPos.Unlock()
		return end
	}
	var ingesting atomic.Bool
	ingesting.Store(true)
	resumers := make([]*resumer, nResumers)
	for i := range resumers {
		resumers[i] = &resumer{}
		watching.Add(1)
		go func() {
			defer watching.Done()
			resumers[i].run(watchCtx, clients, uint64(i), until, &ingesting)
		}()
	}

	began := time.Now()
	var g errgroup.Group
	for w := range nWriters {
		g.Go(func() error {
			rnd := rand.New(rand.NewPCG(uint64(w), 2))
			for n := 0; n < barsPerWriter; n += batch {
				prices := make([]*stockv1.Price, batch)
				for i := range prices {
					// Times interleave across writers, so their ingests move some latest prices
					// and leave others, and the final one of a symbol may come from any writer.
					step := (n+i)*nWriters + w
					c := fmt.Sprintf("%d.%02d", 100+rnd.IntN(900), rnd.IntN(100))
					prices[i] = &stockv1.Price{Symbol: symbols[rnd.IntN(nSymbols)], Time: timestamppb.New(day0.Add(time.Duration(step) * time.Minute)),
						Open: c, High: c, Low: c, Close: c, Volume: int64(step)}
				}
				if err := ingest(ctx, clients[(w+n/batch)%2], prices); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	ingestTime := time.Since(began)
	ingesting.Store(false)

	final, err := clients[0].GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: symbols})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*stockv1.Price{}
	for _, p := range final.GetPrices() {
		want[p.GetSymbol()] = p
	}
	for i, s := range subs {
		mine := map[string]*stockv1.Price{}
		for _, sym := range s.symbols {
			if p := want[sym]; p != nil {
				mine[sym] = p
			}
		}
		pgtest.Poll(t, fmt.Sprintf("subscriber %d ends on the final prices", i), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.err != nil || cmp.Equal(mine, s.have, protocmp.Transform())
		})
		if s.err != nil {
			t.Errorf("subscriber %d (on replica %d): %v", i, i%2, s.err)
		}
	}

	// Every LatestPriceChanged position, from the table once the sequencer numbered them all.
	pool := pgtest.Connect(t, env["DATABASE_URL"])
	var wantPos []int64
	pgtest.Poll(t, "every event sequenced", func() bool {
		var pending int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM stock.outbox WHERE position IS NULL`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	rows, _ := pool.Query(ctx, `SELECT position FROM stock.outbox WHERE type = 'pgfleet.stock.v1.LatestPriceChanged' ORDER BY position`)
	var pos int64
	if _, err := pgx.ForEachRow(rows, []any{&pos}, func() error { wantPos = append(wantPos, pos); return nil }); err != nil {
		t.Fatal(err)
	}
	endPos.Lock()
	end = wantPos[len(wantPos)-1]
	endPos.Unlock()
	for i, r := range resumers {
		pgtest.Poll(t, fmt.Sprintf("consumer %d reaches the last event", i), func() bool {
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.err != nil || (len(r.positions) > 0 && slices.Max(r.positions) >= end)
		})
		r.mu.Lock()
		if r.err != nil {
			t.Errorf("consumer %d: %v", i, r.err)
		}
		// In order, at least once: each position is either the next one it had not seen or
		// one it had (a duplicate after a resume), never past one it skipped.
		var distinct []int64
		for _, p := range r.positions {
			if len(distinct) == 0 || p > distinct[len(distinct)-1] {
				distinct = append(distinct, p)
			} else if !slices.Contains(distinct, p) {
				t.Errorf("consumer %d: position %d after %d, which it had not seen before: out of order", i, p, distinct[len(distinct)-1])
			}
		}
		if diff := cmp.Diff(wantPos, distinct); diff != "" {
			t.Errorf("consumer %d: LatestPriceChanged positions mismatch (-want +got):\n%s", i, diff)
		}
		t.Logf("consumer %d: %d events, %d duplicates, %d resumes (%d while ingestion ran)", i, len(r.positions), r.duplicates, r.resumes, r.during)
		r.mu.Unlock()
	}
	stopWatching()
	watching.Wait()
	t.Logf("%d bars in %v (%.0f bars/s), %d LatestPriceChanged events (%.0f events/s), %d subscribers on 2 replicas",
		nWriters*barsPerWriter, ingestTime.Round(time.Millisecond), float64(nWriters*barsPerWriter)/ingestTime.Seconds(),
		len(wantPos), float64(len(wantPos))/ingestTime.Seconds(), nSubscribers)
}

// TestWatchLatestPrices_shutdown: when the service's run context ends, an open
// WatchLatestPrices ends at once with UNAVAILABLE (SHUTTING_DOWN), so its client reconnects
// elsewhere, well within DRAIN_TIMEOUT (a minute here), which the stream would otherwise hold.
func TestWatchLatestPrices_shutdown(t *testing.T) {
	t.Parallel()
	vars := maps.Clone(authtest.Env())
	maps.Copy(vars, map[string]string{"DATABASE_URL": pgtest.NewDBURL(t, migrations.Set), "DRAIN_TIMEOUT": "60s",
		"GRPC_ADDR": apptest.FreeAddr(t), "METRICS_ADDR": apptest.FreeAddr(t)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), envconfig.MapLookuper(vars)) }()
	client := stockv1.NewStockServiceClient(apptest.Dial(t, vars["GRPC_ADDR"], authtest.Admin(t)))
	pgtest.Poll(t, "the service stores a stock", func() bool {
		_, err := client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "AAA", Name: "A"}}})
		return err == nil
	})
	stream, err := client.WatchLatestPrices(t.Context(), &stockv1.WatchLatestPricesRequest{Symbols: []string{"AAA"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	recvd := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		recvd <- err
	}()
	select {
	case err := <-recvd:
		if status.Code(err) != codes.Unavailable || apierr.ReasonOf(err) != apierr.ShuttingDown {
			t.Errorf("Recv after shutdown began = %v, want UNAVAILABLE %s", err, apierr.ShuttingDown)
		}
	// Had run ended first, the stream would end with a transport error, without the reason.
	case <-time.After(45 * time.Second): // DRAIN_TIMEOUT is 60s: a stream the drain waited for
		t.Fatal("the stream did not end when shutdown began")
	}
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// ingest sends prices in one IngestPrices stream.
func ingest(ctx context.Context, client stockv1.StockServiceClient, prices []*stockv1.Price) error {
	stream, err := client.IngestPrices(ctx)
	if err != nil {
		return err
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: prices}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

var day0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// firstErr returns a unless it is nil, else b: a test keeps the first thing that went wrong.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
