package api_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
	"github.com/pgfleet/pgfleet/services/stock/internal/ingest"
	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/files"
	"github.com/pgfleet/pgfleet/services/stock/internal/source/polygon"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
	"github.com/pgfleet/pgfleet/services/stock/providerstub"
)

// newPipelineEnv is newEnv with the ingestion pipeline's leader running in the test's process
// over sources (none: no leader, so runs stay queued), polling fast and retrying after
// milliseconds.
func newPipelineEnv(t testing.TB, sources ingest.Sources) env {
	t.Helper()
	var own struct {
		Limits  server.Limits
		Streams api.StreamLimits
	}
	apptest.Load(t, nil, &own)
	available := map[string]bool{"polygon": true} // without sources: polygon jobs, never run
	if sources != nil {
		available = map[string]bool{}
		for name := range sources {
			available[name] = true
		}
	}
	opts := app.Options{Name: "stock", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes, Outbox: true, Limits: &own.Limits}
	var leaderDone chan struct{}
	leaderCtx, stopLeader := context.WithCancel(t.Context())
	svc, conn := apptest.StartServer(t, opts, nil, func(svc *app.Service) []string {
		srv := api.New(api.Deps{Base: svc.Base, Streams: own.Streams, IngestSources: available})
		stockv1.RegisterStockServiceServer(svc.Server, srv)
		if sources != nil {
			leader := ingest.New(ingest.Deps{
				Config: ingest.Config{Workers: 2, LeaderPoll: 100 * time.Millisecond, MaxRejects: 10000},
				Pool:   svc.Pool, Sink: srv, Sources: sources, Registry: svc.Server.Registry(),
				Poll: 50 * time.Millisecond, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
				Log: slog.New(slog.DiscardHandler),
			})
			leaderDone = make(chan struct{})
			go func() {
				defer close(leaderDone)
				_ = leader.Run(leaderCtx)
			}()
		}
		return []string{stockv1.StockService_ServiceDesc.ServiceName}
	})
	stop := func() {
		stopLeader()
		if leaderDone != nil {
			<-leaderDone
		}
	}
	t.Cleanup(stop) // before the server and pool close: cleanups run last first
	return env{client: stockv1.NewStockServiceClient(conn), user: stockv1.NewStockServiceClient(apptest.Dial(t, svc.Server.GRPCAddr())),
		pool: svc.Pool, addr: svc.Server.GRPCAddr(), stopLeader: stop}
}

// createJob creates a job through the API.
func (e env) createJob(t testing.TB, job *stockv1.IngestionJob) *stockv1.IngestionJob {
	t.Helper()
	resp, err := e.client.CreateIngestionJob(t.Context(), &stockv1.CreateIngestionJobRequest{Job: job})
	if err != nil {
		t.Fatalf("CreateIngestionJob: %v", err)
	}
	return resp.GetJob()
}

// runJob queues a manual run of a job and waits until it has finished.
func (e env) runJob(t testing.TB, jobID string) *stockv1.IngestionRun {
	t.Helper()
	resp, err := e.client.RunIngestionJob(t.Context(), &stockv1.RunIngestionJobRequest{JobId: jobID})
	if err != nil {
		t.Fatalf("RunIngestionJob: %v", err)
	}
	return e.awaitRun(t, resp.GetRun().GetRunId(), func(r *stockv1.IngestionRun) bool { return r.GetEndTime() != nil })
}

// awaitRun polls a run until done holds, and returns it.
func (e env) awaitRun(t testing.TB, runID int64, done func(*stockv1.IngestionRun) bool) *stockv1.IngestionRun {
	t.Helper()
	var run *stockv1.IngestionRun
	pgtest.Poll(t, fmt.Sprintf("run %d", runID), func() bool {
		resp, err := e.client.GetIngestionRun(t.Context(), &stockv1.GetIngestionRunRequest{RunId: runID})
		if err != nil {
			t.Fatalf("GetIngestionRun: %v", err)
		}
		run = resp.GetRun()
		return done(run)
	})
	return run
}

func (e env) rejects(t testing.TB, runID int64) []*stockv1.IngestionReject {
	t.Helper()
	var all []*stockv1.IngestionReject
	token := ""
	for {
		resp, err := e.client.ListIngestionRejects(t.Context(), &stockv1.ListIngestionRejectsRequest{RunId: runID, PageSize: 3, PageToken: token})
		if err != nil {
			t.Fatalf("ListIngestionRejects: %v", err)
		}
		all = append(all, resp.GetRejects()...)
		if token = resp.GetNextPageToken(); token == "" {
			return all
		}
	}
}

