package api

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// aggregateType is the aggregate type of every stock event; the aggregate id is the symbol.
const aggregateType = "stock"

// eventName returns the full name of an event's message, its type in the outbox.
func eventName(m proto.Message) string { return string(m.ProtoReflect().Descriptor().FullName()) }

// Event types: the full names of the messages the stock service writes to its outbox.
var (
	latestPriceChanged = eventName(&stockv1.LatestPriceChanged{})
	eventTypes         = []string{
		latestPriceChanged,
		eventName(&stockv1.StockChanged{}),
		eventName(&stockv1.StockDeleted{}),
		eventName(&stockv1.RecommendationChanged{}),
	}
)

// changes collects a transaction's events, in the order they happen, for one Append.
type changes []outbox.Event

func (c *changes) add(symbol string, payload proto.Message) error {
	ev, err := outbox.NewEvent(aggregateType, symbol, payload)
	if err != nil {
		return fmt.Errorf("event %s of %q: %w", eventName(payload), symbol, err)
	}
	*c = append(*c, ev)
	return nil
}

// latestPrice adds a LatestPriceChanged of p's symbol (with p nil: it has no price any more).
func (c *changes) latestPrice(symbol string, p *store.Price) error {
	ev := &stockv1.LatestPriceChanged{Symbol: symbol}
	if p != nil {
		ev.Price = toPrice(p)
	}
	return c.add(symbol, ev)
}

// appendTo writes the events in tx, the transaction of their change; after its commit, call
// s.outbox.Committed().
func (c changes) appendTo(ctx context.Context, o *outbox.Outbox, tx pgx.Tx) error {
	if len(c) == 0 {
		return nil
	}
	return o.Append(ctx, tx, c...)
}

// WatchStockEvents streams the service's events from a cursor (pkg/events does the work). It
// ends only with an error: the client's cancel, a failed send, the server's drain.
func (s *Server) WatchStockEvents(req *stockv1.WatchStockEventsRequest, stream stockv1.StockService_WatchStockEventsServer) error {
	ctx := stream.Context()
	return s.grpcError(ctx, events.Serve(ctx, s.outbox, eventTypes,
		events.Request{Types: req.GetTypes(), Cursor: req.GetCursor(), FromOldest: req.GetFromOldest()},
		func(evs []*opsv1.Event, cursor string) error {
			return stream.Send(&stockv1.WatchStockEventsResponse{Events: evs, Cursor: cursor})
		}))
}
