package validate_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
