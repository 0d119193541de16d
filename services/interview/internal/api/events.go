package api

import (
	"strconv"

	"google.golang.org/protobuf/proto"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// sessionAggregate is the aggregate type of the service's events; their aggregate id is the
// session id (Debezium's message key: one session's events stay in order on one partition).
const sessionAggregate = "session"

// eventTypes are the service's event types, the full names of their payload messages, for
// WatchInterviewEvents.
var eventTypes = []string{
	string((&interviewv1.AnswerEvaluated{}).ProtoReflect().Descriptor().FullName()),
	string((&interviewv1.SessionCompleted{}).ProtoReflect().Descriptor().FullName()),
}

// sessionEvent is an event of session sid with payload.
func sessionEvent(sid int64, payload proto.Message) (outbox.Event, error) {
	return outbox.NewEvent(sessionAggregate, strconv.FormatInt(sid, 10), payload)
}
