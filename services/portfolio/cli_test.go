package main

import (
	"testing"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestCLI runs the built binary's command line: --help, --version, config, healthcheck and
// migrate, against real processes and a real database.
func TestCLI(t *testing.T) {
	t.Parallel()
	apptest.TestCLI(t, apptest.CLI{Package: "github.com/pgfleet/pgfleet/services/portfolio", Config: config{},
		Env: map[string]string{"STOCK_ADDR": "127.0.0.1:1"}, Database: true, Bad: [2]string{"MAX_PRICE_AGE", "soon"}})
}
