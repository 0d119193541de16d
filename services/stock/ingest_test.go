package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestIngestLeader_takeover: two stock processes (the built binary) share a database and an
// INGEST_DIR. The leader is killed with SIGKILL in the middle of a scheduled files run of
// 400,000 bars; the other process takes the lead, requeues the run (attempt 2) and completes
// it: every bar lands, the files move to done/, and the tick has exactly one run.
func TestIngestLeader_takeover(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock"); err != nil {
		t.Fatal(err)
	}
	dbURL, dir := pgtest.NewDBURL(t), t.TempDir()
	env := []string{"DATABASE_URL=" + dbURL, "INGEST_DIR=" + dir, "INGEST_LEADER_POLL=200ms"}
	procs := []*apptest.Process{apptest.StartProcess(t, filepath.Join(bin, "stock"), env...)}
	procs = append(procs, apptest.StartProcess(t, filepath.Join(bin, "stock"), env...))
	clients := []stockv1.StockServiceClient{
		stockv1.NewStockServiceClient(apptest.Dial(t, procs[0].Addr, authtest.Admin(t))),
		stockv1.NewStockServiceClient(apptest.Dial(t, procs[1].Addr, authtest.Admin(t))),
	}
	ctx := t.Context()

	const nSymbols, nDays, nFiles = 100, 4000, 4 // 400,000 bars
	stocks := make([]*stockv1.Stock, nSymbols)
	for i := range stocks {
		stocks[i] = &stockv1.Stock{Symbol: fmt.Sprintf("T%03d", i), Name: "Test " + strconv.Itoa(i), Currency: "USD"}
	}
	if _, err := clients[0].UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatal(err)
	}
	day0 := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	for f := range nFiles {
		// Written as .tmp, then renamed: the producers' protocol.
		tmp := filepath.Join(dir, fmt.Sprintf("bars-%d.csv.tmp", f))
		out, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(out)
		fmt.Fprintln(w, "symbol,time,open,high,low,close,volume")
		for d := f * nDays / nFiles; d < (f+1)*nDays/nFiles; d++ {
			day := day0.AddDate(0, 0, d).Format(time.DateOnly)
			for s := range nSymbols {
				c := 100 + (d*7+s)%50
				fmt.Fprintf(w, "T%03d,%s,%d.5,%d.75,%d.25,%d.5,%d\n", s, day, c, c, c, c, 1000+d)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, strings.TrimSuffix(tmp, ".tmp")); err != nil {
			t.Fatal(err)
		}
	}

	// A job whose latest tick is past: the leader queues that one tick's run at once.
	if _, err := clients[1].CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{Job: &stockv1.IngestionJob{
		JobId: "takeover", Source: stockv1.IngestionSource_INGESTION_SOURCE_FILES, Schedule: "@every 1h"}}); err != nil {
		t.Fatal(err)
	}
	db := pgtest.Connect(t, dbURL)
	if _, err := db.Exec(ctx, `UPDATE stock.ingestion_jobs SET create_time = now() - interval '150 minutes'`); err != nil {
		t.Fatal(err)
	}

	run := func() *stockv1.IngestionRun {
		t.Helper()
		resp, err := clients[1].ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{JobId: "takeover"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetRuns()) != 1 {
			return nil
		}
		return resp.GetRuns()[0]
	}
	var first *stockv1.IngestionRun
	pgtest.Poll(t, "the scheduled run to have written bars", func() bool {
		first = run()
		return first != nil && first.GetState() == stockv1.IngestionRunState_INGESTION_RUN_STATE_RUNNING && first.GetRowsIn() > 0
	})
	leader := -1
	for i, p := range procs {
		if strings.HasSuffix(first.GetWorker(), "/"+strconv.Itoa(p.Pid())) {
			leader = i
		}
	}
	if leader < 0 {
		t.Fatalf("run's worker %q is neither process (%d, %d)", first.GetWorker(), procs[0].Pid(), procs[1].Pid())
	}
	if first.GetTrigger() != stockv1.IngestionTrigger_INGESTION_TRIGGER_SCHEDULE || first.GetAttempt() != 1 {
		t.Errorf("first attempt: %v", first)
	}
	if err := syscall.Kill(procs[leader].Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "the leader to exit", procs[leader].Exited)
	t.Logf("killed the leader (%s) after %d of %d bars", first.GetWorker(), first.GetRowsIn(), nSymbols*nDays)

	var done *stockv1.IngestionRun
	pgtest.Poll(t, "the survivor to complete the run", func() bool {
		done = run()
		return done != nil && done.GetEndTime() != nil
	})
	survivor := procs[1-leader]
	if done.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED || done.GetAttempt() != 2 ||
		done.GetRunId() != first.GetRunId() || !strings.HasSuffix(done.GetWorker(), "/"+strconv.Itoa(survivor.Pid())) {
		t.Errorf("run after the takeover: %v", done)
	}
	if secs := done.GetEndTime().AsTime().Sub(done.GetStartTime().AsTime()).Seconds(); secs > 0 {
		t.Logf("attempt 2: %d bars in %.1fs, %.0f bars/s", nSymbols*nDays, secs, float64(nSymbols*nDays)/secs)
	}
	var bars, ticks, dupTicks int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM stock.prices`).Scan(&bars); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*), count(*) - count(DISTINCT scheduled_time) FROM stock.ingestion_runs
		WHERE job_id = 'takeover' AND trigger = 'schedule'`).Scan(&ticks, &dupTicks); err != nil {
		t.Fatal(err)
	}
	if bars != nSymbols*nDays || ticks != 1 || dupTicks != 0 || done.GetRowsRejected() != 0 {
		t.Errorf("%d bars stored (want %d), %d scheduled runs (want 1), %d repeated ticks, %d rejected",
			bars, nSymbols*nDays, ticks, dupTicks, done.GetRowsRejected())
	}
	for f := range nFiles {
		if _, err := os.Stat(filepath.Join(dir, "done", fmt.Sprintf("bars-%d.csv", f))); err != nil {
			t.Errorf("bars-%d.csv not moved to done/: %v", f, err)
		}
	}
}
