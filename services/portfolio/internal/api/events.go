package api

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// aggregateType is the aggregate type of every event of the service: a portfolio, whose id
// (decimal) is the aggregate id.
const aggregateType = "portfolio"

// EventTypes are the types of the service's events, full message names: what WatchPortfolioEvents
// serves and WatchPortfolio follows.
var EventTypes = []string{
	string((&portfoliov1.TradeExecuted{}).ProtoReflect().Descriptor().FullName()),
	string((&portfoliov1.CashMoved{}).ProtoReflect().Descriptor().FullName()),
}

// appendEvent appends the event of a change of a portfolio to the outbox, in tx, the
// transaction of the change.
func (s *Server) appendEvent(ctx context.Context, tx pgx.Tx, portfolioID int64, payload proto.Message) error {
	ev, err := outbox.NewEvent(aggregateType, strconv.FormatInt(portfolioID, 10), payload)
	if err != nil {
		return err
	}
	return s.outbox.Append(ctx, tx, ev)
}

// WatchPortfolioEvents streams the service's events from a cursor, at least once, in commit order,
// until the client or the server ends it (events.Serve always returns an error).
func (s *Server) WatchPortfolioEvents(req *portfoliov1.WatchPortfolioEventsRequest, stream portfoliov1.PortfolioService_WatchPortfolioEventsServer) error {
	ctx := stream.Context()
	r := events.Request{Types: req.GetTypes(), Cursor: req.GetCursor(), FromOldest: req.GetFromOldest()}
	return s.grpcError(ctx, events.Serve(ctx, s.outbox, EventTypes, r, func(evs []*opsv1.Event, cursor string) error {
		return stream.Send(&portfoliov1.WatchPortfolioEventsResponse{Events: evs, Cursor: cursor})
	}))
}
