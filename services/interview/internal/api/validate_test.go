package api_test

import (
	"testing"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
	"github.com/pgfleet/pgfleet/services/interview/internal/api"
)

// TestValidate_everyMethod: every RPC of the service has a case in Validate (an empty one
// when there is nothing to check), and a request it has no case for is refused.
func TestValidate_everyMethod(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, api.Validate, interviewv1.File_pgfleet_interview_v1_interview_proto)
}