func filesSource(dir string) ingest.Sources {
	return ingest.Sources{"files": func() (source.Source, error) { return files.New(dir), nil }}
}

// TestIngestion_filesRun: a files drop ingested end to end. Good rows land in prices, each
// bad one is in the run's quarantine with its reason, the run's counts add up, and the files
// move to done/, so the next run reads nothing.
func TestIngestion_filesRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newPipelineEnv(t, filesSource(dir))
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"}, &stockv1.Stock{Symbol: "BBB", Name: "B", Currency: "USD"})
	csv := strings.Join([]string{
		"symbol,time,open,high,low,close,volume",
		"AAA,2026-11-02,10,11,9,10.5,100",                           // 2: good
		"AAA,2026-11-03T00:00:00Z,10.5,12,10,11,200",                // 3: good
		"AAA,2026-13-01,10,11,9,10,1",                               // 4: bad time
		"AAA,2026-11-04,10,9,11,10,1",                               // 5: high < low
		"AA\x00A,2026-11-04,10,11,9,10,1",                           // 6: NUL byte
		"ZZZ,2026-11-04,10,11,9,10,1",                               // 7: unknown symbol
		"BBB,2026-11-04,10,11,9,10,-5",                              // 8: negative volume
		"BBB,2026-11-05,1" + strings.Repeat("0", 30) + ",11,9,10,1", // 9: a huge number
		"BBB,2026-11-06,20,21,19,20.25,300",                         // 10: good
		"BBB,2026-11-07,20,21",                                      // 11: too few fields
	}, "\n") + "\n"
	ndjson := `{"symbol":"BBB","time":"2026-11-09","open":"20","high":21,"low":19,"close":"20.5","volume":400}
not json
{"symbol":"AAA","time":"2026-11-09","open":1,"high":1,"low":1,"close":1,"volume":99999999999999999999}
`
	must(t, os.WriteFile(filepath.Join(dir, "a.csv"), []byte(csv), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "b.ndjson"), []byte(ndjson), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "c.csv.tmp"), []byte("being written"), 0o644))
	must(t, os.Symlink(filepath.Join(dir, "a.csv"), filepath.Join(dir, "link.csv")))

	e.createJob(t, &stockv1.IngestionJob{JobId: "drop", Source: stockv1.IngestionSource_INGESTION_SOURCE_FILES, Schedule: "@daily"})
	run := e.runJob(t, "drop")
	if run.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED || run.GetError() != "" {
		t.Fatalf("run: %v %q", run.GetState(), run.GetError())
	}
	if run.GetRowsIn() != 4 || run.GetRowsRejected() != 10 {
		t.Errorf("rows_in %d, rows_rejected %d; want 4 and 10", run.GetRowsIn(), run.GetRowsRejected())
	}
	if run.GetTrigger() != stockv1.IngestionTrigger_INGESTION_TRIGGER_MANUAL || run.GetAttempt() != 1 || run.GetWorker() == "" {
		t.Errorf("run: %v", run)
	}
	rejects := e.rejects(t, run.GetRunId())
	want := map[string]string{ // ref: a piece of the reason
		"a.csv:4": "time", "a.csv:5": "must not exceed high", "a.csv:6": "symbol", "a.csv:7": "unknown stock",
		"a.csv:8": "volume", "a.csv:9": "decimal", "a.csv:11": "fields", "b.ndjson:2": "not a JSON bar",
		"b.ndjson:3": "volume", "link.csv": "not a regular file",
	}
	got := map[string]string{}
	for i, r := range rejects {
		got[r.GetRef()] = r.GetReason()
		if r.GetSeq() != int64(i+1) || r.GetRunId() != run.GetRunId() {
			t.Errorf("reject %d: seq %d run %d", i, r.GetSeq(), r.GetRunId())
		}
		if strings.HasPrefix(r.GetReason(), "invalid request") || strings.Contains(r.GetReason(), "prices[") {
			t.Errorf("reject %s: reason %q, want the rule alone", r.GetRef(), r.GetReason())
		}
		if strings.ContainsRune(r.GetRaw(), 0) || len(r.GetRaw()) > 256 {
			t.Errorf("reject %s: raw %q", r.GetRef(), r.GetRaw())
		}
	}
	for ref, part := range want {
		if !strings.Contains(got[ref], part) {
			t.Errorf("reject %s: reason %q, want it to say %q", ref, got[ref], part)
		}
	}
	if len(rejects) != int(run.GetRowsRejected()) {
		t.Errorf("%d rejects listed, rows_rejected %d: %v", len(rejects), run.GetRowsRejected(), rejects)
	}
	aaa := allPrices(t, e, "AAA")
	bbb := allPrices(t, e, "BBB")
	if len(aaa) != 2 || len(bbb) != 2 || bbb[1].GetClose() != "20.5" {
		t.Errorf("prices: AAA %v, BBB %v", aaa, bbb)
	}
	for _, name := range []string{"a.csv", "b.ndjson"} {
		if _, err := os.Stat(filepath.Join(dir, files.DoneDir, name)); err != nil {
			t.Errorf("%s not in done/: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "c.csv.tmp")); err != nil {
		t.Errorf("the .tmp file moved: %v", err)
	}
	// The next run finds only the symbolic link, refused again.
	again := e.runJob(t, "drop")
	if again.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED || again.GetRowsIn() != 0 || again.GetRowsRejected() != 1 {
		t.Errorf("second run: %v", again)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func allPrices(t testing.TB, e env, symbol string) []*stockv1.Price {
	t.Helper()
	resp, err := e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: symbol, PageSize: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetPrices()
}

// flaky is a test Source (not a database stand-in: the pipeline writes to PostgreSQL as
// ever) whose Fetch does what its function says, counting calls.
type flaky struct {
	calls *atomic.Int32
	fetch func(ctx context.Context, call int32, emit func([]source.Bar, []source.Reject) error) error
}

func (f flaky) Name() string { return "polygon" }
func (f flaky) Fetch(ctx context.Context, _ source.Request, emit func([]source.Bar, []source.Reject) error) error {
	return f.fetch(ctx, f.calls.Add(1), emit)
}

func flakySources(fetch func(ctx context.Context, call int32, emit func([]source.Bar, []source.Reject) error) error) (ingest.Sources, *atomic.Int32) {
	var calls atomic.Int32
	return ingest.Sources{"polygon": func() (source.Source, error) { return flaky{calls: &calls, fetch: fetch}, nil }}, &calls
}

var barAt = func(day int, close string) source.Bar {
	return source.Bar{Symbol: "AAA", Time: day0.AddDate(0, 0, day), Open: close, High: close, Low: close, Close: close, Volume: 1,
		Ref: fmt.Sprintf("AAA day %d", day)}
}

// TestIngestion_retries: a source that fails transiently is retried after backoff until it
// succeeds or the job's attempts run out; a permanent error or a panic fails the run at once.
func TestIngestion_retries(t *testing.T) {
	t.Parallel()
	transient := &source.TransientError{Err: errors.New("HTTP 503"), RetryAfter: 20 * time.Millisecond}
	cases := []struct {
		name        string
		attempts    int32
		fetch       func(ctx context.Context, call int32, emit func([]source.Bar, []source.Reject) error) error
		state       stockv1.IngestionRunState
		attempt     int32
		rowsIn      int64
		errContains string
	}{
		{"transient twice, then success", 3, func(_ context.Context, call int32, emit func([]source.Bar, []source.Reject) error) error {
			if err := emit([]source.Bar{barAt(int(call), "10")}, nil); err != nil {
				return err
			}
			if call < 3 {
				return transient
			}
			return nil
		}, stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED, 3, 3, ""},
		{"transient always", 2, func(context.Context, int32, func([]source.Bar, []source.Reject) error) error { return transient },
			stockv1.IngestionRunState_INGESTION_RUN_STATE_FAILED, 2, 0, "HTTP 503"},
		{"permanent", 3, func(context.Context, int32, func([]source.Bar, []source.Reject) error) error {
			return errors.New("HTTP 401: bad key")
		},
			stockv1.IngestionRunState_INGESTION_RUN_STATE_FAILED, 1, 0, "HTTP 401"},
		{"panic", 3, func(context.Context, int32, func([]source.Bar, []source.Reject) error) error { panic("connector bug") },
			stockv1.IngestionRunState_INGESTION_RUN_STATE_FAILED, 1, 0, "panic in source polygon: connector bug"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			sources, calls := flakySources(c.fetch)
			e := newPipelineEnv(t, sources)
			e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"})
			e.createJob(t, &stockv1.IngestionJob{JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily",
				Symbols: []string{"AAA"}, MaxAttempts: c.attempts})
			run := e.runJob(t, "j")
			if run.GetState() != c.state || run.GetAttempt() != c.attempt || run.GetRowsIn() != c.rowsIn ||
				!strings.Contains(run.GetError(), c.errContains) {
				t.Errorf("run: state %v attempt %d rows_in %d error %q; want %v, %d, %d, %q", run.GetState(), run.GetAttempt(),
					run.GetRowsIn(), run.GetError(), c.state, c.attempt, c.rowsIn, c.errContains)
			}
			if calls.Load() != c.attempt {
				t.Errorf("%d fetches, want %d", calls.Load(), c.attempt)
			}
		})
	}
}

// TestIngestion_cancel: a queued run is cancelled at once, a running one stops within the
// leader's poll, and a finished one cannot be cancelled.
func TestIngestion_cancel(t *testing.T) {
	t.Parallel()
	t.Run("queued", func(t *testing.T) {
		t.Parallel()
		e := newPipelineEnv(t, nil) // no leader: the run stays queued
		e.createJob(t, &stockv1.IngestionJob{JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily"})
		resp, err := e.client.RunIngestionJob(t.Context(), &stockv1.RunIngestionJobRequest{JobId: "j"})
		must(t, err)
		if resp.GetRun().GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_QUEUED {
			t.Fatalf("run: %v", resp.GetRun())
		}
		c, err := e.client.CancelIngestionRun(t.Context(), &stockv1.CancelIngestionRunRequest{RunId: resp.GetRun().GetRunId()})
		must(t, err)
		if c.GetRun().GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_CANCELLED || c.GetRun().GetEndTime() == nil {
			t.Errorf("cancelled: %v", c.GetRun())
		}
		_, err = e.client.CancelIngestionRun(t.Context(), &stockv1.CancelIngestionRunRequest{RunId: resp.GetRun().GetRunId()})
		apptest.WantReason(t, err, apierr.IngestionRunFinished, map[string]string{
			"run_id": fmt.Sprint(resp.GetRun().GetRunId()), "state": "INGESTION_RUN_STATE_CANCELLED"})
	})
	t.Run("running", func(t *testing.T) {
		t.Parallel()
		sources, _ := flakySources(func(ctx context.Context, _ int32, emit func([]source.Bar, []source.Reject) error) error {
			if err := emit([]source.Bar{barAt(0, "10")}, nil); err != nil {
				return err
			}
			<-ctx.Done() // a slow provider: only the cancel ends it
			return ctx.Err()
		})
		e := newPipelineEnv(t, sources)
		e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"})
		e.createJob(t, &stockv1.IngestionJob{JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily"})
		resp, err := e.client.RunIngestionJob(t.Context(), &stockv1.RunIngestionJobRequest{JobId: "j"})
		must(t, err)
		id := resp.GetRun().GetRunId()
		e.awaitRun(t, id, func(r *stockv1.IngestionRun) bool { return r.GetRowsIn() == 1 })
		c, err := e.client.CancelIngestionRun(t.Context(), &stockv1.CancelIngestionRunRequest{RunId: id})
		must(t, err)
		if c.GetRun().GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_RUNNING || !c.GetRun().GetCancelRequested() {
			t.Errorf("cancel answered %v", c.GetRun())
		}
		run := e.awaitRun(t, id, func(r *stockv1.IngestionRun) bool { return r.GetEndTime() != nil })
		if run.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_CANCELLED || run.GetRowsIn() != 1 {
			t.Errorf("run: %v", run)
		}
	})
}

// TestIngestion_jobs: create, read, list, update, delete; a deleted job's runs stay.
func TestIngestion_jobs(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t, nil)
	ctx := t.Context()
	job := e.createJob(t, &stockv1.IngestionJob{JobId: "daily-aaa", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON,
		Schedule: "30 22 * * 1-5", Symbols: []string{"AAA", "BBB"}})
	if job.GetLookbackDays() != 5 || job.GetMaxAttempts() != 3 || job.GetNextRunTime() == nil || job.GetCreateTime() == nil {
		t.Errorf("created: %v", job)
	}
	if next := job.GetNextRunTime().AsTime(); next.Hour() != 22 || next.Minute() != 30 || !next.After(time.Now()) {
		t.Errorf("next_run_time %v", next)
	}
	_, err := e.client.CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{Job: job})
	apptest.WantReason(t, err, apierr.IngestionJobExists, map[string]string{"job_id": "daily-aaa"})
	e.createJob(t, &stockv1.IngestionJob{JobId: "b", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@every 1h"})

	up, err := e.client.UpdateIngestionJob(ctx, &stockv1.UpdateIngestionJobRequest{
		Job:        &stockv1.IngestionJob{JobId: "daily-aaa", Paused: true, LookbackDays: 30, Schedule: "ignored"},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"paused", "lookback_days"}}})
	must(t, err)
	if !up.GetJob().GetPaused() || up.GetJob().GetLookbackDays() != 30 || up.GetJob().GetSchedule() != "30 22 * * 1-5" || up.GetJob().GetNextRunTime() != nil {
		t.Errorf("updated: %v", up.GetJob())
	}
	var ids []string
	token := ""
	for {
		resp, err := e.client.ListIngestionJobs(ctx, &stockv1.ListIngestionJobsRequest{PageSize: 1, PageToken: token})
		must(t, err)
		for _, j := range resp.GetJobs() {
			ids = append(ids, j.GetJobId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if strings.Join(ids, ",") != "b,daily-aaa" {
		t.Errorf("jobs listed: %v", ids)
	}

	run, err := e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: "daily-aaa", RequestId: "once"})
	must(t, err)
	again, err := e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: "daily-aaa", RequestId: "once"})
	must(t, err)
	if again.GetRun().GetRunId() != run.GetRun().GetRunId() {
		t.Errorf("a repeated request_id queued run %d, want the first's %d", again.GetRun().GetRunId(), run.GetRun().GetRunId())
	}
	_, err = e.client.DeleteIngestionJob(ctx, &stockv1.DeleteIngestionJobRequest{JobId: "daily-aaa"})
	must(t, err)
	_, err = e.client.GetIngestionJob(ctx, &stockv1.GetIngestionJobRequest{JobId: "daily-aaa"})
	apptest.WantReason(t, err, apierr.IngestionJobNotFound, map[string]string{"job_id": "daily-aaa"})
	_, err = e.client.DeleteIngestionJob(ctx, &stockv1.DeleteIngestionJobRequest{JobId: "daily-aaa"})
	apptest.WantReason(t, err, apierr.IngestionJobNotFound, map[string]string{"job_id": "daily-aaa"})
	runs, err := e.client.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{JobId: "daily-aaa"})
	must(t, err)
	if len(runs.GetRuns()) != 1 || runs.GetRuns()[0].GetRunId() != run.GetRun().GetRunId() ||
		runs.GetRuns()[0].GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_CANCELLED {
		t.Errorf("the deleted job's runs: %v", runs.GetRuns())
	}
}

// TestIngestion_runRequestIDConcurrent: a RunIngestionJob whose request_id another call is
// inserting at the same moment waits for it and returns its run. Before the fix it answered
// NOT_FOUND: its statement's snapshot predated the other's commit, so after ON CONFLICT DO
// NOTHING it could see neither its own insert nor the other's.
func TestIngestion_runRequestIDConcurrent(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t, nil)
	ctx := t.Context()
	e.createJob(t, &stockv1.IngestionJob{JobId: "race", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON,
		Schedule: "@daily", Symbols: []string{"AAA"}})
	// The other call, held in its transaction after its insert.
	tx, err := e.pool.Begin(ctx)
	must(t, err)
	defer tx.Rollback(context.Background()) //nolint:errcheck // committed below
	var first int64
	must(t, tx.QueryRow(ctx, `INSERT INTO stock.ingestion_runs (job_id, trigger, scheduled_time, request_id)
		VALUES ('race', 'manual', clock_timestamp(), 'same') RETURNING run_id`).Scan(&first))
	type result struct {
		resp *stockv1.RunIngestionJobResponse
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: "race", RequestId: "same"})
		done <- result{resp, err}
	}()
	pgtest.Poll(t, "RunIngestionJob waiting on the uncommitted run's key", func() bool {
		var waiting bool
		must(t, e.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO stock.ingestion_runs%')`).Scan(&waiting))
		return waiting
	})
	must(t, tx.Commit(ctx))
	r := <-done
	if r.err != nil {
		t.Fatalf("RunIngestionJob racing a call with the same request_id: %v", r.err)
	}
	if got := r.resp.GetRun().GetRunId(); got != first {
		t.Errorf("run %d, want the other call's %d", got, first)
	}
}

