package main

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestCheckReadReplicas: a streaming standby within the lag bound is ok; one whose replay is
// paused behind a write warns once its lag passes the bound; a primary named as a replica
// and an unreachable one fail. Each replica of a list gets its line.
func TestCheckReadReplicas(t *testing.T) {
	t.Parallel()
	rc := pgtest.NewReplicatedCluster(t)
	primaryURL, standbyURL := rc.NewDBURLs(t)
	primary, err := pgxpool.New(t.Context(), primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)

	check := func(t *testing.T, readURL string, maxLag time.Duration) []Check {
		t.Helper()
		var got []Check
		checkReadReplicas(t.Context(), readURL, maxLag, primary, 30*time.Second, func(check string, st Status, format string, args ...any) {
			got = append(got, Check{Target: "stock", Check: check, Status: st, Detail: fmt.Sprintf(format, args...)})
		})
		return got
	}
	want := func(t *testing.T, got []Check, i int, st Status, detail string) {
		t.Helper()
		if i >= len(got) || got[i].Check != "read-replica" || got[i].Status != st || !regexp.MustCompile(detail).MatchString(got[i].Detail) {
			t.Errorf("check %d of %+v: want read-replica %s matching %q", i, got, st, detail)
		}
	}

	got := check(t, standbyURL, time.Hour)
	want(t, got, 0, OK, `^127\.0\.0\.1:[0-9]+, role \w+, in recovery, replay lag .*WAL bytes behind \(MAX_REPLICA_LAG 1h0m0s\)$`)

	got = check(t, standbyURL+","+primaryURL+",postgres://nobody@127.0.0.1:1/x?connect_timeout=5", time.Hour)
	if len(got) != 3 {
		t.Fatalf("3 replicas listed, %d checks: %+v", len(got), got)
	}
	want(t, got, 0, OK, "in recovery")
	want(t, got, 1, Fail, "not in recovery")
	want(t, got, 2, Fail, `^127\.0\.0\.1:1 as nobody: `)

	rc.PauseReplay(t)
	if _, err := primary.Exec(context.Background(), "CREATE TABLE doctor_lag_probe ()"); err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "the paused standby's lag passes 1ms", func() bool {
		got = check(t, standbyURL, time.Millisecond)
		return len(got) == 1 && got[0].Status == Warn
	})
	want(t, got, 0, Warn, `in recovery, replay lag .*, [1-9][0-9]* WAL bytes behind: beyond MAX_REPLICA_LAG 1ms, so the service reads on the primary`)
}
