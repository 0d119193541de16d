package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// Scenario 12's shape: an ingester (one client, closed loop) sends IngestPrices calls of
// watchPerCall bars, one per symbol, append_only, over watchSymbols symbols in turn; every
// call's bars have the close price watchCloseBase + the call's sequence number, so a
// delivered price names the call that wrote it. Subscribers (half gRPC straight to stock,
// half SSE through a gateway of the scenario's own) each watch watchPerSub of the symbols.
const (
	watchSymbols   = 50
	watchPerSub    = 5
	watchPerCall   = 5
	watchCloseBase = 1000
	watchAttach    = 60 * time.Second // bound of attaching every subscriber
	watchSettle    = 30 * time.Second // bound of every subscriber reaching the final prices
	watchCallLimit = 30 * time.Second // bound of one IngestPrices call
	// watchPace spaces the calls of the paced run: a price feed of 20 calls (100 bars) a
	// second, well below what the ingester sends in a closed loop.
	watchPace = 50 * time.Millisecond
	// watchBulkBars is how many bars per symbol a bulk call carries (a batch of history, as a
	// daily import sends): its rows cost the subscribers no more than a call of one bar each,
	// since only the newest bar of each symbol changes a latest price.
	watchBulkBars = 200
)

// watchFrom is the time of the ingester's first bar; call n's bars are n minutes later,
// after every bar earlier scenarios store (append_only wants later bars than those stored).
var watchFrom = time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC)

