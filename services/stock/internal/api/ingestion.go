package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/ingest"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// The ingestion pipeline's API: jobs, runs and rejects are rows the handlers read and write;
// package ingest's leader does the work (it polls the queue, so a run queued here starts
// within about a second, and a cancel reaches a running run as fast).

// Job defaults, as the proto documents them.
const (
	defaultLookbackDays = 5
	defaultMaxAttempts  = 3
)

// sourceNames maps the proto enum to the names the table and the connectors use.
var sourceNames = map[stockv1.IngestionSource]string{
	stockv1.IngestionSource_INGESTION_SOURCE_POLYGON: "polygon",
	stockv1.IngestionSource_INGESTION_SOURCE_FILES:   "files",
}

// CreateIngestionJob stores a job; its schedule's next tick queues its first run.
func (s *Server) CreateIngestionJob(ctx context.Context, req *stockv1.CreateIngestionJobRequest) (*stockv1.CreateIngestionJobResponse, error) {
	j := fromIngestionJob(req.GetJob())
	if !s.sourceAvailable(j.Source) {
		return nil, apierr.Newf(apierr.IngestionSourceUnavailable, map[string]string{"source": j.Source},
			"source %q is not configured in this deployment (the files source needs INGEST_DIR)", j.Source)
	}
	var out store.IngestionJob
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.CreateIngestionJob(ctx, j)
		return err
	})
	if errors.Is(err, store.ErrJobExists) {
		return nil, apierr.Newf(apierr.IngestionJobExists, map[string]string{"job_id": j.JobID},
			"ingestion job %q exists already", j.JobID)
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.CreateIngestionJobResponse{Job: toIngestionJob(out)}, nil
}

// sourceAvailable reports whether the deployment configured the source.
func (s *Server) sourceAvailable(name string) bool {
	return s.ingestSources == nil || s.ingestSources[name]
}

// GetIngestionJob returns one job.
func (s *Server) GetIngestionJob(ctx context.Context, req *stockv1.GetIngestionJobRequest) (*stockv1.GetIngestionJobResponse, error) {
	var j store.IngestionJob
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		j, err = s.store.GetIngestionJob(ctx, req.GetJobId())
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.GetIngestionJobResponse{Job: toIngestionJob(j)}, nil
}

// ListIngestionJobs returns a page of jobs by job_id.
func (s *Server) ListIngestionJobs(ctx context.Context, req *stockv1.ListIngestionJobsRequest) (*stockv1.ListIngestionJobsResponse, error) {
	page := query.Request{PageToken: req.GetPageToken(), PageSize: req.GetPageSize()}
	jobs, next, err := query.List(ctx, s.retry, &s.lists.jobs, page, s.store.ListIngestionJobs, toIngestionJob)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListIngestionJobsResponse{Jobs: jobs, NextPageToken: next}, nil
}

// UpdateIngestionJob changes the fields the mask names.
func (s *Server) UpdateIngestionJob(ctx context.Context, req *stockv1.UpdateIngestionJobRequest) (*stockv1.UpdateIngestionJobResponse, error) {
	j := fromIngestionJob(req.GetJob())
	paths := req.GetUpdateMask().GetPaths()
	var out store.IngestionJob
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		out, err = s.store.UpdateIngestionJob(ctx, j, paths)
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.UpdateIngestionJobResponse{Job: toIngestionJob(out)}, nil
}

