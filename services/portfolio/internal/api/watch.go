package api

import (
	"cmp"
	"context"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// unpricedRetryMin and unpricedRetryMax bound the delay before a stream values a portfolio
// again after the stock service failed to price it (doubling while it fails).
const (
	unpricedRetryMin = time.Second
	unpricedRetryMax = 30 * time.Second
)

// WatchPortfolio streams a portfolio's valuation: GetPortfolio's answer at once, then again
// whenever one of its events is in the outbox (a trade, a deposit, a withdrawal) or the
// latest price of a symbol it holds changes. It is conflated: the handler values the
// portfolio, sends, then looks at what changed meanwhile, so a slow reader gets the newest
// valuation, never a backlog. A valuation equal to the one sent last is not sent again.
func (s *Server) WatchPortfolio(req *portfoliov1.WatchPortfolioRequest, stream portfoliov1.PortfolioService_WatchPortfolioServer) error {
	ctx := stream.Context()
	pid := req.GetPortfolioId()
	if err := s.requireOwner(ctx, pid); err != nil {
		return s.grpcError(ctx, err)
	}
	w := s.prices.watch()
	defer w.close()
	id := strconv.FormatInt(pid, 10)
	var last *portfoliov1.WatchPortfolioResponse
	var unpriced reprice
	defer unpriced.stop()
	for {
		// The outbox's head before the snapshot: an event after it may be in the snapshot
		// already (valued twice, harmless), and none before it is missing from it.
		head := s.outbox.Head()
		w.take()
		v, h, err := s.valuation(ctx, pid)
		if err != nil {
			return s.grpcError(ctx, err)
		}
		if w.hold(h.symbols) {
			// A newly held symbol's price was read before the feed watched it for w.
			w.mark()
		}
		unpriced.after(h.priced, w)
		msg := &portfoliov1.WatchPortfolioResponse{Portfolio: v.GetPortfolio(), Positions: v.GetPositions(),
			PositionsValue: v.GetPositionsValue(), TotalValue: v.GetTotalValue(), PositionsValues: v.GetPositionsValues()}
		if last == nil || !proto.Equal(msg, last) {
			if err := stream.Send(msg); err != nil {
				// Send fails once the client is gone: its cancellation, with its reason.
				return s.grpcError(ctx, cmp.Or(ctx.Err(), err))
			}
			last = msg
		}
		if err := s.awaitChange(ctx, w, id, head); err != nil {
			return s.grpcError(ctx, err)
		}
	}
}

// reprice values a stream's portfolio again when its last valuation lacked prices (the stock
// service failed): no price change may ever come to do it. The delay doubles while it fails.
type reprice struct {
	timer   *time.Timer
	backoff time.Duration
}

// after follows a valuation: priced, it forgets the failures; else it marks w after the delay.
func (r *reprice) after(priced bool, w *priceWatch) {
	r.stop()
	if priced {
		r.backoff = 0
		return
	}
	r.backoff = min(max(2*r.backoff, unpricedRetryMin), unpricedRetryMax)
	r.timer = time.AfterFunc(r.backoff, w.mark)
}

func (r *reprice) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// awaitChange returns once portfolio id may have changed since the outbox position head: an
// event of it after head, or a price change of a symbol it holds (w marked); or ctx's error.
func (s *Server) awaitChange(ctx context.Context, w *priceWatch, id string, head int64) error {
	for {
		if w.dirty.Load() {
			return nil
		}
		moved, err := s.waitOutbox(ctx, w, head)
		if err != nil || !moved {
			return err
		}
		recs, next, ok := s.outbox.Recent(head, func(r *outbox.Record) bool { return r.AggregateID == id })
		if !ok || len(recs) > 0 {
			return nil // an event of the portfolio, or the ring no longer holds them all: value afresh
		}
		head = next // other portfolios' events only
	}
}

// waitOutbox waits until the outbox has events after head (moved) or w is signalled (not
// moved). Its goroutine ends before it returns: at most one per stream.
func (s *Server) waitOutbox(ctx context.Context, w *priceWatch, head int64) (moved bool, err error) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var werr error
	done := make(chan struct{})
	go func() {
		werr = s.outbox.Wait(wctx, head)
		close(done)
	}()
	select {
	case <-done:
		return werr == nil, werr
	case <-w.signal: // dirty is set: mark sets it before it signals
		cancel()
		<-done
		return false, ctx.Err()
	}
}