// TestIngestion_listRuns: newest first, by job, filtered, paged.
func TestIngestion_listRuns(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t, nil)
	ctx := t.Context()
	for _, id := range []string{"a", "b"} {
		e.createJob(t, &stockv1.IngestionJob{JobId: id, Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily"})
	}
	var want []int64
	for i := range 5 {
		r, err := e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: []string{"a", "b"}[i%2]})
		must(t, err)
		want = append([]int64{r.GetRun().GetRunId()}, want...)
	}
	_, err := e.client.CancelIngestionRun(ctx, &stockv1.CancelIngestionRunRequest{RunId: want[0]})
	must(t, err)
	list := func(req *stockv1.ListIngestionRunsRequest) []int64 {
		t.Helper()
		var ids []int64
		for {
			resp, err := e.client.ListIngestionRuns(ctx, req)
			must(t, err)
			for _, r := range resp.GetRuns() {
				ids = append(ids, r.GetRunId())
			}
			if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
				return ids
			}
		}
	}
	if got := list(&stockv1.ListIngestionRunsRequest{PageSize: 2}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("all runs %v, want %v", got, want)
	}
	if got := list(&stockv1.ListIngestionRunsRequest{JobId: "a", PageSize: 1}); fmt.Sprint(got) != fmt.Sprint([]int64{want[0], want[2], want[4]}) {
		t.Errorf("a's runs %v", got)
	}
	if got := list(&stockv1.ListIngestionRunsRequest{Filter: `state = INGESTION_RUN_STATE_QUEUED AND trigger = INGESTION_TRIGGER_MANUAL`}); fmt.Sprint(got) != fmt.Sprint(want[1:]) {
		t.Errorf("queued runs %v", got)
	}
	if got := list(&stockv1.ListIngestionRunsRequest{Filter: `job_id = "b" AND state = INGESTION_RUN_STATE_CANCELLED`}); len(got) != 0 {
		t.Errorf("b's cancelled runs %v", got)
	}
}

