package main

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestPgCPU: a server's CPU counts its children that have exited (a backend that served a
// call and left) as well as the live ones: here the test process plays the postmaster and a
// shell it has waited for the backend.
func TestPgCPU(t *testing.T) {
	t.Parallel()
	before := pgCPU(os.Getpid())
	cmd := exec.CommandContext(t.Context(), "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run a busy child: %v", err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	got := pgCPU(os.Getpid()) - before
	// /proc counts in ticks of 10 ms; rusage is finer.
	if got < child-20*time.Millisecond {
		t.Errorf("pgCPU grew by %v over a child that used %v, want at least that", got, child)
	}
}

func TestRoutingString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		r    routing
		want string
	}{
		{name: "none", want: "no read routed (pgfleet_db_reads_total)"},
		{name: "all_on_the_standby", r: routing{replica: 40}, want: "40 on the standby (100.0%), per pgfleet_db_reads_total"},
		{name: "some_not_replayed", r: routing{replica: 990, notReplayed: 10},
			want: "990 on the standby (99.0%), 10 on the primary (1.0%, not replayed within REPLICA_WAIT), per pgfleet_db_reads_total"},
		{name: "standby_down", r: routing{noReplica: 5, lagging: 5},
			want: "0 on the standby (0.0%), 5 on the primary (50.0%, standby beyond MAX_REPLICA_LAG), 5 on the primary (50.0%, standby not usable), per pgfleet_db_reads_total"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.r.String(); got != tt.want {
				t.Errorf("routing%+v.String() = %q, want %q", tt.r, got, tt.want)
			}
		})
	}
}
