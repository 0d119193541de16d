package main

import (
	"testing"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestCLI runs the built binary's command line: --help, --version, config and healthcheck
// (GET /healthz) against a real process; the upstreams need not be up for /healthz.
func TestCLI(t *testing.T) {
	t.Parallel()
	apptest.TestCLI(t, apptest.CLI{Package: "github.com/pgfleet/pgfleet/services/gateway", Config: config{},
		Env: map[string]string{"STOCK_ADDR": "127.0.0.1:1", "PORTFOLIO_ADDR": "127.0.0.1:1", "INTERVIEW_ADDR": "127.0.0.1:1"},
		Bad: [2]string{"MAX_IN_FLIGHT", "abc"}})
}
