package api

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// The price feed's timing.
const (
	// feedBackoffMin and feedBackoffMax bound the wait before the feed calls the stock
	// service again after its stream failed (doubling, jittered).
	feedBackoffMin = 100 * time.Millisecond
	feedBackoffMax = 5 * time.Second
	// maxResumeGap is the longest outage the feed resumes from its cursor; after a longer one
	// it starts again from now and every watcher values its portfolio afresh, cheaper than
	// replaying every price change of the outage.
	maxResumeGap = 30 * time.Second
	// streamLifetime bounds one WatchStockEvents call: the stock client gives a stream without
	// a deadline its unary timeout (STOCK_TIMEOUT), so the feed sets its own and resumes from
	// its cursor when it passes.
	streamLifetime = 10 * time.Minute
)

// priceChanged is the one event type the feed follows.
var priceChanged = string((&stockv1.LatestPriceChanged{}).ProtoReflect().Descriptor().FullName())

// priceFeed follows the stock service's LatestPriceChanged events for the process's
// WatchPortfolio streams: one WatchStockEvents stream, run while at least one watcher
// exists, fanned out to the watchers holding each changed symbol. A watcher is a dirty flag
// and a signal channel of capacity 1, so a symbol that changes a thousand times while its
// watcher is busy costs that watcher one recomputation: nothing queues per watcher.
type priceFeed struct {
	stock stockv1.StockServiceClient
	log   *slog.Logger

	mu       sync.Mutex
	watchers map[*priceWatch]struct{}
	bySymbol map[string]map[*priceWatch]struct{}
	stop     context.CancelFunc // the running consumer's; nil while none runs
}

func newPriceFeed(stock stockv1.StockServiceClient, log *slog.Logger) *priceFeed {
	return &priceFeed{stock: stock, log: log, watchers: map[*priceWatch]struct{}{},
		bySymbol: map[string]map[*priceWatch]struct{}{}}
}

// priceWatch is one WatchPortfolio stream's interest in prices.
type priceWatch struct {
	feed    *priceFeed
	symbols map[string]struct{} // held; guarded by feed.mu
	dirty   atomic.Bool         // a held symbol's price changed since the last take
	signal  chan struct{}       // capacity 1: wakes the stream's handler once, however many changes
}

// watch registers a watcher, starting the consumer if it is the first; close it when done.
func (f *priceFeed) watch() *priceWatch {
	w := &priceWatch{feed: f, symbols: map[string]struct{}{}, signal: make(chan struct{}, 1)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watchers[w] = struct{}{}
	if f.stop == nil {
		// Not the first watcher's context: the consumer serves every watcher and ends with
		// the last one (close).
		ctx, cancel := context.WithCancel(context.Background())
		f.stop = cancel
		go f.run(ctx)
	}
	return w
}

// close unregisters w, stopping the consumer if w was the last watcher.
func (w *priceWatch) close() {
	f := w.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	w.holdLocked(nil)
	delete(f.watchers, w)
	if len(f.watchers) == 0 && f.stop != nil {
		f.stop()
		f.stop = nil
	}
}

// hold sets the symbols w holds, reporting whether any of them is new: its price was read
// before the feed watched it for w, so the caller values the portfolio once more.
func (w *priceWatch) hold(symbols []string) (added bool) {
	w.feed.mu.Lock()
	defer w.feed.mu.Unlock()
	return w.holdLocked(symbols)
}

func (w *priceWatch) holdLocked(symbols []string) (added bool) {
	f := w.feed
	next := make(map[string]struct{}, len(symbols))
	for _, s := range symbols {
		next[s] = struct{}{}
		if _, ok := w.symbols[s]; ok {
			continue
		}
		added = true
		ws := f.bySymbol[s]
		if ws == nil {
			ws = map[*priceWatch]struct{}{}
			f.bySymbol[s] = ws
		}
		ws[w] = struct{}{}
	}
	for s := range w.symbols {
		if _, ok := next[s]; ok {
			continue
		}
		delete(f.bySymbol[s], w)
		if len(f.bySymbol[s]) == 0 {
			delete(f.bySymbol, s)
		}
	}
	w.symbols = next
	return added
}

// mark says the valuation may have changed: the dirty flag, and a wake-up unless one is
// pending already. It never blocks.
func (w *priceWatch) mark() {
	w.dirty.Store(true)
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// take clears the flag and the pending wake-up before a recomputation: what changes after
// it marks the watcher again.
func (w *priceWatch) take() {
	w.dirty.Store(false)
	select {
	case <-w.signal:
	default:
	}
}

// changed marks the watchers holding symbol.
func (f *priceFeed) changed(symbol string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.bySymbol[symbol] {
		w.mark()
	}
}

// markAll marks every watcher: the feed (re)started from now and does not know what changed
// before.
func (f *priceFeed) markAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for w := range f.watchers {
		w.mark()
	}
}

// run follows the stock service's price changes until ctx ends, resuming from its cursor
// after a cut, starting from now after CURSOR_EXPIRED or an outage longer than maxResumeGap.
// It never gives up and never fails the service: without it, portfolios are valued at
// their changes only (and on any later price change once the stock service is back).
func (f *priceFeed) run(ctx context.Context) {
	cursor := ""
	var down time.Time // when the stream last failed; zero while it works
	backoff := feedBackoffMin
	for {
		delivered, err := f.follow(ctx, &cursor)
		if ctx.Err() != nil {
			return
		}
		if delivered || err == nil { // a quiet stream that lived its lifetime worked too
			if !down.IsZero() {
				f.log.Info("price feed: following the stock service's price changes again", "down", time.Since(down).Round(time.Millisecond))
			}
			down, backoff = time.Time{}, feedBackoffMin
		}
		if err == nil {
			continue // the stream's lifetime passed: resume at once
		}
		if down.IsZero() {
			down = time.Now()
			f.log.Warn("price feed: stock service's WatchStockEvents failed; retrying", "err", err)
		}
		if apierr.ReasonOf(err) == apierr.CursorExpired || time.Since(down) > maxResumeGap {
			cursor = "" // from now; follow marks every watcher once the stream is back
		}
		wait := feedBackoffMin + rand.N(backoff) // full jitter above the minimum
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, feedBackoffMax)
	}
}

// follow runs one WatchStockEvents stream from *cursor, marking the watchers of every symbol
// whose price changed and advancing *cursor, until the stream fails (its error) or its
// lifetime passes (nil). delivered: the stream sent at least one message.
func (f *priceFeed) follow(ctx context.Context, cursor *string) (delivered bool, err error) {
	sctx, cancel := context.WithTimeout(ctx, streamLifetime)
	defer cancel()
	stream, err := f.stock.WatchStockEvents(sctx, &stockv1.WatchStockEventsRequest{Types: []string{priceChanged}, Cursor: *cursor})
	if err != nil {
		return false, err
	}
	fromNow := *cursor == ""
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(sctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				return delivered, nil
			}
			return delivered, err
		}
		delivered = true
		if fromNow {
			// The first message of a stream from now: whatever changed before it is unknown.
			f.markAll()
			fromNow = false
		}
		for _, ev := range resp.GetEvents() {
			f.changed(ev.GetAggregateId()) // the symbol
		}
		if c := resp.GetCursor(); c != "" {
			*cursor = c
		}
	}
}
