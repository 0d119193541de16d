// Package apierr builds the errors pgfleet's APIs answer with (AIP-193): a gRPC status whose
// details hold exactly one google.rpc.ErrorInfo, with a documented Reason, the Domain and
// metadata a client can act on, plus google.rpc.RetryInfo where waiting and retrying helps.
// Clients branch on the reason, never on the message, which is for people and may change.
//
// The reasons are the constants of type Reason; each is sent with one gRPC code, and
// docs/errors.md lists them all (a test holds the two to each other).
package apierr

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Domain is the ErrorInfo domain of every reason pgfleet defines.
const Domain = "pgfleet.dev"

// Error is an API error: a reason, a message for people and metadata for programs. It is
// its own gRPC status (GRPCStatus), so it may be returned from deep inside a transaction,
// wrapped with %w, and still reach the caller whole through app.Status.
type Error struct {
	Reason   Reason
	Message  string
	Metadata map[string]string
	// RetryDelay, when positive, is sent as google.rpc.RetryInfo: how long to wait before
	// sending the same request again. New sets the reason's default.
	RetryDelay time.Duration
	// Details are sent after the ErrorInfo and RetryInfo, e.g. a google.rpc.BadRequest.
	Details []protoadapt.MessageV1
}

// New returns an Error with reason, message msg and metadata md (nil for none), and the
// reason's default retry delay.
func New(reason Reason, msg string, md map[string]string) *Error {
	return &Error{Reason: reason, Message: msg, Metadata: md, RetryDelay: reasons[reason].retry}
}

// Newf is New with a formatted message.
func Newf(reason Reason, md map[string]string, format string, args ...any) *Error {
	return New(reason, fmt.Sprintf(format, args...), md)
}

// WithRetry replaces the retry delay (0: no RetryInfo) and returns e.
func (e *Error) WithRetry(d time.Duration) *Error {
	e.RetryDelay = d
	return e
}

// WithDetails appends details sent after the ErrorInfo and returns e.
func (e *Error) WithDetails(details ...protoadapt.MessageV1) *Error {
	e.Details = append(e.Details, details...)
	return e
}

// Error returns the message.
func (e *Error) Error() string { return e.Message }

// GRPCStatus returns the status the caller receives: the reason's code, the message, then
// ErrorInfo, RetryInfo if any and the other details.
func (e *Error) GRPCStatus() *status.Status {
	// Metadata and message often echo the request (a path, a key), which may not be UTF-8;
	// protobuf strings must be, or the details would not marshal.
	md := make(map[string]string, len(e.Metadata))
	for k, v := range e.Metadata {
		md[validUTF8(k)] = validUTF8(v)
	}
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: string(e.Reason), Domain: Domain, Metadata: md}}
	if e.RetryDelay > 0 {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryDelay)})
	}
	st := status.New(e.Reason.Code(), validUTF8(e.Message))
	withDetails, err := st.WithDetails(append(details, e.Details...)...)
	if err != nil { // only for an OK code or details that cannot be marshalled
		return st
	}
	return withDetails
}

// Is reports whether target is an *Error with the same reason, so callers and tests can
// write errors.Is(err, &apierr.Error{Reason: apierr.StaleEtag}).
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Reason == e.Reason
}

// Info returns the first google.rpc.ErrorInfo of st, or nil if it has none.
func Info(st *status.Status) *errdetails.ErrorInfo {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info
		}
	}
	return nil
}

// Count returns how many google.rpc.ErrorInfo details st carries: 1 for every status a
// pgfleet API sends.
func Count(st *status.Status) int {
	n := 0
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.ErrorInfo); ok {
			n++
		}
	}
	return n
}

// ReasonOf returns the reason of err's status, or "" if err carries no ErrorInfo.
func ReasonOf(err error) Reason {
	st, _ := status.FromError(err)
	if info := Info(st); info != nil {
		return Reason(info.GetReason())
	}
	return ""
}

// Ensure returns st with exactly one ErrorInfo. A status with one is returned as is (ok
// true). Otherwise (ok false) a status without one gets the reason its code stands for
// (ForCode), and a status with several keeps the first; message and other details stay.
// OK statuses are returned as is.
func Ensure(st *status.Status) (_ *status.Status, ok bool) {
	if st.Code() == codes.OK || Count(st) == 1 {
		return st, true
	}
	p := st.Proto() // a copy
	var info *anypb.Any
	rest := make([]*anypb.Any, 0, len(p.GetDetails()))
	for _, d := range p.GetDetails() {
		switch {
		case !d.MessageIs((*errdetails.ErrorInfo)(nil)):
			rest = append(rest, d)
		case info == nil:
			info = d
		}
	}
	if info == nil {
		var err error
		info, err = anypb.New(&errdetails.ErrorInfo{Reason: string(ForCode(st.Code())), Domain: Domain})
		if err != nil { // an ErrorInfo always marshals
			return st, false
		}
	}
	p.Details = append([]*anypb.Any{info}, rest...)
	p.Message = validUTF8(p.GetMessage())
	return status.FromProto(p), false
}

// validUTF8 replaces the invalid UTF-8 in s with U+FFFD.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
