// Command pgfleet is the operator's command line for a running pgfleet deployment.
//
//	pgfleet doctor [--fleet FILE] [--json] [--timeout D]
//
// doctor checks the fleet that FILE describes (fleet.go documents it; pgfleet-run writes one
// for the fleet it starts) end to end: each service's database, role isolation, migration
// version, gRPC health, DatabaseMonitor, the connection budget, replica lag, clock skew, TLS
// certificate expiry and the gateway. Exit status: 0 when every check is ok or only warns, 1
// when one failed, 2 on bad usage or an unreadable fleet file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
)

const usage = `pgfleet is the operator's command line for a running pgfleet deployment.

Usage:
  pgfleet doctor [--fleet FILE] [--json] [--timeout D]   check a running fleet end to end
  pgfleet --version                                       print the version

doctor exits 0 when every check is ok or only warns, 1 when a check failed, 2 on bad usage
or an unreadable fleet file.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "doctor":
		return doctor(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "-version", "--version", "version":
		fmt.Fprintln(stdout, "pgfleet", buildinfo.Get()) // as every binary prints it
		return 0
	}
	fmt.Fprintf(stderr, "pgfleet: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func doctor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pgfleet doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("fleet", ".tmp/run/fleet.json", "the fleet file (JSON) describing the deployment")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "bound of each check's network calls")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "usage: pgfleet doctor [--fleet FILE] [--json] [--timeout D]")
		return 2
	}
	f, err := readFleet(*file)
	if err != nil {
		fmt.Fprintln(stderr, "pgfleet doctor: read fleet file:", err)
		return 2
	}
	r := newReport(examine(ctx, f, *timeout))
	if *asJSON {
		err = r.writeJSON(stdout)
	} else {
		err = r.writeText(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "pgfleet doctor:", err)
		return 2
	}
	if r.Summary.Status == Fail {
		return 1
	}
	return 0
}
