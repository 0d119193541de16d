package main

import (
	"testing"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestCLI runs the built binary's command line: --help, --version, config, healthcheck and
// migrate, against real processes and a real database.
func TestCLI(t *testing.T) {
	t.Parallel()
	apptest.TestCLI(t, apptest.CLI{Package: "github.com/pgfleet/pgfleet/services/stock", Config: config{},
		Env: nil, Database: true, Bad: [2]string{"DB_POOL_SIZE", "abc"}})
}
