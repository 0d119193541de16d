package api_test

import (
	"testing"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
)

// TestValidate_everyMethod: every RPC of the service has a case in Validate (an empty one
// when there is nothing to check), and a request it has no case for is refused.
func TestValidate_everyMethod(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, api.Validate, stockv1.File_pgfleet_stock_v1_stock_proto)
}
