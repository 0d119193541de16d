// Package validate collects field violations of a request and turns them into an
// INVALID_ARGUMENT status carrying a google.rpc.ErrorInfo (reason INVALID_FIELD unless
// the Error says otherwise) and google.rpc.BadRequest details, which the gateway renders
// as HTTP 400 with the violations in the body.
package validate

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// Error is a request that broke one or more field rules. Services test for it with errors.As.
type Error struct {
	Violations []*errdetails.BadRequest_FieldViolation
	// Unlisted counts the violations past the first MaxViolations, which are left out.
	Unlisted int
	// Reason is the ErrorInfo reason, apierr.InvalidField if empty; Metadata is sent beside
	// "fields", the violated fields comma-separated.
	Reason   apierr.Reason
	Metadata map[string]string
}

// Error lists the violations as "field: description; ...".
func (e *Error) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.GetField() + ": " + v.GetDescription()
	}
	msg := "invalid request: " + strings.Join(parts, "; ")
	if e.Unlisted > 0 {
		msg += fmt.Sprintf("; and %d more", e.Unlisted)
	}
	return msg
}

// GRPCStatus makes Error a status: status.Code and status.Convert see INVALID_ARGUMENT,
// with an ErrorInfo and the BadRequest.
func (e *Error) GRPCStatus() *status.Status {
	var fields []string
	for _, v := range e.Violations {
		if !slices.Contains(fields, v.GetField()) {
			fields = append(fields, v.GetField())
		}
	}
	md := maps.Clone(e.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	md["fields"] = strings.Join(fields, ",")
	return apierr.New(cmp.Or(e.Reason, apierr.InvalidField), e.Error(), md).
		WithDetails(&errdetails.BadRequest{FieldViolations: e.Violations}).GRPCStatus()
}

// Field returns an Error with a single violation.
func Field(field, format string, args ...any) *Error {
	var v Violations
	v.Add(field, format, args...)
	return v.Err().(*Error)
}

// An error echoes what it refuses, so its size must not follow the request's: a 1 MiB
// string quoted in a description, or a violation for each of 10,000 list elements, made
// megabytes of trailers for the caller and of log lines (the message is logged), and took
// the service seconds to send. Descriptions quote at most MaxEcho bytes of a string
// argument and hold at most MaxDescription bytes (an error argument may quote the input
// too), and an Error lists at most MaxViolations violations.
const (
	MaxEcho        = 100
	MaxDescription = 500
	MaxViolations  = 100
)

// Violations accumulates violations so a caller reports every bad field at once.
// The zero value is ready to use.
type Violations struct {
	list     []*errdetails.BadRequest_FieldViolation
	unlisted int
}

// Add records that field breaks a rule described by format and args. A string argument
// longer than MaxEcho bytes is cut to its first MaxEcho bytes (whole characters) and "…",
// and so is the description past MaxDescription bytes. Past MaxViolations violations, Add
// only counts.
func (v *Violations) Add(field, format string, args ...any) {
	if len(v.list) >= MaxViolations {
		v.unlisted++
		return
	}
	for i, a := range args {
		if s, ok := a.(string); ok && len(s) > MaxEcho {
			args = slices.Clone(args) // the caller's
			args[i] = cut(s, MaxEcho)
		}
	}
	v.list = append(v.list, &errdetails.BadRequest_FieldViolation{
		Field:       field,
		Description: cut(fmt.Sprintf(format, args...), MaxDescription),
	})
}

// cut returns s if it has at most n bytes, else its first n bytes or fewer (whole
// characters) and "…".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Check records a violation when ok is false, and reports ok.
func (v *Violations) Check(ok bool, field, format string, args ...any) bool {
	if !ok {
		v.Add(field, format, args...)
	}
	return ok
}

// Err returns an *Error holding the violations, or nil if there are none.
func (v *Violations) Err() error {
	if len(v.list) == 0 {
		return nil
	}
	return &Error{Violations: v.list, Unlisted: v.unlisted}
}
