package api

import (
	"context"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// WatchSession sends the session as GetSession returns it, then again after each of its
// events (an answer scored, its completion). It is conflated by construction: the handler
// sends, then looks at what was sequenced since its last look, and re-reads the session if
// any of it concerns this one; a reader that reads slowly holds up only this loop, and gets
// the newest state when it reads again, never a backlog. A state equal to the last one sent
// is not sent again. The stream stays open after the completion, as the proto says, until
// the client ends it or a drain does (UNAVAILABLE): a browser's EventSource reconnects to a
// stream that ends, and would fetch the completed session again and again.
func (s *Interviews) WatchSession(req *interviewv1.WatchSessionRequest, stream grpc.ServerStreamingServer[interviewv1.WatchSessionResponse]) error {
	ctx := stream.Context()
	sid := req.GetSessionId()
	key := strconv.FormatInt(sid, 10)
	// Head before the snapshot: an event after it is looked at below, though the snapshot may
	// already hold its change (then the re-read equals what was sent, and is not sent again).
	head := s.outbox.Head()
	resp, err := s.GetSession(ctx, &interviewv1.GetSessionRequest{SessionId: sid})
	if err != nil {
		return err // a status already, NOT_FOUND for another candidate's session as for GetSession
	}
	last := resp.GetSession()
	if err := stream.Send(&interviewv1.WatchSessionResponse{Session: last}); err != nil {
		return s.sendError(ctx, err)
	}
	for {
		if err := s.outbox.Wait(ctx, head); err != nil {
			return s.grpcError(ctx, err)
		}
		next, changed := s.sessionChanged(key, head)
		head = next
		if !changed {
			continue
		}
		sess, qs, err := s.read(ctx, sid)
		if err != nil {
			return s.grpcError(ctx, err)
		}
		cur := toSession(sess, qs)
		if proto.Equal(cur, last) {
			continue
		}
		if err := stream.Send(&interviewv1.WatchSessionResponse{Session: cur}); err != nil {
			return s.sendError(ctx, err)
		}
		last = cur
	}
}

// sessionChanged reports whether an event of session key was sequenced after position
// after, and returns the position up to which it looked: if changed, the session must be
// read again after this call, and then holds every change up to that position. When the
// process's ring no longer holds every event after after (a reader slower than the ring is
// long), it cannot tell and says changed, up to the Head() it read before: a fresh read is
// always right.
func (s *Interviews) sessionChanged(key string, after int64) (upto int64, changed bool) {
	head := s.outbox.Head()
	recs, next, ok := s.outbox.Recent(after, func(r *outbox.Record) bool {
		return r.AggregateType == sessionAggregate && r.AggregateID == key
	})
	if !ok {
		return head, true
	}
	return next, len(recs) > 0
}

// sendError is the status a stream's Send failure ends the call with: the client's
// cancellation as such (a stream's Send fails once its context is done), not an INTERNAL.
func (s *Interviews) sendError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return s.grpcError(ctx, err)
}

// WatchInterviewEvents streams the service's events (AnswerEvaluated, SessionCompleted) in commit
// order from a cursor, at least once: events.Serve does it all, from the validation of types
// and cursor to the first message.
func (s *Interviews) WatchInterviewEvents(req *interviewv1.WatchInterviewEventsRequest, stream grpc.ServerStreamingServer[interviewv1.WatchInterviewEventsResponse]) error {
	ctx := stream.Context()
	err := events.Serve(ctx, s.outbox, eventTypes, // returns only when the stream ends: an error
		events.Request{Types: req.GetTypes(), Cursor: req.GetCursor(), FromOldest: req.GetFromOldest()},
		func(evs []*opsv1.Event, cursor string) error {
			return stream.Send(&interviewv1.WatchInterviewEventsResponse{Events: evs, Cursor: cursor})
		})
	return s.sendError(ctx, err)
}