// TestIngestion_badInput: every new RPC refuses what it must, with its reason.
func TestIngestion_badInput(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t, nil)
	ctx := t.Context()
	good := func() *stockv1.IngestionJob {
		return &stockv1.IngestionJob{JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily"}
	}
	with := func(f func(j *stockv1.IngestionJob)) *stockv1.IngestionJob {
		j := good()
		f(j)
		return j
	}
	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }
	invalid := []struct {
		name  string
		call  func() error
		field string
	}{
		{"create without job", func() error {
			_, err := e.client.CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{})
			return err
		}, "job"},
		{"job_id upper case", createCall(e, with(func(j *stockv1.IngestionJob) { j.JobId = "Daily" })), "job.job_id"},
		{"job_id too long", createCall(e, with(func(j *stockv1.IngestionJob) { j.JobId = "a" + strings.Repeat("b", 63) })), "job.job_id"},
		{"job_id with a slash", createCall(e, with(func(j *stockv1.IngestionJob) { j.JobId = "a/b" })), "job.job_id"},
		{"no source", createCall(e, with(func(j *stockv1.IngestionJob) { j.Source = 0 })), "job.source"},
		{"unknown source", createCall(e, with(func(j *stockv1.IngestionJob) { j.Source = 9 })), "job.source"},
		{"no schedule", createCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "" })), "job.schedule"},
		{"bad cron", createCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "61 * * * *" })), "job.schedule"},
		{"six fields", createCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "0 0 0 * * *" })), "job.schedule"},
		{"every second", createCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "@every 1s" })), "job.schedule"},
		{"a time zone", createCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "CRON_TZ=Europe/Paris 0 0 * * *" })), "job.schedule"},
		{"bad symbol", createCall(e, with(func(j *stockv1.IngestionJob) { j.Symbols = []string{"aapl"} })), "job.symbols[0]"},
		{"symbol twice", createCall(e, with(func(j *stockv1.IngestionJob) { j.Symbols = []string{"AAA", "AAA"} })), "job.symbols[1]"},
		{"lookback negative", createCall(e, with(func(j *stockv1.IngestionJob) { j.LookbackDays = -1 })), "job.lookback_days"},
		{"lookback too long", createCall(e, with(func(j *stockv1.IngestionJob) { j.LookbackDays = 3651 })), "job.lookback_days"},
		{"attempts over 10", createCall(e, with(func(j *stockv1.IngestionJob) { j.MaxAttempts = 11 })), "job.max_attempts"},
		{"update without mask", updateCall(e, good(), nil), "update_mask"},
		{"update of source", updateCall(e, good(), mask("source")), "update_mask"},
		{"update of a bad schedule", updateCall(e, with(func(j *stockv1.IngestionJob) { j.Schedule = "nope" }), mask("schedule")), "job.schedule"},
		{"update without job_id", updateCall(e, with(func(j *stockv1.IngestionJob) { j.JobId = "" }), mask("paused")), "job.job_id"},
		{"get bad id", func() error {
			_, err := e.client.GetIngestionJob(ctx, &stockv1.GetIngestionJobRequest{JobId: ""})
			return err
		}, "job_id"},
		{"delete bad id", func() error {
			_, err := e.client.DeleteIngestionJob(ctx, &stockv1.DeleteIngestionJobRequest{JobId: "X"})
			return err
		}, "job_id"},
		{"run bad id", func() error {
			_, err := e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: "-a"})
			return err
		}, "job_id"},
		{"list runs bad job", func() error {
			_, err := e.client.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{JobId: "A"})
			return err
		}, "job_id"},
		{"list runs bad filter", func() error {
			_, err := e.client.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{Filter: "rows_in > 3"})
			return err
		}, "filter"},
		{"list runs bad token", func() error {
			_, err := e.client.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{PageToken: "garbage"})
			return err
		}, "page_token"},
		{"get run 0", func() error { _, err := e.client.GetIngestionRun(ctx, &stockv1.GetIngestionRunRequest{}); return err }, "run_id"},
		{"cancel run -1", func() error {
			_, err := e.client.CancelIngestionRun(ctx, &stockv1.CancelIngestionRunRequest{RunId: -1})
			return err
		}, "run_id"},
		{"rejects of run 0", func() error {
			_, err := e.client.ListIngestionRejects(ctx, &stockv1.ListIngestionRejectsRequest{})
			return err
		}, "run_id"},
	}
	for _, c := range invalid {
		err := c.call()
		apptest.WantCode(t, err, codes.InvalidArgument)
		if err != nil && !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v, want it to name %s", c.name, err, c.field)
		}
	}
	// Not found, by kind.
	_, err := e.client.GetIngestionRun(ctx, &stockv1.GetIngestionRunRequest{RunId: 404})
	apptest.WantReason(t, err, apierr.IngestionRunNotFound, map[string]string{"run_id": "404"})
	_, err = e.client.CancelIngestionRun(ctx, &stockv1.CancelIngestionRunRequest{RunId: 404})
	apptest.WantReason(t, err, apierr.IngestionRunNotFound, map[string]string{"run_id": "404"})
	_, err = e.client.ListIngestionRejects(ctx, &stockv1.ListIngestionRejectsRequest{RunId: 404})
	apptest.WantReason(t, err, apierr.IngestionRunNotFound, map[string]string{"run_id": "404"})
	_, err = e.client.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: "none"})
	apptest.WantReason(t, err, apierr.IngestionJobNotFound, map[string]string{"job_id": "none"})
	_, err = e.client.UpdateIngestionJob(ctx, &stockv1.UpdateIngestionJobRequest{Job: good(), UpdateMask: mask("paused")})
	apptest.WantReason(t, err, apierr.IngestionJobNotFound, map[string]string{"job_id": "j"})
	// A files job where the deployment has no INGEST_DIR (this env configured no source).
	_, err = e.client.CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{Job: with(func(j *stockv1.IngestionJob) {
		j.Source = stockv1.IngestionSource_INGESTION_SOURCE_FILES
	})})
	apptest.WantReason(t, err, apierr.IngestionSourceUnavailable, map[string]string{"source": "files"})
}

