package app

import (
	"testing"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
)

// TestWithMonitor: DatabaseMonitor, which every service serves, has a validation rule
// whatever the service's Validate knows.
func TestWithMonitor(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, withMonitor(validate.NoRule), opsv1.File_pgfleet_ops_v1_ops_proto)
}