// scenarioWatch measures WatchLatestPrices with many subscribers: the commit-to-delivery
// latency during ingestion, the ingest throughput with them attached against none (before
// and after, same run), and the memory each idle subscriber costs the stock service and the
// gateway.
func (b *bench) scenarioWatch(ctx context.Context) error {
	began := time.Now()
	nSSE := b.cfg.watchSubs / 2
	nGRPC := b.cfg.watchSubs - nSSE
	path := func(s string) string {
		return fmt.Sprintf("WatchLatestPrices, %d subscribers (%d gRPC → stock, %d SSE → gateway → stock), %s", nGRPC+nSSE, nGRPC, nSSE, s)
	}
	symbols := b.symbols[len(b.symbols)-1-watchSymbols : len(b.symbols)-1] // not scenario 5's last one
	b.logf("scenario 12: WatchLatestPrices, %d gRPC + %d SSE subscribers, %d of %d symbols each", nGRPC, nSSE, watchPerSub, watchSymbols)

	// A gateway of its own, with a watch cap that admits the subscribers (the gateway's
	// default is 10,000; a connection carrying a watch stream leaves MAX_CONNECTIONS).
	var gw *proc
	if _, err := os.Stat(filepath.Join(b.cfg.bin, "pgfleet-gateway")); err != nil {
		b.note("scenario 12: the gateway is not built: no SSE subscribers")
		nGRPC, nSSE = nGRPC+nSSE, 0
	} else {
		limit := strconv.Itoa(2*b.cfg.watchSubs + 64)
		var err error
		gw, err = b.startGatewayProc(b.cfg.bin, "gateway-watch", b.stock.grpcAddr, "MAX_WATCH_STREAMS="+limit)
		if gw != nil {
			defer gw.stop()
		}
		if err != nil {
			return err
		}
		if err := gw.waitHTTP(ctx, "http://"+gw.httpAddr+"/health", 60*time.Second); err != nil {
			return err
		}
	}

	conn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	ing := newWatchIngester(stockv1.NewStockServiceClient(conn), b.ingestTok, symbols)
	for range watchSymbols / watchPerCall { // every symbol gets a price: the first messages hold them
		if err := ing.call(ctx); err != nil {
			return fmt.Errorf("IngestPrices: %w", err)
		}
	}
	// A build whose stock service does not serve the RPC yet gets a line saying so.
	if err := b.probeWatch(ctx, conn, symbols[:watchPerSub]); status.Code(err) == codes.Unimplemented {
		b.add(row{scenario: "12", path: path("commit-to-delivery latency"), missing: "not run: this build's stock service does not serve WatchLatestPrices"})
		return nil
	} else if err != nil {
		return fmt.Errorf("WatchLatestPrices: %w", err)
	}

	pm, err := b.pg.postmasterPID()
	if err != nil {
		return err
	}
	cpuNames := []string{"stock", "PostgreSQL", "bench (ingester, subscribers)"}
	ing.cpu = func() []time.Duration {
		v := []time.Duration{cpuTime(b.stock.pid()), pgCPU(pm), cpuTime(os.Getpid())}
		if gw != nil {
			v = append(v, cpuTime(gw.pid()))
		}
		return v
	}
	if gw != nil {
		cpuNames = append(cpuNames, "gateway")
	}

	b.logf("scenario 12: ingest with no subscriber")
	none1, err := ing.run(ctx, b.cfg.warmup, b.cfg.duration, 0, nil)
	if err != nil {
		return err
	}
	bulk := func() (watchRun, error) {
		ing.bars = watchBulkBars
		defer func() { ing.bars = 1 }()
		return ing.run(ctx, b.cfg.warmup, b.cfg.duration, 0, nil)
	}
	bulkNone1, err := bulk()
	if err != nil {
		return err
	}

	// Idle subscribers: the SSE ones first, then the gRPC ones, memory measured before and
	// after each step (a forced GC first, through /debug/pprof/heap?gc=1).
	targets := []*proc{b.stock}
	if gw != nil {
		targets = append(targets, gw)
	}
	mem0 := b.watchMem(ctx, targets)
	subsCtx, detach := context.WithCancel(ctx)
	var subsWG sync.WaitGroup
	defer func() {
		detach()
		subsWG.Wait()
	}()
	watchers := make([]int, watchSymbols) // subscribers per symbol index
	var subs []*watchSub
	newSubs := func(n int, sse bool) []*watchSub {
		var out []*watchSub
		for range n {
			s := newWatchSub(len(subs), sse)
			for _, i := range s.symbols {
				watchers[i]++
			}
			subs = append(subs, s)
			out = append(out, s)
		}
		return out
	}
	sseSubs := newSubs(nSSE, true)
	grpcSubs := newSubs(nGRPC, false)
	if nSSE > 0 {
		b.logf("scenario 12: attaching %d SSE subscribers", nSSE)
		client := &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: nSSE, DisableCompression: true,
		}}
		for _, s := range sseSubs {
			subsWG.Go(func() { s.runSSE(subsCtx, client, watchURL(gw.httpAddr, s.names(symbols)), b.readTok, ing) })
		}
		if err := waitReady(ctx, sseSubs); err != nil {
			return err
		}
	}
	mem1 := b.watchMem(ctx, targets)
	b.logf("scenario 12: attaching %d gRPC subscribers, a connection each", nGRPC)
	for _, s := range grpcSubs {
		c, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
		if err != nil {
			return err
		}
		subsWG.Go(func() {
			defer c.Close()
			s.runGRPC(subsCtx, stockv1.NewStockServiceClient(c), s.names(symbols), b.readTok, ing)
		})
	}
	if err := waitReady(ctx, grpcSubs); err != nil {
		return err
	}
	mem2 := b.watchMem(ctx, targets)

	b.logf("scenario 12: ingest with %d subscribers attached", len(subs))
	var profiles sync.WaitGroup
	with, err := ing.run(ctx, b.cfg.warmup, b.cfg.duration, 0, func() {
		if b.cfg.profile {
			b.watchProfiles(ctx, &profiles, targets)
		}
	})
	profiles.Wait()
	if err != nil {
		return err
	}
	settled, settleTime := ing.settle(ctx, subs)
	b.logf("scenario 12: ingest paced at one call per %v, %d subscribers attached", watchPace, len(subs))
	paced, err := ing.run(ctx, b.cfg.warmup, b.cfg.duration, watchPace, nil)
	if err != nil {
		return err
	}
	pSettled, pSettleTime := ing.settle(ctx, subs)
	b.logf("scenario 12: bulk ingest (%d bars per symbol per call), %d subscribers attached", watchBulkBars, len(subs))
	bulkWith, err := bulk()
	if err != nil {
		return err
	}
	bSettled, _ := ing.settle(ctx, subs)
	detach()
	subsWG.Wait()

	b.logf("scenario 12: ingest with no subscriber again")
	none2, err := ing.run(ctx, b.cfg.warmup, b.cfg.duration, 0, nil)
	if err != nil {
		return err
	}
	bulkNone2, err := bulk()
	if err != nil {
		return err
	}

	// Latency: each price delivered in a window, against the call that wrote it.
	calls := ing.snapshot()
	var errs []string
	for _, s := range subs {
		if err := s.failure(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	line := func(l watchLatency) string {
		p50, p99, mx := spread(l.fromEnd)
		return fmt.Sprintf("p50 %s · p99 %s · max %s", signedLatency(p50), signedLatency(p99), signedLatency(mx))
	}
	upper := func(l watchLatency) string {
		p50, p99, mx := spread(l.fromStart)
		return fmt.Sprintf("from the call's start (upper bound): p50 %s · p99 %s · max %s", signedLatency(p50), signedLatency(p99), signedLatency(mx))
	}
	latencyRows := func(load string, run watchRun) error {
		from, to := run.from, run.to
		var all, overGRPC, overSSE watchLatency
		var expected int
		for _, c := range calls {
			if c.inWindow(from, to) {
				for _, i := range c.symbols {
					expected += watchers[i]
				}
			}
		}
		for _, s := range subs {
			lat := joinLatency(calls, from, to, s.deliveries())
			all.add(lat)
			if s.sse {
				overSSE.add(lat)
			} else {
				overGRPC.add(lat)
			}
		}
		if len(all.fromEnd) == 0 {
			return fmt.Errorf("no price was delivered during the ingest (%s; %d subscribers failed; first: %v)", load, len(errs), first(errs))
		}
		_, p99, _ := spread(all.fromEnd)
		b.add(row{scenario: "12", path: path("commit-to-delivery latency (from the call's return), " + load),
			figure: line(all), target: "p99 ≤ 50 ms: " + metOrMissed(p99 <= 50*time.Millisecond),
			extra: fmt.Sprintf("%s; %d prices delivered of %d changes written to watched symbols in the window (%.0f%% conflated); %d arrived before IngestPrices returned",
				upper(all), len(all.fromEnd), expected, 100*(1-float64(len(all.fromEnd))/float64(max(expected, 1))), all.early)})
		if nGRPC > 0 {
			b.add(row{scenario: "12", path: fmt.Sprintf("the %d gRPC subscribers alone (a connection each), %s", nGRPC, load), figure: line(overGRPC),
				extra: fmt.Sprintf("%s; %d delivered", upper(overGRPC), len(overGRPC.fromEnd))})
		}
		if nSSE > 0 {
			b.add(row{scenario: "12", path: fmt.Sprintf("the %d SSE subscribers alone (net/http, text/event-stream), %s", nSSE, load), figure: line(overSSE),
				extra: fmt.Sprintf("%s; %d delivered", upper(overSSE), len(overSSE.fromEnd))})
		}
		return nil
	}
	if err := latencyRows("ingester in a closed loop", with); err != nil {
		return err
	}
	if err := latencyRows(fmt.Sprintf("ingester paced at %s rows/s (a call per %v)", rate(float64(watchPerCall)*float64(time.Second)/float64(watchPace)), watchPace), paced); err != nil {
		return err
	}
	base := result{clients: 1, ops: none1.res.ops + none2.res.ops, window: none1.res.window + none2.res.window, errs: none1.res.errs + none2.res.errs}
	ratio := with.res.rate() / max(base.rate(), 1)
	b.add(row{scenario: "12", path: fmt.Sprintf("IngestPrices, %d bars (%d symbols) per call, append_only, closed loop, with the %d subscribers attached", watchPerCall, watchPerCall, len(subs)),
		res: with.res, unit: "rows/s", ratio: fmt.Sprintf("%.2f of none attached", ratio),
		target: targetRatio(ratio, 0.90), extra: "p50/p99: of the calls; " + with.cpuText(cpuNames)})
	b.add(row{scenario: "12", path: "the same ingester, no subscriber (before and after, both windows)", res: base, unit: "rows/s", ratio: "baseline",
		extra: fmt.Sprintf("before %s rows/s, calls p50 %s, p99 %s, %s; after %s rows/s, calls p50 %s, p99 %s, %s",
			rate(none1.res.rate()), latency(none1.res.p50), latency(none1.res.p99), none1.cpuText(cpuNames),
			rate(none2.res.rate()), latency(none2.res.p50), latency(none2.res.p99), none2.cpuText(cpuNames))})
	bulkBase := result{clients: 1, ops: bulkNone1.res.ops + bulkNone2.res.ops, window: bulkNone1.res.window + bulkNone2.res.window, errs: bulkNone1.res.errs + bulkNone2.res.errs}
	bulkRatio := bulkWith.res.rate() / max(bulkBase.rate(), 1)
	b.add(row{scenario: "12", path: fmt.Sprintf("IngestPrices in bulk, %d symbols × %d bars per call, append_only, closed loop, with the %d subscribers attached", watchPerCall, watchBulkBars, len(subs)),
		res: bulkWith.res, unit: "rows/s", ratio: fmt.Sprintf("%.2f of none attached", bulkRatio),
		target: targetRatio(bulkRatio, 0.90), extra: "p50/p99: of the calls; " + bulkWith.cpuText(cpuNames)})
	b.add(row{scenario: "12", path: "the same bulk ingester, no subscriber (before and after, both windows)", res: bulkBase, unit: "rows/s", ratio: "baseline",
		extra: fmt.Sprintf("before %s rows/s, after %s rows/s", rate(bulkNone1.res.rate()), rate(bulkNone2.res.rate()))})
	b.add(row{scenario: "12", path: "stock memory per idle subscriber", figure: memPer(mem0[0], mem2[0], nGRPC+nSSE),
		extra: fmt.Sprintf("per SSE subscriber (a stream on the gateway's connection): %s; per gRPC subscriber (a connection each): %s; idle before: %s",
			memPer(mem0[0], mem1[0], nSSE), memPer(mem1[0], mem2[0], nGRPC), mem0[0])})
	if gw != nil {
		b.add(row{scenario: "12", path: "gateway memory per idle SSE subscriber", figure: memPer(mem0[1], mem1[1], nSSE),
			extra: fmt.Sprintf("the %d gRPC subscribers after them: %s; idle before: %s", nGRPC, memDelta(mem1[1], mem2[1]), mem0[1])})
	}
	target := "all: " + metOrMissed(settled == len(subs) && pSettled == len(subs) && bSettled == len(subs))
	b.add(row{scenario: "12", path: "subscribers that ended on the final price of every symbol they watch", target: target,
		figure: fmt.Sprintf("closed loop: %d of %d, %.2f s after the last call returned; paced: %d of %d, %.2f s after; bulk: %d of %d",
			settled, len(subs), settleTime.Seconds(), pSettled, len(subs), pSettleTime.Seconds(), bSettled, len(subs)),
		extra: fmt.Sprintf("%d subscribers failed%s", len(errs), firstErrNote(errs))})
	b.add(row{scenario: "12", path: fmt.Sprintf("the paced ingester (a call per %v), %d subscribers attached", watchPace, len(subs)), res: paced.res, unit: "rows/s",
		extra: "p50/p99: of the calls, from when each was due; " + paced.cpuText(cpuNames)})
	b.note("scenario 12: the stock service runs with STREAMS_PER_CALLER=100000 (every bench client is one caller), the scenario's gateway with MAX_WATCH_STREAMS=%d (its other limits at their defaults); "+
		"subscribers watch %d of %d symbols each (chosen at random per subscriber); the ingester (one client, closed loop) sends IngestPrices calls of %d bars, one per symbol, append_only, "+
		"each call's close price unique, so every delivered price names its call; latency = the subscriber's receive time in the bench process minus the time that call returned "+
		"(its commit came before), negative when the price arrived first; memory: /metrics process_resident_memory_bytes and go_memstats_heap_inuse_bytes after a forced GC "+
		"(/debug/pprof/heap?gc=1) and 1 s of rest, before and after attaching idle subscribers; the scenario took %.0f s",
		2*b.cfg.watchSubs+64, watchPerSub, watchSymbols, watchPerCall, time.Since(began).Seconds())
	return nil
}

// probeWatch opens one WatchLatestPrices stream and reads its first message.
func (b *bench) probeWatch(ctx context.Context, conn *grpc.ClientConn, symbols []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := stockv1.NewStockServiceClient(conn).WatchLatestPrices(outgoing(ctx, b.readTok), &stockv1.WatchLatestPricesRequest{Symbols: symbols})
	if err != nil {
		return err
	}
	resp, err := st.Recv()
	if err != nil {
		return err
	}
	if len(resp.GetPrices()) != len(symbols) {
		return fmt.Errorf("the first message holds %d prices, want %d", len(resp.GetPrices()), len(symbols))
	}
	return nil
}

// watchURL is the SSE route for symbols, repeated symbols= parameters.
func watchURL(addr string, symbols []string) string {
	q := url.Values{"symbols": symbols}
	return "http://" + addr + "/v1/prices:watch?" + q.Encode()
}

// --- the ingester ---------------------------------------------------------------------------

// watchCall is one IngestPrices call of the ingester.
type watchCall struct {
	symbols    []int // indices into the ingester's symbols
	start, end time.Time
	ok         bool // acknowledged
}

// inWindow reports whether c was acknowledged in [from, to).
func (c watchCall) inWindow(from, to time.Time) bool {
	return c.ok && !c.end.Before(from) && c.end.Before(to)
}

// watchIngester sends the calls and keeps each one, by sequence number.
type watchIngester struct {
	client  stockv1.StockServiceClient
	tok     string
	symbols []string
	index   map[string]int
	cpu     func() []time.Duration // CPU time of the processes each run reports, nil: none
	bars    int                    // bars per symbol per call: 1, or watchBulkBars for a bulk run

	mu    sync.Mutex
	calls []watchCall
	last  []int // per symbol: the sequence number of its newest acknowledged bar
}

func newWatchIngester(client stockv1.StockServiceClient, tok string, symbols []string) *watchIngester {
	w := &watchIngester{client: client, tok: tok, symbols: symbols, index: map[string]int{}, last: make([]int, len(symbols)), bars: 1}
	for i, s := range symbols {
		w.index[s] = i
		w.last[i] = -1
	}
	return w
}

// call sends the next call: watchPerCall symbols in turn, one bar each at watchFrom + seq
// minutes, every price watchCloseBase + seq.
func (w *watchIngester) call(ctx context.Context) error {
	w.mu.Lock()
	seq := len(w.calls)
	c := watchCall{symbols: make([]int, watchPerCall)}
	w.calls = append(w.calls, c)
	w.mu.Unlock()
	msg := &stockv1.IngestPricesRequest{AppendOnly: &stockv1.AppendOnly{}}
	at := timestamppb.New(watchFrom.Add(time.Duration(seq) * time.Minute))
	price := strconv.Itoa(watchCloseBase + seq)
	bars := w.bars
	for k := range watchPerCall {
		i := (seq*watchPerCall + k) % len(w.symbols)
		c.symbols[k] = i
		msg.AppendOnly.Symbols = append(msg.AppendOnly.Symbols, w.symbols[i])
		for j := range bars { // within the call's minute, the last bar last
			t := at
			if j < bars-1 {
				t = timestamppb.New(at.AsTime().Add(-time.Duration(bars-1-j) * time.Minute / time.Duration(bars)))
			}
			msg.Prices = append(msg.Prices, &stockv1.Price{Symbol: w.symbols[i], Time: t, Open: price, High: price, Low: price, Close: price, Volume: 1})
		}
	}
	ctx, cancel := context.WithTimeout(ctx, watchCallLimit)
	defer cancel()
	c.start = time.Now()
	err := func() error {
		st, err := w.client.IngestPrices(outgoing(ctx, w.tok))
		if err != nil {
			return err
		}
		if err := st.Send(msg); err != nil {
			return err
		}
		resp, err := st.CloseAndRecv()
		if want := int64(watchPerCall * bars); err == nil && resp.GetInsertedCount() != want {
			err = fmt.Errorf("inserted %d rows, want %d", resp.GetInsertedCount(), want)
		}
		return err
	}()
	c.end, c.ok = time.Now(), err == nil
	w.mu.Lock()
	w.calls[seq] = c
	if c.ok {
		for _, i := range c.symbols {
			w.last[i] = max(w.last[i], seq)
		}
	}
	w.mu.Unlock()
	return err
}

// watchRun is one run of the ingester: the rows acknowledged in the window, the window's
// edges, and the CPU time each process of w.cpu used in it.
type watchRun struct {
	res      result
	from, to time.Time
	cpu      []time.Duration
}

// run calls back to back (pace 0) or one call per pace through warmup and window (runLoad,
// one client); onStart, if set, runs when the window opens.
func (w *watchIngester) run(ctx context.Context, warmup, window, pace time.Duration, onStart func()) (watchRun, error) {
	var r watchRun
	var cpu0 []time.Duration
	h := hooks{pace: pace,
		start: func() {
			r.from = time.Now()
			if w.cpu != nil {
				cpu0 = w.cpu()
			}
			if onStart != nil {
				onStart()
			}
		},
		end: func() {
			r.to = time.Now()
			if w.cpu != nil {
				for i, c := range w.cpu() {
					r.cpu = append(r.cpu, c-cpu0[i])
				}
			}
		}}
	res, err := checkedRun(runLoad(ctx, 1, warmup, window, h, func(int) call { return w.call }))
	res.ops *= int64(watchPerCall * w.bars)
	r.res = res
	return r, err
}

// cpuText renders r's CPU figures as shares of the machine, named by names.
func (r watchRun) cpuText(names []string) string {
	var parts []string
	for i, c := range r.cpu {
		parts = append(parts, names[i]+" "+share(c, r.to.Sub(r.from)))
	}
	return "CPU (share of all cores): " + strings.Join(parts, ", ")
}

func checkedRun(r result) (result, error) {
	if r.ops == 0 {
		return r, fmt.Errorf("IngestPrices: no call succeeded in the window (%d failed, first: %s)", r.errs, r.firstErr)
	}
	return r, nil
}

func (w *watchIngester) snapshot() []watchCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// seqOf names the call that wrote a delivered price: watchCloseBase + its sequence number,
// in whatever decimal form the service renders it ("1012", "1012.000000").
func seqOf(closePrice string) (int, bool) {
	whole, _, _ := strings.Cut(closePrice, ".")
	n, err := strconv.Atoi(whole)
	if err != nil || n < watchCloseBase {
		return 0, false
	}
	return n - watchCloseBase, true
}

// settle waits until every subscriber that has not failed has seen, for each symbol it watches,
// the newest acknowledged bar (or a newer one); it returns how many had, and when, from the
// end of the last call.
func (w *watchIngester) settle(ctx context.Context, subs []*watchSub) (int, time.Duration) {
	w.mu.Lock()
	last := slices.Clone(w.last)
	var lastEnd time.Time
	for _, c := range w.calls {
		if c.end.After(lastEnd) {
			lastEnd = c.end
		}
	}
	w.mu.Unlock()
	deadline := time.Now().Add(watchSettle)
	for {
		done, failed := 0, 0
		for _, s := range subs {
			switch {
			case s.reached(last):
				done++
			case s.failure() != nil:
				failed++ // will not get there
			}
		}
		if done+failed == len(subs) || time.Now().After(deadline) || ctx.Err() != nil {
			return done, time.Since(lastEnd)
		}
		sleepCtx(ctx, 10*time.Millisecond)
	}
}

// --- subscribers ----------------------------------------------------------------------------

// watchSub is one subscriber: the symbols it watches, the newest price seen of each, and
// every price delivered after its first message (the snapshot), with when.
type watchSub struct {
	sse     bool
	symbols []int
	ready   atomic.Bool // its first message arrived
	seen    []atomic.Int64

	mu  sync.Mutex
	got []delivery
	err error
}

// delivery is one price received: the call that wrote it, and when (Unix nanoseconds).
type delivery struct {
	seq int32
	at  int64
}

func newWatchSub(n int, sse bool) *watchSub {
	rng := rand.New(rand.NewPCG(uint64(n), 12))
	s := &watchSub{sse: sse, symbols: rng.Perm(watchSymbols)[:watchPerSub], seen: make([]atomic.Int64, watchSymbols)}
	slices.Sort(s.symbols)
	for i := range s.seen {
		s.seen[i].Store(-1)
	}
	return s
}

func (s *watchSub) names(symbols []string) []string {
	out := make([]string, len(s.symbols))
	for k, i := range s.symbols {
		out[k] = symbols[i]
	}
	return out
}

// watchPrice is what a subscriber reads of a delivered price.
type watchPrice struct {
	Symbol string `json:"symbol"`
	Close  string `json:"close"`
}

// handle takes one message received at at.
func (s *watchSub) handle(at time.Time, prices []watchPrice, ing *watchIngester) {
	first := !s.ready.Load()
	var got []delivery
	for _, p := range prices {
		i, ok := ing.index[p.Symbol]
		seq, ok2 := seqOf(p.Close)
		if !ok || !ok2 {
			continue
		}
		if s.seen[i].Load() < int64(seq) {
			s.seen[i].Store(int64(seq))
		}
		if !first {
			got = append(got, delivery{seq: int32(seq), at: at.UnixNano()})
		}
	}
	if len(got) > 0 {
		s.mu.Lock()
		s.got = append(s.got, got...)
		s.mu.Unlock()
	}
	s.ready.Store(true)
}

func (s *watchSub) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *watchSub) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *watchSub) deliveries() []delivery {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

// reached reports whether s has seen, for each symbol it watches, the price of call last[i]
// or a later one.
func (s *watchSub) reached(last []int) bool {
	for _, i := range s.symbols {
		if s.seen[i].Load() < int64(last[i]) {
			return false
		}
	}
	return true
}

// runGRPC reads a WatchLatestPrices stream until ctx ends.
func (s *watchSub) runGRPC(ctx context.Context, client stockv1.StockServiceClient, symbols []string, tok string, ing *watchIngester) {
	st, err := client.WatchLatestPrices(outgoing(ctx, tok), &stockv1.WatchLatestPricesRequest{Symbols: symbols})
	if err != nil {
		s.fail(fmt.Errorf("gRPC: %w", err))
		return
	}
	for {
		resp, err := st.Recv()
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("gRPC: %w", err))
			}
			return
		}
		prices := make([]watchPrice, len(resp.GetPrices()))
		for k, p := range resp.GetPrices() {
			prices[k] = watchPrice{Symbol: p.GetSymbol(), Close: p.GetClose()}
		}
		s.handle(at, prices, ing)
	}
}

