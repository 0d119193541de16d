package apptest

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// WantCode fails the test unless err carries code.
func WantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("error = %v, want code %v", err, code)
	}
}

// WantReason fails the test unless err's ErrorInfo has reason and, of its metadata, at
// least md.
func WantReason(t testing.TB, err error, reason apierr.Reason, md map[string]string) {
	t.Helper()
	info := apierr.Info(status.Convert(err))
	if got := apierr.Reason(info.GetReason()); got != reason {
		t.Fatalf("error = %v with reason %q, want %q", err, got, reason)
	}
	for k, v := range md {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("error = %v: metadata %q = %q, want %q", err, k, got, v)
		}
	}
}
