package api

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// WatchLatestPrices sends a snapshot of the symbols' latest prices, then, each time it has
// sent, the newest price of every watched symbol that changed meanwhile, read from the
// outbox's ring (LatestPriceChanged events): conflated by construction, since the handler
// reads what changed only when the previous message has gone, however slowly the client
// reads. When the ring no longer holds its cursor, it takes a fresh snapshot and sends the
// difference. Memory is one small entry per watched symbol (sentPrice).
func (s *Server) WatchLatestPrices(req *stockv1.WatchLatestPricesRequest, stream stockv1.StockService_WatchLatestPricesServer) error {
	ctx := stream.Context()
	// It ends only with an error: the client's cancel, a failed send, the server's drain.
	return s.grpcError(ctx, s.watchPrices(ctx, req.GetSymbols(), stream.Send))
}

// priceWatch is one WatchLatestPrices stream's state: what it last sent of each symbol.
type priceWatch struct {
	sent map[string]sentPrice // every watched symbol
	// resp is the next message, new for each (gRPC may still hold one it was given).
	resp *stockv1.WatchLatestPricesResponse
}

// sentPrice is what a stream keeps of the price it last sent of a symbol: its bar's time, to
// send nothing older, and a hash of the whole price, to send a bar replaced at the same time
// (or the final price of a delisted stock) and nothing already sent. 32 bytes, not the price.
type sentPrice struct {
	seconds int64
	nanos   int32
	has     bool // false: no price sent, or it was cleared
	sum     uint64
}

func sentOf(p *stockv1.Price) sentPrice {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(p) // a Price always marshals
	h := fnv.New64a()
	h.Write(b)
	return sentPrice{seconds: p.GetTime().GetSeconds(), nanos: p.GetTime().GetNanos(), has: true, sum: h.Sum64()}
}

// newer reports whether n should follow s: a later bar, or the same bar with other values.
func (s sentPrice) newer(n sentPrice) bool {
	switch {
	case !s.has || n.seconds > s.seconds:
		return true
	case n.seconds == s.seconds && n.nanos > s.nanos:
		return true
	}
	return n.seconds == s.seconds && n.nanos == s.nanos && n.sum != s.sum
}

func (s *Server) watchPrices(ctx context.Context, symbols []string, send func(*stockv1.WatchLatestPricesResponse) error) error {
	var unknown []string
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		unknown, err = s.store.UnknownSymbols(ctx, symbols)
		return err
	})
	if err != nil {
		return err
	}
	if len(unknown) > 0 {
		return apierr.New(apierr.StockNotFound, fmt.Sprintf("unknown stocks: %s", strings.Join(unknown, ", ")),
			map[string]string{"symbols": strings.Join(unknown, ",")})
	}
	w := &priceWatch{sent: make(map[string]sentPrice, len(symbols))}
	for _, sym := range symbols {
		w.sent[sym] = sentPrice{}
	}
	// Head before the snapshot: every change the snapshot may miss comes after it.
	cursor := s.outbox.Head()
	if err := s.snapshot(ctx, w, symbols); err != nil {
		return err
	}
	if err := w.send(send); err != nil { // the first message, even empty: the stream has begun
		return err
	}
	for {
		if err := s.outbox.Wait(ctx, cursor); err != nil {
			return err
		}
		recs, next, ok := s.outbox.Recent(cursor, w.watches)
		if ok {
			cursor = next
			if err := w.conflate(recs); err != nil {
				return err
			}
		} else {
			// The ring moved past the cursor (the client read slowly): start again from the
			// tables, and from the head noted before reading them.
			cursor = s.outbox.Head()
			if err := s.snapshot(ctx, w, symbols); err != nil {
				return err
			}
		}
		if len(w.resp.GetPrices()) == 0 && len(w.resp.GetClearedSymbols()) == 0 {
			continue
		}
		if err := w.send(send); err != nil {
			return err
		}
	}
}

// snapshot reads the latest prices of the watched symbols and sets w.resp to those that
// differ from what was sent (all of them at first), and to the symbols that had a price sent
// and have none any more. The tables are the truth: it may go back in time only after a clear.
func (s *Server) snapshot(ctx context.Context, w *priceWatch, symbols []string) error {
	var rows []store.Price
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		rows, err = s.store.LatestPrices(ctx, symbols)
		return err
	})
	if err != nil {
		return err
	}
	w.reset()
	has := make(map[string]bool, len(rows))
	for i := range rows {
		p := toPrice(&rows[i])
		has[p.GetSymbol()] = true
		if last, now := w.sent[p.GetSymbol()], sentOf(p); !last.has || last.sum != now.sum {
			w.sent[p.GetSymbol()] = now
			w.resp.Prices = append(w.resp.Prices, p)
		}
	}
	for sym, last := range w.sent {
		if last.has && !has[sym] {
			w.sent[sym] = sentPrice{}
			w.resp.ClearedSymbols = append(w.resp.ClearedSymbols, sym)
		}
	}
	w.sort()
	return nil
}

// watches keeps, among a schema's events, the price changes of w's symbols: a subscriber
// copies out of the shared ring only what it watches.
func (w *priceWatch) watches(r *outbox.Record) bool {
	if r.Type != latestPriceChanged {
		return false
	}
	_, ok := w.sent[r.AggregateID]
	return ok
}

// conflate sets w.resp to the newest change of each watched symbol among recs (in position
// order), leaving out a price older than the one sent (an event the snapshot had overtaken)
// or equal to it.
func (w *priceWatch) conflate(recs []outbox.Record) error {
	w.reset()
	newest := map[string]int{} // symbol -> index in recs of its last change
	for i, r := range recs {
		if _, watched := w.sent[r.AggregateID]; watched {
			newest[r.AggregateID] = i
		}
	}
	for sym, i := range newest {
		ev := &stockv1.LatestPriceChanged{}
		if err := proto.Unmarshal(recs[i].Payload, ev); err != nil {
			return fmt.Errorf("event %d (%s): %w", recs[i].Position, recs[i].Type, err)
		}
		last, p := w.sent[sym], ev.GetPrice()
		if p == nil { // cleared: a delisted symbol listed again
			if last.has {
				w.sent[sym] = sentPrice{}
				w.resp.ClearedSymbols = append(w.resp.ClearedSymbols, sym)
			}
			continue
		}
		if now := sentOf(p); last.newer(now) {
			w.sent[sym] = now
			w.resp.Prices = append(w.resp.Prices, p)
		}
	}
	w.sort()
	return nil
}

func (w *priceWatch) reset() { w.resp = &stockv1.WatchLatestPricesResponse{} }

// send sends w.resp and lets go of it: an idle stream holds no message.
func (w *priceWatch) send(send func(*stockv1.WatchLatestPricesResponse) error) error {
	resp := w.resp
	w.resp = nil
	return send(resp)
}

func (w *priceWatch) sort() {
	slices.SortFunc(w.resp.Prices, func(a, b *stockv1.Price) int { return strings.Compare(a.GetSymbol(), b.GetSymbol()) })
	slices.Sort(w.resp.ClearedSymbols)
}
