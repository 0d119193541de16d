package validate_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestViolations(t *testing.T) {
	t.Parallel()
	var v validate.Violations
	if err := v.Err(); err != nil {
		t.Fatalf("empty Violations.Err() = %v, want nil", err)
	}
	v.Check(true, "symbol", "never reported")
	v.Check(false, "symbol", "must be 1 to %d characters", 10)
	v.Add("page_size", "must not be negative")

	err := v.Err()
	var bad *validate.Error
	if !errors.As(err, &bad) {
		t.Fatalf("Err() = %T, want *validate.Error", err)
	}
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("code = %v, want InvalidArgument", st.Code())
	}
	if want := "invalid request: symbol: must be 1 to 10 characters; page_size: must not be negative"; st.Message() != want {
		t.Errorf("message = %q, want %q", st.Message(), want)
	}
	want := []any{
		&errdetails.ErrorInfo{Reason: "INVALID_FIELD", Domain: "pgfleet.dev", Metadata: map[string]string{"fields": "symbol,page_size"}},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "symbol", Description: "must be 1 to 10 characters"},
			{Field: "page_size", Description: "must not be negative"},
		}},
	}
	if diff := cmp.Diff(want, st.Details(), protocmp.Transform()); diff != "" {
		t.Errorf("details mismatch (-want +got):\n%s", diff)
	}
}

func TestField(t *testing.T) {
	t.Parallel()
	err := validate.Field("filter", "unknown field %q", "colour")
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("status.Code(Field(...)) = %v, want InvalidArgument", got)
	}
	if want := `invalid request: filter: unknown field "colour"`; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestError_reason(t *testing.T) {
	t.Parallel()
	err := &validate.Error{Violations: validate.Field("stocks[0].symbol", "unknown stock").Violations,
		Reason: apierr.UnknownStock, Metadata: map[string]string{"symbols": "ZZZZ"}}
	info := apierr.Info(status.Convert(err))
	want := &errdetails.ErrorInfo{Reason: "UNKNOWN_STOCK", Domain: "pgfleet.dev",
		Metadata: map[string]string{"symbols": "ZZZZ", "fields": "stocks[0].symbol"}}
	if diff := cmp.Diff(want, info, protocmp.Transform()); diff != "" {
		t.Errorf("ErrorInfo mismatch (-want +got):\n%s", diff)
	}
}

// TestViolations_bounded checks that an error's size does not follow the request's: a long
// string argument is quoted cut, on a character boundary, so is a description quoting the
// input through an error, and violations past MaxViolations are counted, not listed.
func TestViolations_bounded(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", validate.MaxEcho-1) + "é" + strings.Repeat("y", 1<<20) // é straddles the cut
	args := []any{long, 7}
	var v validate.Violations
	v.Add("symbol", "must be 1 to 10 of A-Z, got %q (%d)", args...)
	for i := range 10000 {
		v.Add(fmt.Sprintf("tags[%d]", i), "each tag once, got %q", "joins")
	}
	var bad *validate.Error
	if !errors.As(v.Err(), &bad) {
		t.Fatalf("Err() = %T, want *validate.Error", v.Err())
	}
	if want := `must be 1 to 10 of A-Z, got "` + strings.Repeat("x", validate.MaxEcho-1) + `…" (7)`; bad.Violations[0].GetDescription() != want {
		t.Errorf("description = %.200q, want %.200q", bad.Violations[0].GetDescription(), want)
	}
	if args[0] != long {
		t.Error("Add changed the caller's arguments")
	}
	var one validate.Violations
	one.Add("order_by", "%v", fmt.Errorf("unknown field %q", long))
	if d := one.Err().(*validate.Error).Violations[0].GetDescription(); len(d) > validate.MaxDescription+len("…") || !strings.HasPrefix(d, `unknown field "xxx`) {
		t.Errorf("description of an error quoting 1 MiB = %d bytes %.60q..., want at most %d", len(d), d, validate.MaxDescription)
	}
	if len(bad.Violations) != validate.MaxViolations || bad.Unlisted != 10001-validate.MaxViolations {
		t.Errorf("%d violations listed, %d unlisted; want %d and %d", len(bad.Violations), bad.Unlisted,
			validate.MaxViolations, 10001-validate.MaxViolations)
	}
	if want := fmt.Sprintf("; and %d more", 10001-validate.MaxViolations); !strings.HasSuffix(bad.Error(), want) {
		t.Errorf("Error() = ...%q, want it to end with %q", bad.Error()[len(bad.Error())-40:], want)
	}
	if n := proto.Size(status.Convert(bad).Proto()); n > 64<<10 {
		t.Errorf("status is %d bytes, want at most 64 KiB", n)
	}
}
