package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestSSE_noLoss is the server-sent events half of issue 16's no-loss test (the gRPC half is
// services/stock TestWatch_noLoss), on real processes: two stock processes on one database
// (two replicas sharing one outbox), two gateway processes, gateway i in front of stock i.
//
//   - 24 subscribers of GET /v1/prices:watch, each its own user and its own subset of 30
//     symbols (6 to 29 of them), split across both gateways, while 4 IngestPrices streams
//     (gRPC, ingest role, alternating stocks) write 10,000 bars over the 30 symbols. Once
//     ingestion has ended, every subscriber ends on exactly the latest price GetLatestPrices
//     gives for each symbol it watches, and never got a bar older than one it had received
//     for that symbol.
//   - 3 consumers of GET /v1/events/stock:watch (LatestPriceChanged, from_oldest) that cut
//     their connection every 1 to 5 messages and reconnect, alternating gateways, with
//     Last-Event-ID set to the last event id received, as EventSource does. Each connection's
//     positions increase; together they cover every LatestPriceChanged position of the table,
//     none missing (duplicates are allowed and counted), and the table's positions of all
//     events are gapless.
//
// The gateways send a heartbeat every 5 ms, between the events; under -race the processes
// are race builds too, and a race report in their logs fails the test.
func TestSSE_noLoss(t *testing.T) {
	t.Parallel()
	// Built from the workspace, not taken from .tmp/bin (`make test` does not run `make build`,
	// and stale binaries would test old code), with the race detector when this test has it.
	bin := buildRace(t, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/gateway")
	dbURL := pgtest.NewDBURL(t)
	var stocks, gateways [2]*apptest.Process
	t.Cleanup(func() { noRaces(t, append(stocks[:], gateways[:]...)...) }) // after they stop
	for i := range stocks {
		stocks[i] = apptest.StartProcess(t, filepath.Join(bin, "stock"), "DATABASE_URL="+dbURL)
	}
	for i := range gateways {
		// The gateway dials its upstreams lazily; this test calls no portfolio or interview
		// route, so those point at the same stock process. Heartbeats every few milliseconds
		// interleave with the events: never inside one.
		gateways[i] = apptest.StartGatewayProcess(t, filepath.Join(bin, "gateway"),
			"STOCK_ADDR="+stocks[i].Addr, "PORTFOLIO_ADDR="+stocks[i].Addr, "INTERVIEW_ADDR="+stocks[i].Addr, "SSE_HEARTBEAT=5ms")
	}
	clients := [2]stockv1.StockServiceClient{
		stockv1.NewStockServiceClient(apptest.Dial(t, stocks[0].Addr)),
		stockv1.NewStockServiceClient(apptest.Dial(t, stocks[1].Addr)),
	}
	ctx := t.Context()

	const nSymbols, nSubscribers, nWriters, nConsumers = 30, 24, 4, 3
	const barsPerWriter, batch = 2500, 50 // 10,000 bars in 200 ingests
	symbols := make([]string, nSymbols)
	rows := make([]*stockv1.Stock, nSymbols)
	for i := range symbols {
		symbols[i] = fmt.Sprintf("S%02d", i)
		rows[i] = &stockv1.Stock{Symbol: symbols[i], Name: "Stock " + symbols[i], Currency: "USD"}
	}
	if _, err := clients[0].UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: rows},
		authtest.As(t, "admin@pgfleet.test", auth.RoleAdmin)); err != nil {
		t.Fatal(err)
	}

	// No timeout: a stream lasts until the test cuts it (watchCtx, or a consumer's own cut).
	httpc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpc.CloseIdleConnections)
	watchCtx, stopWatching := context.WithCancel(ctx)
	var watching sync.WaitGroup
	defer func() {
		stopWatching()
		watching.Wait()
	}()

	subs := make([]*sseSubscriber, nSubscribers)
	var started sync.WaitGroup
	for i := range subs {
		// Its own subset of the symbols: 6 + i of them (no two alike), sorted.
		rnd := rand.New(rand.NewPCG(uint64(i), 16))
		mine := slices.Clone(symbols)
		rnd.Shuffle(len(mine), func(a, b int) { mine[a], mine[b] = mine[b], mine[a] })
		mine = mine[:6+i]
		slices.Sort(mine)
		subs[i] = &sseSubscriber{symbols: mine, have: map[string]*stockv1.Price{}}
		started.Add(1)
		watching.Add(1)
		go func() {
			defer watching.Done()
			// Each its own user: a browser's, so that stock's streams per caller are not the
			// gateway's address's. Half send the token as EventSource must, in the URL.
			tok := authtest.Token(t, fmt.Sprintf("viewer%d@example.com", i))
			subs[i].run(watchCtx, httpc, "http://"+gateways[i%2].Addr, tok, i%4 < 2, &started)
		}()
	}
	started.Wait()

	var endMu sync.Mutex
	end := int64(0) // the last LatestPriceChanged position, once ingestion has ended
	until := func() int64 {
		endMu.Lock()
		defer endMu.Unlock()
		return end
	}
	var ingesting atomic.Bool
	ingesting.Store(true)
	consumers := make([]*sseConsumer, nConsumers)
	for i := range consumers {
		consumers[i] = &sseConsumer{}
		tok := authtest.Token(t, fmt.Sprintf("consumer%d@example.com", i))
		watching.Add(1)
		go func() {
			defer watching.Done()
			consumers[i].run(watchCtx, httpc, []string{"http://" + gateways[0].Addr, "http://" + gateways[1].Addr},
				tok, uint64(i), until, &ingesting)
		}()
	}

	began := time.Now()
	var g errgroup.Group
	for w := range nWriters {
		g.Go(func() error {
			rnd := rand.New(rand.NewPCG(uint64(w), 16))
			as := authtest.As(t, fmt.Sprintf("feed%d@example.com", w), auth.RoleIngest)
			for n := 0; n < barsPerWriter; n += batch {
				prices := make([]*stockv1.Price, batch)
				for i := range prices {
					// Times interleave across writers, so that an ingest moves some latest
					// prices and leaves others, and a symbol's final bar may come from any writer.
					step := (n+i)*nWriters + w
					c := fmt.Sprintf("%d.%02d", 100+rnd.IntN(900), rnd.IntN(100))
					prices[i] = &stockv1.Price{Symbol: symbols[rnd.IntN(nSymbols)], Time: timestamppb.New(sseDay0.Add(time.Duration(step) * time.Minute)),
						Open: c, High: c, Low: c, Close: c, Volume: int64(step)}
				}
				stream, err := clients[(w+n/batch)%2].IngestPrices(ctx, as)
				if err != nil {
					return err
				}
				if err := stream.Send(&stockv1.IngestPricesRequest{Prices: prices}); err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				if _, err := stream.CloseAndRecv(); err != nil {
					return fmt.Errorf("writer %d, ingest %d: %w", w, n/batch, err)
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

	final, err := clients[1].GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: symbols})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*stockv1.Price{}
	for _, p := range final.GetPrices() {
		want[p.GetSymbol()] = p
	}
	if len(want) != nSymbols {
		t.Fatalf("GetLatestPrices after ingestion has %d symbols, want %d", len(want), nSymbols)
	}
	messages := 0
	for i, s := range subs {
		mine := map[string]*stockv1.Price{}
		for _, sym := range s.symbols {
			mine[sym] = want[sym]
		}
		pgtest.Poll(t, fmt.Sprintf("subscriber %d ends on the final prices", i), func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.err != nil || cmp.Equal(mine, s.have, protocmp.Transform())
		})
		s.mu.Lock()
		if s.err != nil {
			t.Errorf("subscriber %d (gateway %d, %d symbols): %v", i, i%2, len(s.symbols), s.err)
		}
		messages += s.messages
		s.mu.Unlock()
	}

	// Every LatestPriceChanged position, from the table once the sequencer numbered them all;
	// positions of all events are gapless (1..last).
	conn := pgtest.Connect(t, dbURL)
	pgtest.Poll(t, "every event sequenced", func() bool {
		var pending int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM stock.outbox WHERE position IS NULL`).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		return pending == 0
	})
	var count, last int64
	if err := conn.QueryRow(ctx, `SELECT count(*), coalesce(max(position), 0) FROM stock.outbox`).Scan(&count, &last); err != nil {
		t.Fatal(err)
	}
	if count != last {
		t.Errorf("the outbox holds %d events at positions up to %d, want them gapless from 1", count, last)
	}
	posRows, _ := conn.Query(ctx, `SELECT position FROM stock.outbox WHERE type = 'pgfleet.stock.v1.LatestPriceChanged' ORDER BY position`)
	var wantPos []int64
	var pos int64
	if _, err := pgx.ForEachRow(posRows, []any{&pos}, func() error { wantPos = append(wantPos, pos); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(wantPos) == 0 {
		t.Fatal("no LatestPriceChanged event in the outbox")
	}
	endMu.Lock()
	end = wantPos[len(wantPos)-1]
	endMu.Unlock()
	var resumes, during, duplicates int
	for i, c := range consumers {
		pgtest.Poll(t, fmt.Sprintf("consumer %d reaches the last event", i), func() bool {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.err != nil || c.maxPos >= end
		})
		c.mu.Lock()
		if c.err != nil {
			t.Errorf("consumer %d: %v", i, c.err)
		}
		var distinct []int64
		for _, p := range c.positions {
			if len(distinct) == 0 || p > distinct[len(distinct)-1] {
				distinct = append(distinct, p)
			}
		}
		if diff := cmp.Diff(wantPos, distinct); diff != "" {
			t.Errorf("consumer %d: LatestPriceChanged positions mismatch (-want +got):\n%s", i, diff)
		}
		t.Logf("consumer %d: %d events over %d connections (%d cut while ingestion ran), %d duplicates",
			i, len(c.positions), c.resumes+1, c.during, c.duplicates)
		resumes, during, duplicates = resumes+c.resumes, during+c.during, duplicates+c.duplicates
		c.mu.Unlock()
	}
	t.Logf("%d bars in %v (%.0f bars/s) through 2 stock processes; %d LatestPriceChanged events (positions up to %d); "+
		"%d price subscribers on 2 gateways got %d messages; %d event consumers resumed %d times (%d while ingestion ran), %d duplicates",
		nWriters*barsPerWriter, ingestTime.Round(time.Millisecond), float64(nWriters*barsPerWriter)/ingestTime.Seconds(),
		len(wantPos), last, nSubscribers, messages, nConsumers, resumes, during, duplicates)
}

var sseDay0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// sseSubscriber is one GET /v1/prices:watch stream's view: the newest price it got of each
// symbol.
type sseSubscriber struct {
	symbols  []string
	mu       sync.Mutex
	have     map[string]*stockv1.Price
	messages int
	err      error // the first thing wrong: an error event, a bar older than one it had, an unwatched symbol
}

// run reads the stream until ctx ends; started is done at its first event.
func (s *sseSubscriber) run(ctx context.Context, c *http.Client, gw, token string, inURL bool, started *sync.WaitGroup) {
	first := true
	defer func() {
		if first {
			started.Done()
		}
	}()
	fail := func(err error) {
		s.mu.Lock()
		s.err = firstErr(s.err, err)
		s.mu.Unlock()
	}
	q := url.Values{"symbols": {strings.Join(s.symbols, ",")}}
	var headers []string
	if inURL {
		q.Set("access_token", token)
	} else {
		headers = []string{"Authorization", "Bearer " + token}
	}
	body, err := openSSE(ctx, c, gw+"/v1/prices:watch?"+q.Encode(), headers...)
	if err != nil {
		fail(err)
		return
	}
	defer body.Close()
	r := newSSEReader(body)
	for {
		ev, err := r.next()
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("stream ended: %w", err))
			}
			return
		}
		var resp stockv1.WatchLatestPricesResponse
		if ev.event != "" {
			fail(fmt.Errorf("%s event: %s", ev.event, ev.data))
		} else if err := protojson.Unmarshal([]byte(ev.data), &resp); err != nil {
			fail(fmt.Errorf("event %q: %w", ev.data, err))
		}
		s.mu.Lock()
		s.messages++
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
		if len(resp.GetClearedSymbols()) > 0 {
			s.err = firstErr(s.err, fmt.Errorf("symbols cleared, none was delisted: %v", resp.GetClearedSymbols()))
		}
		s.mu.Unlock()
		if first {
			first = false
			started.Done()
		}
	}
}

// sseConsumer is a GET /v1/events/stock:watch consumer of LatestPriceChanged that cuts its
// connection every few messages and reconnects to the other gateway, with Last-Event-ID.
type sseConsumer struct {
	mu         sync.Mutex
	positions  []int64 // every event's position as received, duplicates included
	maxPos     int64
	resumes    int
	during     int // resumes while ingestion ran
	duplicates int
	err        error
}

func (c *sseConsumer) run(ctx context.Context, hc *http.Client, gateways []string, token string, seed uint64,
	until func() int64, ingesting *atomic.Bool) {
	rnd := rand.New(rand.NewPCG(seed, 16))
	fail := func(err error) {
		c.mu.Lock()
		c.err = firstErr(c.err, err)
		c.mu.Unlock()
	}
	lastID := ""
	for n := 0; ctx.Err() == nil; n++ {
		c.mu.Lock()
		maxPos := c.maxPos
		c.mu.Unlock()
		if end := until(); end > 0 && maxPos >= end {
			return
		}
		// The first consumer authenticates as EventSource must, in the URL; the others with a header.
		q := url.Values{"types": {"pgfleet.stock.v1.LatestPriceChanged"}, "from_oldest": {"true"}}
		var headers []string
		if seed == 0 {
			q.Set("access_token", token)
		} else {
			headers = []string{"Authorization", "Bearer " + token}
		}
		if lastID != "" {
			headers = append(headers, "Last-Event-ID", lastID)
		}
		gw := gateways[(int(seed)+n)%len(gateways)]
		sctx, cut := context.WithCancel(ctx)
		body, err := openSSE(sctx, hc, gw+"/v1/events/stock:watch?"+q.Encode(), headers...)
		if err != nil {
			cut()
			if ctx.Err() == nil {
				fail(fmt.Errorf("connection %d (Last-Event-ID %q): %w", n, lastID, err))
			}
			return
		}
		r := newSSEReader(body)
		r.id = lastID // EventSource keeps its last event id across reconnections
		connLast := int64(0)
		for m := 1 + rnd.IntN(5); m > 0; m-- {
			ev, err := r.next()
			if err != nil {
				if ctx.Err() == nil {
					fail(fmt.Errorf("connection %d (Last-Event-ID %q) ended: %w", n, lastID, err))
				}
				break
			}
			if ev.event != "" {
				fail(fmt.Errorf("connection %d: %s event: %s", n, ev.event, ev.data))
				break
			}
			var msg struct {
				Events []struct {
					Cursor string `json:"cursor"`
				} `json:"events"`
				Cursor string `json:"cursor"`
			}
			if err := json.Unmarshal([]byte(ev.data), &msg); err != nil || ev.id != msg.Cursor {
				fail(fmt.Errorf("connection %d: event id %q, data %q (%v): want an events message with the id as its cursor", n, ev.id, ev.data, err))
				break
			}
			c.mu.Lock()
			for _, e := range msg.Events {
				pos, err := outbox.ParseCursor("stock", e.Cursor)
				switch {
				case err != nil:
					c.err = firstErr(c.err, fmt.Errorf("connection %d: event cursor %q: %w", n, e.Cursor, err))
				case pos <= connLast:
					c.err = firstErr(c.err, fmt.Errorf("connection %d: position %d after %d: out of order", n, pos, connLast))
				case pos <= c.maxPos:
					c.duplicates++
				}
				connLast = max(connLast, pos)
				c.maxPos = max(c.maxPos, pos)
				c.positions = append(c.positions, pos)
			}
			done := c.maxPos
			c.mu.Unlock()
			lastID = ev.id
			if end := until(); end > 0 && done >= end {
				break
			}
		}
		cut() // the connection, as a closed tab or a dropped network would
		body.Close()
		c.mu.Lock()
		stop := c.err != nil
		c.resumes++
		if ingesting.Load() {
			c.during++
		}
		c.mu.Unlock()
		if stop {
			return
		}
	}
}

// openSSE sends GET u with headers (name, value pairs) and returns the body of its 200
// text/event-stream answer.
func openSSE(ctx context.Context, c *http.Client, u string, headers ...string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s = %d %s: %s", req.URL.Path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp.Body, nil
}

// buildRace builds the main packages pkgs into a directory removed when t ends, as
// apptest.Build does, but with -race when the test itself runs with it: the processes'
// races are then reported in their logs (noRaces).
func buildRace(t *testing.T, pkgs ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	if raceBuild {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, pkgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	return dir
}

// noRaces fails t with the first race report in the logs of procs (nil ones skipped).
func noRaces(t *testing.T, procs ...*apptest.Process) {
	t.Helper()
	for _, p := range procs {
		if p == nil {
			continue
		}
		b, err := os.ReadFile(p.Log)
		if err != nil {
			t.Errorf("%s: %v", p.Name, err)
			continue
		}
		if i := bytes.Index(b, []byte("WARNING: DATA RACE")); i >= 0 {
			t.Errorf("%s (%s) reported a data race:\n%s", p.Name, p.Addr, b[i:min(len(b), i+8192)])
		}
	}
}

// firstErr returns a unless it is nil, else b: a test keeps the first thing that went wrong.
func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
