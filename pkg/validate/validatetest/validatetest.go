// Package validatetest checks a service's Validate against its protos.
package validatetest

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pgfleet/pgfleet/pkg/validate"
)

// EveryMethod fails t unless check (a service's Validate) has a rule for the request of every RPC of every
// service in files (it answers anything but validate.NoRule to an empty request: nil or
// field violations), and fails closed on a request type it does not know. It does for
// validation what a Policy does for access: a new RPC fails the test until its rules are
// written down.
func EveryMethod(t *testing.T, check func(req any) error, files ...protoreflect.FileDescriptor) {
	t.Helper()
	methods := 0
	for _, f := range files {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
				if err != nil {
					t.Fatalf("%s: request type: %v", m.FullName(), err)
				}
				if err := check(mt.New().Interface()); errors.Is(err, validate.ErrNoRule) {
					t.Errorf("%s: Validate has no case for %s: %v", m.FullName(), m.Input().FullName(), err)
				}
				methods++
			}
		}
	}
	if methods == 0 {
		t.Fatal("no methods to check")
	}
	if err := check(&emptypb.Empty{}); !errors.Is(err, validate.ErrNoRule) {
		t.Errorf("Validate(google.protobuf.Empty) = %v, want a NoRule error: validation must fail closed", err)
	}
}