func createCall(e env, j *stockv1.IngestionJob) func() error {
	return func() error {
		_, err := e.client.CreateIngestionJob(context.Background(), &stockv1.CreateIngestionJobRequest{Job: j})
		return err
	}
}

func updateCall(e env, j *stockv1.IngestionJob, m *fieldmaskpb.FieldMask) func() error {
	return func() error {
		_, err := e.client.UpdateIngestionJob(context.Background(), &stockv1.UpdateIngestionJobRequest{Job: j, UpdateMask: m})
		return err
	}
}

// TestIngestion_filesLarge: a files drop of 100,000 bars (100 symbols over 1,000 days), in
// symbol order and in day order, lands whole; the log gives each run's bars per second.
func TestIngestion_filesLarge(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	e := newPipelineEnv(t, filesSource(dir))
	const nSymbols, nDays = 100, 1000
	stocks := make([]*stockv1.Stock, nSymbols)
	for i := range stocks {
		stocks[i] = &stockv1.Stock{Symbol: fmt.Sprintf("L%03d", i), Name: "L", Currency: "USD"}
	}
	e.upsert(t, stocks...)
	e.createJob(t, &stockv1.IngestionJob{JobId: "large", Source: stockv1.IngestionSource_INGESTION_SOURCE_FILES, Schedule: "@daily"})
	day0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, order := range []string{"by-symbol", "by-day"} {
		var b strings.Builder
		b.WriteString("symbol,time,open,high,low,close,volume\n")
		line := func(s, d int) {
			c := 100 + (s+d)%50
			fmt.Fprintf(&b, "L%03d,%s,%d.5,%d.75,%d.25,%d.5,%d\n", s, day0.AddDate(0, 0, d).Format(time.DateOnly), c, c, c, c, d)
		}
		for i := range nSymbols * nDays {
			if order == "by-symbol" {
				line(i/nDays, i%nDays)
			} else {
				line(i%nSymbols, i/nSymbols)
			}
		}
		must(t, os.WriteFile(filepath.Join(dir, order+".csv"), []byte(b.String()), 0o644))
		run := e.runJob(t, "large")
		if run.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED || run.GetRowsIn() != nSymbols*nDays || run.GetRowsRejected() != 0 {
			t.Fatalf("%s: %v", order, run)
		}
		secs := run.GetEndTime().AsTime().Sub(run.GetStartTime().AsTime()).Seconds()
		t.Logf("%s: %d bars in %.2fs, %.0f bars/s", order, run.GetRowsIn(), secs, float64(run.GetRowsIn())/secs)
	}
	var n int
	must(t, e.pool.QueryRow(t.Context(), `SELECT count(*) FROM stock.prices`).Scan(&n))
	if n != nSymbols*nDays {
		t.Errorf("%d bars stored, want %d", n, nSymbols*nDays)
	}
}