// runSSE reads GET /v1/prices:watch as text/event-stream until ctx ends.
func (s *watchSub) runSSE(ctx context.Context, client *http.Client, url, tok string, ing *watchIngester) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		s.fail(err)
		return
	}
	req.Header.Set("Accept", "text/event-stream")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.fail(fmt.Errorf("SSE: %w", err))
		}
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.fail(fmt.Errorf("SSE: HTTP %d: %s", resp.StatusCode, body))
		return
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		s.fail(fmt.Errorf("SSE: Content-Type %q, want text/event-stream", ct))
		return
	}
	rd := newSSEReader(resp.Body)
	for {
		ev, err := rd.next()
		at := time.Now()
		if err != nil {
			if ctx.Err() == nil {
				s.fail(fmt.Errorf("SSE: the stream ended: %w", err))
			}
			return
		}
		if ev.event == "error" {
			s.fail(fmt.Errorf("SSE: event: error: %s", ev.data))
			return
		}
		if ev.data == "" {
			continue
		}
		prices, err := ssePrices(ev.data)
		if err != nil {
			s.fail(err)
			return
		}
		s.handle(at, prices, ing)
	}
}

// ssePrices decodes one event's data: a WatchLatestPricesResponse as the REST API renders
// it, alone or as grpc-gateway's stream chunk {"result": ...}.
func ssePrices(data string) ([]watchPrice, error) {
	var msg struct {
		Prices []watchPrice `json:"prices"`
		Result *struct {
			Prices []watchPrice `json:"prices"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(data), &msg); err != nil {
		return nil, fmt.Errorf("SSE: data is not a WatchLatestPricesResponse: %w: %.200s", err, data)
	}
	if msg.Result != nil {
		return msg.Result.Prices, nil
	}
	return msg.Prices, nil
}

// waitReady waits until every subscriber has its first message or has failed; it fails
// when none has its first message by watchAttach.
func waitReady(ctx context.Context, subs []*watchSub) error {
	deadline := time.Now().Add(watchAttach)
	for {
		ready, failed := 0, 0
		var firstErr error
		for _, s := range subs {
			switch err := s.failure(); {
			case err != nil:
				failed++
				if firstErr == nil {
					firstErr = err
				}
			case s.ready.Load():
				ready++
			}
		}
		if ready+failed == len(subs) || time.Now().After(deadline) || ctx.Err() != nil {
			if ready == 0 {
				return fmt.Errorf("no subscriber got its first message within %v (%d failed; first: %v)", watchAttach, failed, firstErr)
			}
			return nil
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
}

// --- server-sent events ---------------------------------------------------------------------

// sseEvent is one event of a text/event-stream: its fields, data lines joined by "\n".
type sseEvent struct{ id, event, data string }

// sseReader reads events as the WHATWG HTML standard's event stream interpretation does,
// for what this client needs: lines end with "\n" or "\r\n", comments (":") are skipped, an
// event ends at a blank line, a field's value loses one leading space.
type sseReader struct{ r *bufio.Reader }

func newSSEReader(r io.Reader) *sseReader { return &sseReader{r: bufio.NewReaderSize(r, 16<<10)} }

// next returns the next event; an event cut by the end of the stream is dropped, as the
// standard says, and the error returned.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	fields := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return sseEvent{}, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if !fields {
				continue
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		fields = true
		switch name {
		case "data":
			data = append(data, value)
		case "event":
			ev.event = value
		case "id":
			ev.id = value
		}
	}
}

// --- figures --------------------------------------------------------------------------------

// watchLatency is delivery latency: from the return of the call that wrote a price, from
// its start, and how many prices arrived before their call returned.
type watchLatency struct {
	fromEnd, fromStart []time.Duration
	early              int
}

func (l *watchLatency) add(o watchLatency) {
	l.fromEnd = append(l.fromEnd, o.fromEnd...)
	l.fromStart = append(l.fromStart, o.fromStart...)
	l.early += o.early
}

// joinLatency matches deliveries with the calls that wrote them; only calls acknowledged in
// [from, to) count.
func joinLatency(calls []watchCall, from, to time.Time, got []delivery) watchLatency {
	var l watchLatency
	for _, d := range got {
		if int(d.seq) >= len(calls) {
			continue
		}
		c := calls[d.seq]
		if !c.inWindow(from, to) {
			continue
		}
		at := time.Unix(0, d.at)
		fromEnd := at.Sub(c.end)
		l.fromEnd = append(l.fromEnd, fromEnd)
		l.fromStart = append(l.fromStart, at.Sub(c.start))
		if fromEnd < 0 {
			l.early++
		}
	}
	return l
}

// spread returns the 50th and 99th percentiles and the maximum of d; it sorts d.
func spread(d []time.Duration) (p50, p99, mx time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	p50, p99 = percentiles(d)
	return p50, p99, d[len(d)-1]
}

// signedLatency renders a latency that may be negative or zero.
func signedLatency(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + latency(-d)
	case d == 0:
		return "0"
	}
	return latency(d)
}

// watchMem is a process's memory: resident, and Go heap in use.
type watchMem struct{ rss, heap int64 }

func (m watchMem) String() string { return fmt.Sprintf("RSS %s, heap %s", mib(m.rss), mib(m.heap)) }

// watchMem reads each process's memory from its /metrics after a forced GC and a second of
// rest; RSS from /proc when /metrics has none.
func (b *bench) watchMem(ctx context.Context, procs []*proc) []watchMem {
	for _, p := range procs {
		_, _ = httpGet(ctx, "http://"+p.metricsAddr+"/debug/pprof/heap?gc=1") //nolint:errcheck // without pprof, no forced GC
	}
	sleepCtx(ctx, time.Second)
	out := make([]watchMem, len(procs))
	for i, p := range procs {
		body, err := httpGet(ctx, "http://"+p.metricsAddr+"/metrics")
		if err == nil {
			out[i] = watchMem{rss: int64(metricSum(string(body), "process_resident_memory_bytes")), heap: int64(metricSum(string(body), "go_memstats_heap_inuse_bytes"))}
		}
		if out[i].rss == 0 {
			if m, err := readMem(p.pid()); err == nil {
				out[i].rss = m.rss
			}
		}
	}
	return out
}

// memPer renders the growth from before to after divided among n subscribers.
func memPer(before, after watchMem, n int) string {
	if n == 0 {
		return "no subscriber"
	}
	return fmt.Sprintf("RSS %s, heap %s per subscriber (%d: %s)", kibStr(float64(after.rss-before.rss)/float64(n)),
		kibStr(float64(after.heap-before.heap)/float64(n)), n, memDelta(before, after))
}

func memDelta(before, after watchMem) string {
	return fmt.Sprintf("RSS %+.1f MiB, heap %+.1f MiB", float64(after.rss-before.rss)/(1<<20), float64(after.heap-before.heap)/(1<<20))
}

func kibStr(bytes float64) string { return fmt.Sprintf("%.1f KiB", bytes/1024) }

func first(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return s[0]
}

func firstErrNote(errs []string) string {
	if len(errs) == 0 {
		return ""
	}
	return "; the first: " + errs[0]
}

// watchProfiles saves CPU profiles of procs (stock, gateway) during the closed-loop run with
// the subscribers attached (-profile).
func (b *bench) watchProfiles(ctx context.Context, wg *sync.WaitGroup, procs []*proc) {
	secs := max(1, min(10, int(b.cfg.duration.Seconds())))
	for _, p := range procs {
		wg.Go(func() {
			path := filepath.Join(b.cfg.work, "profiles", "watch-"+p.name+".pprof")
			err := saveProfile(ctx, p.metricsAddr, secs, path)
			b.mu.Lock()
			defer b.mu.Unlock()
			if err != nil {
				b.profiles = append(b.profiles, fmt.Sprintf("watch-%s: not captured: %v", p.name, err))
				return
			}
			b.profiles = append(b.profiles, fmt.Sprintf("watch-%s: %s (%d s, closed-loop ingest with the subscribers attached)", p.name, b.rel(path), secs))
		})
	}
}
