package validate

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// ErrNoRule is what errors.Is finds in NoRule's error.
var ErrNoRule = errors.New("no validation rule")

// NoRule is a service's Validate answer to a request type it has no case for, so that
// validation fails closed, as authorization refuses a method without an access rule: a new
// RPC serves nothing until its request's rules are written down (an explicit empty case when
// there is nothing to check). validatetest.EveryMethod proves every RPC has a case.
//
// The status is UNIMPLEMENTED: the server is not finished, which is neither the caller's
// mistake (INVALID_ARGUMENT would tell them to change a request that may be fine) nor a
// failure while serving (INTERNAL). Neither code is retried, and both are 5xx at the gateway.
// pkg/server lets grpc's own services (health, reflection) through a NoRule, as pkg/auth
// leaves them open.
func NoRule(req any) error {
	name := fmt.Sprintf("%T", req)
	if m, ok := req.(proto.Message); ok {
		name = string(m.ProtoReflect().Descriptor().FullName())
	}
	return noRule{request: name}
}

type noRule struct{ request string }

func (e noRule) Error() string {
	return e.request + " has no validation rule, so the method is not served"
}

func (e noRule) Is(target error) bool { return target == ErrNoRule }

func (e noRule) GRPCStatus() *status.Status {
	return apierr.New(apierr.Unimplemented, e.Error(), nil).GRPCStatus()
}