// TestIngestion_shutdown: a leader that shuts down mid-run puts the run back in the queue,
// same attempt, for the next leader.
func TestIngestion_shutdown(t *testing.T) {
	t.Parallel()
	sources, _ := flakySources(func(ctx context.Context, _ int32, emit func([]source.Bar, []source.Reject) error) error {
		if err := emit([]source.Bar{barAt(0, "10")}, nil); err != nil {
			return err
		}
		<-ctx.Done()
		return ctx.Err()
	})
	e := newPipelineEnv(t, sources)
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"})
	e.createJob(t, &stockv1.IngestionJob{JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily"})
	resp, err := e.client.RunIngestionJob(t.Context(), &stockv1.RunIngestionJobRequest{JobId: "j"})
	must(t, err)
	id := resp.GetRun().GetRunId()
	e.awaitRun(t, id, func(r *stockv1.IngestionRun) bool { return r.GetRowsIn() == 1 })
	e.stopLeader()
	run := e.awaitRun(t, id, func(*stockv1.IngestionRun) bool { return true })
	if run.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_QUEUED || run.GetAttempt() != 1 ||
		!strings.Contains(run.GetError(), "shut down") || run.GetWorker() != "" {
		t.Errorf("run after the shutdown: %v", run)
	}
}

// TestIngestion_polygon: a POLYGON job against the local stand-in provider (its format, on
// loopback) that rate-limits the first request, answers a 500 mid-way and hangs once past the
// connector's timeout: the run is retried until it succeeds, every good bar lands once, and
// the provider's bad row is in the quarantine with its day.
func TestIngestion_polygon(t *testing.T) {
	t.Parallel()
	today := time.Now().UTC().Truncate(24 * time.Hour)
	days := providerstub.Days(today.AddDate(0, 0, -20), today.AddDate(0, 0, 1))
	bad := days[len(days)/2]
	stub := httptest.NewServer(providerstub.NewHandler(providerstub.Options{
		Symbols: []string{"AAA", "BBB"}, Key: "k", PageSize: 4, RateLimitFirst: 1, RetryAfter: 0,
		Faults:  map[int]providerstub.Fault{4: providerstub.ServerError, 7: providerstub.Hang},
		BadRows: map[string]providerstub.BadRow{bad.Format(time.DateOnly): providerstub.HighBelowLow},
	}))
	t.Cleanup(stub.Close)
	sources := ingest.Sources{"polygon": func() (source.Source, error) {
		src, err := polygon.New(polygon.Config{BaseURL: stub.URL, APIKey: "k", Timeout: time.Second})
		if err != nil {
			return nil, err
		}
		return src, nil
	}}
	e := newPipelineEnv(t, sources)
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"}, &stockv1.Stock{Symbol: "BBB", Name: "B", Currency: "USD"})
	e.createJob(t, &stockv1.IngestionJob{JobId: "poly", Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON, Schedule: "@daily",
		Symbols: []string{"AAA", "BBB"}, LookbackDays: 20, MaxAttempts: 10})
	run := e.runJob(t, "poly")
	if run.GetState() != stockv1.IngestionRunState_INGESTION_RUN_STATE_SUCCEEDED || run.GetAttempt() < 2 {
		t.Fatalf("run: %v", run)
	}
	for _, sym := range []string{"AAA", "BBB"} {
		if got := allPrices(t, e, sym); len(got) != len(days)-1 {
			t.Errorf("%s: %d bars stored, want %d (every weekday but the bad one)", sym, len(got), len(days)-1)
		}
	}
	rejects := e.rejects(t, run.GetRunId())
	var refused int
	for _, r := range rejects {
		if strings.Contains(r.GetRef(), bad.Format(time.DateOnly)) || strings.Contains(r.GetRaw(), bad.Format(time.DateOnly)) {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("the bad row of %s is not in the quarantine: %v", bad.Format(time.DateOnly), rejects)
	}
	t.Logf("succeeded at attempt %d, %d bars in (over attempts), %d rejects", run.GetAttempt(), run.GetRowsIn(), len(rejects))
}