// DeleteIngestionJob deletes a job; its runs stay.
func (s *Server) DeleteIngestionJob(ctx context.Context, req *stockv1.DeleteIngestionJobRequest) (*stockv1.DeleteIngestionJobResponse, error) {
	// Not retried on an ambiguous failure: a repeat after a delete that committed is NOT_FOUND.
	if err := s.store.DeleteIngestionJob(ctx, req.GetJobId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.DeleteIngestionJobResponse{}, nil
}

// RunIngestionJob queues a manual run now.
func (s *Server) RunIngestionJob(ctx context.Context, req *stockv1.RunIngestionJobRequest) (*stockv1.RunIngestionJobResponse, error) {
	r, err := s.store.QueueManualRun(ctx, req.GetJobId(), req.GetRequestId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.RunIngestionJobResponse{Run: toIngestionRun(r)}, nil
}

// ListIngestionRuns returns a page of runs, newest first.
func (s *Server) ListIngestionRuns(ctx context.Context, req *stockv1.ListIngestionRunsRequest) (*stockv1.ListIngestionRunsResponse, error) {
	page := query.Request{Filter: req.GetFilter(), PageToken: req.GetPageToken(), PageSize: req.GetPageSize(),
		Extra: req.GetJobId()}
	read := func(ctx context.Context, q *query.Query) ([]store.IngestionRun, error) {
		return s.store.ListIngestionRuns(ctx, req.GetJobId(), q)
	}
	runs, next, err := query.List(ctx, s.retry, &s.lists.runs, page, read, toIngestionRun)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListIngestionRunsResponse{Runs: runs, NextPageToken: next}, nil
}

// GetIngestionRun returns one run.
func (s *Server) GetIngestionRun(ctx context.Context, req *stockv1.GetIngestionRunRequest) (*stockv1.GetIngestionRunResponse, error) {
	var r store.IngestionRun
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		r, err = s.store.GetIngestionRun(ctx, req.GetRunId())
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.GetIngestionRunResponse{Run: toIngestionRun(r)}, nil
}

// CancelIngestionRun cancels a queued run, or asks a running one to stop.
func (s *Server) CancelIngestionRun(ctx context.Context, req *stockv1.CancelIngestionRunRequest) (*stockv1.CancelIngestionRunResponse, error) {
	r, err := s.store.CancelIngestionRun(ctx, req.GetRunId())
	var finished *store.RunFinishedError
	if errors.As(err, &finished) {
		return nil, apierr.Newf(apierr.IngestionRunFinished,
			map[string]string{"run_id": strconv.FormatInt(finished.RunID, 10), "state": runStateName(finished.State)},
			"ingestion run %d has finished (%s): nothing to cancel", finished.RunID, strings.ToLower(finished.State))
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.CancelIngestionRunResponse{Run: toIngestionRun(r)}, nil
}

// ListIngestionRejects returns a page of a run's rejects, in order.
func (s *Server) ListIngestionRejects(ctx context.Context, req *stockv1.ListIngestionRejectsRequest) (*stockv1.ListIngestionRejectsResponse, error) {
	page := query.Request{PageToken: req.GetPageToken(), PageSize: req.GetPageSize(),
		Extra: strconv.FormatInt(req.GetRunId(), 10)}
	read := func(ctx context.Context, q *query.Query) ([]store.IngestionReject, error) {
		return s.store.ListIngestionRejects(ctx, req.GetRunId(), q)
	}
	rejects, next, err := query.List(ctx, s.retry, &s.lists.rejects, page, read, toIngestionReject)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListIngestionRejectsResponse{Rejects: rejects, NextPageToken: next}, nil
}

func fromIngestionJob(j *stockv1.IngestionJob) store.IngestionJob {
	out := store.IngestionJob{
		JobID: j.GetJobId(), Source: sourceNames[j.GetSource()], Symbols: j.GetSymbols(),
		Schedule: j.GetSchedule(), LookbackDays: j.GetLookbackDays(), AppendOnly: j.GetAppendOnly(),
		MaxAttempts: j.GetMaxAttempts(), Paused: j.GetPaused(),
	}
	if out.LookbackDays == 0 {
		out.LookbackDays = defaultLookbackDays
	}
	if out.MaxAttempts == 0 {
		out.MaxAttempts = defaultMaxAttempts
	}
	return out
}

func toIngestionJob(j store.IngestionJob) *stockv1.IngestionJob {
	out := &stockv1.IngestionJob{
		JobId: j.JobID, Symbols: j.Symbols, Schedule: j.Schedule,
		LookbackDays: j.LookbackDays, AppendOnly: j.AppendOnly, MaxAttempts: j.MaxAttempts, Paused: j.Paused,
		CreateTime: timestamppb.New(j.CreateTime), UpdateTime: timestamppb.New(j.UpdateTime),
	}
	for enum, name := range sourceNames {
		if name == j.Source {
			out.Source = enum
		}
	}
	if !j.Paused {
		if next := ingest.NextRun(j.Schedule, time.Now()); !next.IsZero() {
			out.NextRunTime = timestamppb.New(next)
		}
	}
	return out
}

// runStateName is the enum value name of a stored state ("queued": INGESTION_RUN_STATE_QUEUED).
func runStateName(state string) string { return "INGESTION_RUN_STATE_" + strings.ToUpper(state) }

func toIngestionRun(r store.IngestionRun) *stockv1.IngestionRun {
	out := &stockv1.IngestionRun{
		RunId: r.RunID, JobId: r.JobID,
		Trigger:         stockv1.IngestionTrigger(stockv1.IngestionTrigger_value["INGESTION_TRIGGER_"+strings.ToUpper(r.Trigger)]),
		State:           stockv1.IngestionRunState(stockv1.IngestionRunState_value[runStateName(r.State)]),
		Attempt:         r.Attempt,
		ScheduledTime:   timestamppb.New(r.ScheduledTime),
		NextAttemptTime: timestamppb.New(r.NextAttemptTime),
		RowsIn:          r.RowsIn, RowsRejected: r.RowsRejected, Error: r.Error,
		CancelRequested: r.CancelRequested, Worker: r.Worker,
	}
	if r.StartTime != nil {
		out.StartTime = timestamppb.New(*r.StartTime)
	}
	if r.EndTime != nil {
		out.EndTime = timestamppb.New(*r.EndTime)
	}
	return out
}

func toIngestionReject(r store.IngestionReject) *stockv1.IngestionReject {
	return &stockv1.IngestionReject{RunId: r.RunID, Seq: r.Seq, Ref: r.Ref, Reason: r.Reason, Raw: r.Raw}
}

// notFoundReason is the reason of a store's *NotFoundError by the kind of row it missed.
func notFoundReason(kind string) apierr.Reason {
	switch kind {
	case "ingestion job":
		return apierr.IngestionJobNotFound
	case "ingestion run":
		return apierr.IngestionRunNotFound
	}
	return apierr.StockNotFound
}
