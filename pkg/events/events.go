// Package events serves a service's change events stream (WatchStockEvents,
// WatchPortfolioEvents, WatchInterviewEvents): its outbox as a stream of ops.v1.Event, in
// commit order, at least once, from an opaque cursor. Each service declares its own RPC (its
// own request and response messages, its own REST route) around Serve.
package events

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// Limits of an events request, which the services' validators also apply.
const (
	MaxTypes     = 20
	MaxCursorLen = 200
	// batch is the most events one message carries.
	batch = 500
)

// Request is what every service's Watch...EventsRequest holds.
type Request struct {
	Types      []string
	Cursor     string
	FromOldest bool
}

// Serve runs a Watch...Events call until ctx ends or send fails: it checks the request against
// known (the service's event types), sends a first message without events when the stream
// starts without a cursor, then every event after the cursor as it is committed, at most
// batch per message, each message with the cursor after its last event. Errors are apierr
// or validate errors: INVALID_FIELD (types), CURSOR_MALFORMED, CURSOR_EXPIRED. ctx's end
// returns ctx's error, for the server to map.
func Serve(ctx context.Context, o *outbox.Outbox, known []string, req Request, send func(evs []*opsv1.Event, cursor string) error) error {
	if err := checkTypes(req.Types, known); err != nil {
		return err
	}
	schema := o.Schema()
	var after int64
	switch {
	case req.Cursor != "":
		var err error
		if after, err = outbox.ParseCursor(schema, req.Cursor); err != nil {
			return apierr.New(apierr.CursorMalformed, "cursor is not a cursor of this service's events", nil)
		}
		last, err := o.Last(ctx)
		if err != nil {
			return err
		}
		if after > max(last, o.Head()) {
			return apierr.New(apierr.CursorMalformed, "cursor is ahead of the last event: it comes from another database", nil)
		}
	case req.FromOldest:
		oldest, err := o.Oldest(ctx)
		if err != nil {
			return err
		}
		after = oldest - 1
	default:
		last, err := o.Last(ctx)
		if err != nil {
			return err
		}
		after = max(last, o.Head())
	}
	if req.Cursor == "" {
		if err := send(nil, outbox.Cursor(schema, after)); err != nil {
			return err
		}
	}
	for {
		recs, next, err := o.Next(ctx, after, req.Types, batch)
		if errors.Is(err, outbox.ErrCursorPruned) {
			oldest, oerr := o.Oldest(ctx)
			if oerr != nil {
				return oerr
			}
			return apierr.Newf(apierr.CursorExpired, map[string]string{"oldest_cursor": outbox.Cursor(schema, oldest-1)},
				"the events after the cursor have been pruned (oldest kept: %d): resynchronize, then watch from_oldest or from now", oldest)
		}
		if err != nil {
			return err
		}
		evs := make([]*opsv1.Event, len(recs))
		for i, r := range recs {
			evs[i] = toProto(schema, r)
		}
		if err := send(evs, outbox.Cursor(schema, next)); err != nil {
			return err
		}
		after = next
	}
}

// checkTypes refuses more than MaxTypes types, duplicates and types the service does not emit.
func checkTypes(types, known []string) error {
	var v validate.Violations
	if len(types) > MaxTypes {
		v.Add("types", "at most %d types, got %d", MaxTypes, len(types))
		return v.Err()
	}
	for i, t := range types {
		field := "types[" + strconv.Itoa(i) + "]"
		switch {
		case !slices.Contains(known, t):
			v.Add(field, "%q is not an event type of this service: one of %v", t, known)
		case slices.Contains(types[:i], t):
			v.Add(field, "%q is listed twice", t)
		}
	}
	return v.Err()
}

// toProto is the wire form of an outbox record: the payload becomes an Any of its type.
func toProto(schema string, r outbox.Record) *opsv1.Event {
	return &opsv1.Event{
		Cursor:        outbox.Cursor(schema, r.Position),
		Id:            r.ID,
		AggregateType: r.AggregateType,
		AggregateId:   r.AggregateID,
		Type:          r.Type,
		CreateTime:    timestamppb.New(r.CreatedAt),
		Payload:       &anypb.Any{TypeUrl: "type.googleapis.com/" + r.Type, Value: r.Payload},
	}
}
