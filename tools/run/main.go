// Command pgfleet-run runs pgfleet on this machine, as `make run` does: PostgreSQL (a kept
// local cluster, or the server of DATABASE_URL), the roles and schemas of deploy/local/
// bootstrap.sql, the services in dependency order, each once the one before it is SERVING,
// demo data once, the gateway, and then it prints ports and working examples and waits.
// SIGINT or SIGTERM stops the gateway and the services in reverse order, then the cluster it
// started; killed outright, it takes them down with it (pkg/supervise). deploy/local/README.md
// lists its knobs.
//
//	pgfleet-run [-root DIR]                 the fleet (make run)
//	pgfleet-run postgres -dir DIR [-port N] -- COMMAND...
//	                                        a throwaway cluster around COMMAND, which gets its
//	                                        superuser URL as PGFLEET_TEST_DATABASE_URL (make test)
//	pgfleet-run stop-postgres [DIR]         stop a cluster a killed run left in DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

func main() {
	stopWithParent()
	err := dispatch(os.Args[1:])
	var exit exitCode
	switch {
	case errors.As(err, &exit):
		os.Exit(int(exit))
	case err != nil:
		fmt.Fprintln(os.Stderr, "pgfleet-run:", err)
		os.Exit(1)
	}
}

// exitCode ends the program with that code and no message (the message is out already).
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

func dispatch(args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "postgres":
			return withPostgres(args[1:])
		case "stop-postgres":
			dir := defaultDataDir
			if len(args) > 1 {
				dir = args[1]
			}
			return stopPostgres(dir)
		}
	}
	fs := flag.NewFlagSet("pgfleet-run", flag.ContinueOnError)
	root := fs.String("root", ".", "the pgfleet repository (.tmp/bin and deploy/local live under it)")
	if err := fs.Parse(args); err != nil {
		return exitCode(2)
	}
	// signal.Notify installs the handlers even where the shell started us with SIGINT ignored
	// (a background job of a script), which run.sh could not undo: SIGINT stops us there too.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runFleet(ctx, *root)
}

// withPostgres runs a throwaway cluster in dir (emptied first) around a command.
func withPostgres(args []string) error {
	fs := flag.NewFlagSet("pgfleet-run postgres", flag.ContinueOnError)
	dir := fs.String("dir", "", "the cluster's data directory, emptied first (required)")
	port := fs.Int("port", 0, "its port (0: a free one)")
	if err := fs.Parse(args); err != nil || *dir == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: pgfleet-run postgres -dir DIR [-port N] -- COMMAND [ARG...]")
		return exitCode(2)
	}
	// The command gets the signals: a Ctrl-C ends it, and then the cluster.
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	if err := os.RemoveAll(*dir); err != nil {
		return err
	}
	ctx := context.Background()
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: *dir, Port: *port, Throwaway: true})
	if err != nil {
		return err
	}
	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "PGFLEET_TEST_DATABASE_URL="+srv.URL("postgres"))
	runErr := cmd.Run()
	if err := srv.Stop(); err != nil {
		return err
	}
	var exit *exec.ExitError
	if errors.As(runErr, &exit) {
		return exitCode(max(1, exit.ExitCode()))
	}
	return runErr
}

// stopPostgres stops the server running in dir (fast shutdown), if one does.
func stopPostgres(dir string) error {
	pid, _, ok := pgserver.Running(dir)
	if !ok {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if _, _, ok := pgserver.Running(dir); !ok {
			return nil
		}
	}
	return fmt.Errorf("PostgreSQL in %s (pid %d) still runs a minute after SIGINT", filepath.Clean(dir), pid)
}
