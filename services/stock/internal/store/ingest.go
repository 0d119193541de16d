package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// IngestionJob is a row of stock.ingestion_jobs.
type IngestionJob struct {
	JobID        string    `db:"job_id"`
	Source       string    `db:"source"` // "polygon", "files"
	Symbols      []string  `db:"symbols"`
	Schedule     string    `db:"schedule"`
	LookbackDays int32     `db:"lookback_days"`
	AppendOnly   bool      `db:"append_only"`
	MaxAttempts  int32     `db:"max_attempts"`
	Paused       bool      `db:"paused"`
	CreateTime   time.Time `db:"create_time"`
	UpdateTime   time.Time `db:"update_time"`
}

// IngestionRun is a row of stock.ingestion_runs.
type IngestionRun struct {
	RunID           int64      `db:"run_id"`
	JobID           string     `db:"job_id"`
	Trigger         string     `db:"trigger"` // "schedule", "manual"
	State           string     `db:"state"`   // RunQueued, ...
	Attempt         int32      `db:"attempt"`
	ScheduledTime   time.Time  `db:"scheduled_time"`
	StartTime       *time.Time `db:"start_time"`
	EndTime         *time.Time `db:"end_time"`
	NextAttemptTime time.Time  `db:"next_attempt_time"`
	RowsIn          int64      `db:"rows_in"`
	RowsRejected    int64      `db:"rows_rejected"`
	Error           string     `db:"error"`
	CancelRequested bool       `db:"cancel_requested"`
	Worker          string     `db:"worker"`
}

// Run states, as stock.ingestion_runs stores them.
const (
	RunQueued    = "queued"
	RunRunning   = "running"
	RunSucceeded = "succeeded"
	RunFailed    = "failed"
	RunCancelled = "cancelled"
)

// IngestionReject is a row of stock.ingestion_rejects.
type IngestionReject struct {
	RunID  int64  `db:"run_id"`
	Seq    int64  `db:"seq"`
	Ref    string `db:"ref"`
	Reason string `db:"reason"`
	Raw    string `db:"raw"`
}

// ErrJobExists means a job with the job_id exists already.
var ErrJobExists = errors.New("ingestion job exists")

// RunFinishedError means a run to cancel has finished already.
type RunFinishedError struct {
	RunID int64
	State string
}

func (e *RunFinishedError) Error() string {
	return fmt.Sprintf("ingestion run %d is %s already", e.RunID, e.State)
}

const (
	jobColumns = `job_id, source, symbols, schedule, lookback_days, append_only, max_attempts, paused,
		create_time, update_time`
	runColumns = `run_id, job_id, trigger, state, attempt, scheduled_time, start_time, end_time,
		next_attempt_time, rows_in, rows_rejected, error, cancel_requested, worker`
)

func jobNotFound(id string) error {
	return &NotFoundError{Kind: "ingestion job", Field: "job_id", Key: id}
}

func runNotFound(id int64) error {
	return &NotFoundError{Kind: "ingestion run", Field: "run_id", Key: id}
}

// CreateIngestionJob inserts j; ErrJobExists if its job_id is taken.
func (s *Store) CreateIngestionJob(ctx context.Context, j IngestionJob) (IngestionJob, error) {
	const q = `
		INSERT INTO stock.ingestion_jobs (job_id, source, symbols, schedule, lookback_days, append_only, max_attempts, paused)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING ` + jobColumns
	rows, _ := s.db.Query(ctx, q, j.JobID, j.Source, nonNil(j.Symbols), j.Schedule, j.LookbackDays, j.AppendOnly, j.MaxAttempts, j.Paused)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionJob])
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		return out, ErrJobExists
	}
	if err != nil {
		return out, fmt.Errorf("create ingestion job: %w", err)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GetIngestionJob returns one job, or a *NotFoundError.
func (s *Store) GetIngestionJob(ctx context.Context, id string) (IngestionJob, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+jobColumns+` FROM stock.ingestion_jobs WHERE job_id = $1`, id)
	j, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionJob])
	if errors.Is(err, pgx.ErrNoRows) {
		return j, jobNotFound(id)
	}
	if err != nil {
		return j, fmt.Errorf("get ingestion job: %w", err)
	}
	return j, nil
}

// ListIngestionJobs returns one page of jobs.
func (s *Store) ListIngestionJobs(ctx context.Context, page *query.Query) ([]IngestionJob, error) {
	q := page.SQL(`SELECT ` + jobColumns + ` FROM stock.ingestion_jobs`)
	rows, _ := s.db.Query(ctx, q, page.NamedArgs(nil))
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByName[IngestionJob])
	if err != nil {
		return nil, fmt.Errorf("list ingestion jobs: %w", err)
	}
	return jobs, nil
}

// AllIngestionJobs returns every job, for the scheduler (a deployment has tens of them).
func (s *Store) AllIngestionJobs(ctx context.Context) ([]IngestionJob, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+jobColumns+` FROM stock.ingestion_jobs ORDER BY job_id`)
	jobs, err := pgx.CollectRows(rows, pgx.RowToStructByName[IngestionJob])
	if err != nil {
		return nil, fmt.Errorf("all ingestion jobs: %w", err)
	}
	return jobs, nil
}

// UpdateIngestionJob sets the named fields (schedule, symbols, lookback_days, append_only,
// max_attempts, paused) of the job j names to j's values, and returns the job.
func (s *Store) UpdateIngestionJob(ctx context.Context, j IngestionJob, fields []string) (IngestionJob, error) {
	sets := []string{"update_time = now()"}
	args := pgx.NamedArgs{"id": j.JobID}
	for _, f := range fields {
		switch f {
		case "schedule":
			args[f] = j.Schedule
		case "symbols":
			args[f] = nonNil(j.Symbols)
		case "lookback_days":
			args[f] = j.LookbackDays
		case "append_only":
			args[f] = j.AppendOnly
		case "max_attempts":
			args[f] = j.MaxAttempts
		case "paused":
			args[f] = j.Paused
		default:
			return IngestionJob{}, fmt.Errorf("update ingestion job: field %q cannot be updated", f)
		}
		sets = append(sets, f+" = @"+f)
	}
	q := `UPDATE stock.ingestion_jobs SET ` + strings.Join(sets, ", ") + ` WHERE job_id = @id RETURNING ` + jobColumns
	rows, _ := s.db.Query(ctx, q, args)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionJob])
	if errors.Is(err, pgx.ErrNoRows) {
		return out, jobNotFound(j.JobID)
	}
	if err != nil {
		return out, fmt.Errorf("update ingestion job: %w", err)
	}
	return out, nil
}

// DeleteIngestionJob deletes a job and cancels its queued runs; its other runs stay.
func (s *Store) DeleteIngestionJob(ctx context.Context, id string) error {
	const q = `
		WITH del AS (DELETE FROM stock.ingestion_jobs WHERE job_id = $1 RETURNING job_id),
		cancelled AS (
			UPDATE stock.ingestion_runs r SET state = 'cancelled', end_time = now(), error = 'job deleted'
			FROM del WHERE r.job_id = del.job_id AND r.state = 'queued')
		SELECT count(*) FROM del`
	var n int
	if err := s.db.QueryRow(ctx, q, id).Scan(&n); err != nil {
		return fmt.Errorf("delete ingestion job: %w", err)
	}
	if n == 0 {
		return jobNotFound(id)
	}
	return nil
}

// QueueManualRun queues a run of the job now, or returns a *NotFoundError. With a
// requestID ("": none) a repeat returns the run the first call queued.
func (s *Store) QueueManualRun(ctx context.Context, jobID, requestID string) (IngestionRun, error) {
	// One statement: the insert, or on a repeated key the run it names (the CTE's insert
	// is not visible to the outer SELECT, so the UNION takes whichever exists).
	const q = `
		WITH ins AS (
			INSERT INTO stock.ingestion_runs (job_id, trigger, scheduled_time, request_id)
			SELECT job_id, 'manual', clock_timestamp(), nullif($2, '') FROM stock.ingestion_jobs WHERE job_id = $1
			ON CONFLICT (job_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
			RETURNING ` + runColumns + `)
		SELECT * FROM ins
		UNION ALL
		SELECT ` + runColumns + ` FROM stock.ingestion_runs
		WHERE job_id = $1 AND request_id = nullif($2, '') AND NOT EXISTS (SELECT 1 FROM ins)
			AND EXISTS (SELECT 1 FROM stock.ingestion_jobs WHERE job_id = $1)`
	rows, _ := s.db.Query(ctx, q, jobID, requestID)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionRun])
	if errors.Is(err, pgx.ErrNoRows) && requestID != "" {
		// A call with the same key committed its run while this statement waited on it: ON
		// CONFLICT did nothing, and the statement's snapshot, older than that commit, sees
		// no run. A second statement, with a newer snapshot, returns it.
		rows, _ = s.db.Query(ctx, q, jobID, requestID)
		r, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionRun])
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return r, jobNotFound(jobID)
	}
	if err != nil {
		return r, fmt.Errorf("queue ingestion run: %w", err)
	}
	return r, nil
}

// QueueScheduledRun queues the run of one cron tick, unless it is queued already (by this
// leader or another): it returns whether it queued one.
func (s *Store) QueueScheduledRun(ctx context.Context, jobID string, tick time.Time) (bool, error) {
	const q = `
		INSERT INTO stock.ingestion_runs (job_id, trigger, scheduled_time)
		VALUES ($1, 'schedule', $2)
		ON CONFLICT (job_id, scheduled_time) DO NOTHING`
	tag, err := s.db.Exec(ctx, q, jobID, tick)
	if err != nil {
		return false, fmt.Errorf("queue scheduled run: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// LastScheduledTimes returns, for each job with a scheduled run, its latest tick queued.
func (s *Store) LastScheduledTimes(ctx context.Context) (map[string]time.Time, error) {
	const q = `
		SELECT j.job_id, t.last
		FROM stock.ingestion_jobs j
		CROSS JOIN LATERAL (
			SELECT max(scheduled_time) AS last FROM stock.ingestion_runs r
			WHERE r.job_id = j.job_id AND r.trigger = 'schedule') t
		WHERE t.last IS NOT NULL`
	rows, _ := s.db.Query(ctx, q)
	last := map[string]time.Time{}
	var id string
	var ts time.Time
	_, err := pgx.ForEachRow(rows, []any{&id, &ts}, func() error {
		last[id] = ts
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("last scheduled times: %w", err)
	}
	return last, nil
}

// GetIngestionRun returns one run, or a *NotFoundError.
func (s *Store) GetIngestionRun(ctx context.Context, id int64) (IngestionRun, error) {
	rows, _ := s.db.Query(ctx, `SELECT `+runColumns+` FROM stock.ingestion_runs WHERE run_id = $1`, id)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionRun])
	if errors.Is(err, pgx.ErrNoRows) {
		return r, runNotFound(id)
	}
	if err != nil {
		return r, fmt.Errorf("get ingestion run: %w", err)
	}
	return r, nil
}

// ListIngestionRunsSQL is ListIngestionRuns' statement, for the EXPLAIN test.
func ListIngestionRunsSQL(page *query.Query, jobID string) string {
	if jobID == "" {
		return page.SQL(`SELECT ` + runColumns + ` FROM stock.ingestion_runs`)
	}
	return page.SQL(`SELECT `+runColumns+` FROM stock.ingestion_runs`, `job_id = @job_id`)
}

// ListIngestionRuns returns one page of runs, all jobs' or jobID's.
func (s *Store) ListIngestionRuns(ctx context.Context, jobID string, page *query.Query) ([]IngestionRun, error) {
	args := pgx.NamedArgs{"job_id": jobID}
	if jobID == "" {
		args = nil // a name the statement does not use is an error
	}
	rows, _ := s.db.Query(ctx, ListIngestionRunsSQL(page, jobID), page.NamedArgs(args))
	runs, err := pgx.CollectRows(rows, pgx.RowToStructByName[IngestionRun])
	if err != nil {
		return nil, fmt.Errorf("list ingestion runs: %w", err)
	}
	return runs, nil
}

// CancelIngestionRun cancels a queued run at once and marks a running one cancel_requested
// (its runner stops it); a finished run is a *RunFinishedError.
func (s *Store) CancelIngestionRun(ctx context.Context, id int64) (IngestionRun, error) {
	const q = `
		UPDATE stock.ingestion_runs SET
			state = CASE WHEN state = 'queued' THEN 'cancelled' ELSE state END,
			end_time = CASE WHEN state = 'queued' THEN now() ELSE end_time END,
			cancel_requested = true
		WHERE run_id = $1 AND state IN ('queued', 'running')
		RETURNING ` + runColumns
	rows, _ := s.db.Query(ctx, q, id)
	r, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionRun])
	if errors.Is(err, pgx.ErrNoRows) {
		cur, err := s.GetIngestionRun(ctx, id)
		if err != nil {
			return cur, err
		}
		return cur, &RunFinishedError{RunID: id, State: cur.State}
	}
	if err != nil {
		return r, fmt.Errorf("cancel ingestion run: %w", err)
	}
	return r, nil
}

// ListIngestionRejects returns one page of a run's rejects; a run without rejects that does
// not exist is a *NotFoundError.
func (s *Store) ListIngestionRejects(ctx context.Context, runID int64, page *query.Query) ([]IngestionReject, error) {
	q := page.SQL(`SELECT run_id, seq, ref, reason, raw FROM stock.ingestion_rejects`, `run_id = @run_id`)
	rows, _ := s.db.Query(ctx, q, page.NamedArgs(pgx.NamedArgs{"run_id": runID}))
	rejects, err := pgx.CollectRows(rows, pgx.RowToStructByName[IngestionReject])
	if err != nil {
		return nil, fmt.Errorf("list ingestion rejects: %w", err)
	}
	if len(rejects) == 0 {
		if _, err := s.GetIngestionRun(ctx, runID); err != nil {
			return nil, err
		}
	}
	return rejects, nil
}

// The leader's statements, on the primary.

// RequeueOrphans, run by a new leader, puts back the runs a dead leader left running: each
// gets another attempt (error "leader lost"), or fails if it has none left; a run whose
// cancel was asked is cancelled. It returns how many it requeued.
func (s *Store) RequeueOrphans(ctx context.Context) (int64, error) {
	const q = `
		UPDATE stock.ingestion_runs r SET
			state = CASE
				WHEN r.cancel_requested THEN 'cancelled'
				WHEN r.attempt + 1 > coalesce(j.max_attempts, 0) THEN 'failed'
				ELSE 'queued' END,
			end_time = CASE WHEN r.cancel_requested OR r.attempt + 1 > coalesce(j.max_attempts, 0) THEN now() END,
			attempt = CASE WHEN r.cancel_requested OR r.attempt + 1 > coalesce(j.max_attempts, 0) THEN r.attempt ELSE r.attempt + 1 END,
			error = 'leader lost', next_attempt_time = now()
		FROM stock.ingestion_runs o LEFT JOIN stock.ingestion_jobs j ON j.job_id = o.job_id
		WHERE o.run_id = r.run_id AND r.state = 'running'`
	tag, err := s.db.Exec(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("requeue orphaned runs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// ClaimRun takes the queued run due first and marks it running by worker, with its job; ok is
// false if none is due. A run whose job was deleted is failed instead, and the next looked at.
func (s *Store) ClaimRun(ctx context.Context, worker string) (run IngestionRun, job IngestionJob, ok bool, err error) {
	const q = `
		UPDATE stock.ingestion_runs SET state = 'running', start_time = now(), end_time = NULL, worker = $1
		WHERE run_id = (
			SELECT run_id FROM stock.ingestion_runs
			WHERE state = 'queued' AND next_attempt_time <= now()
			ORDER BY next_attempt_time
			LIMIT 1
			FOR UPDATE SKIP LOCKED)
		RETURNING ` + runColumns
	for {
		rows, _ := s.db.Query(ctx, q, worker)
		run, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[IngestionRun])
		if errors.Is(err, pgx.ErrNoRows) {
			return run, job, false, nil
		}
		if err != nil {
			return run, job, false, fmt.Errorf("claim ingestion run: %w", err)
		}
		job, err = s.GetIngestionJob(ctx, run.JobID)
		if errors.Is(err, ErrNotFound) {
			if err := s.FinishRun(ctx, run.RunID, RunFailed, "job deleted"); err != nil {
				return run, job, false, err
			}
			continue
		}
		return run, job, err == nil, err
	}
}

// FinishRun ends a run in state (succeeded, failed, cancelled) with errText.
func (s *Store) FinishRun(ctx context.Context, runID int64, state, errText string) error {
	const q = `UPDATE stock.ingestion_runs SET state = $2, error = $3, end_time = now() WHERE run_id = $1`
	if _, err := s.db.Exec(ctx, q, runID, state, errText); err != nil {
		return fmt.Errorf("finish ingestion run: %w", err)
	}
	return nil
}

// RetryRun puts a run whose attempt failed back in the queue, for attempt+1 at next.
func (s *Store) RetryRun(ctx context.Context, runID int64, errText string, next time.Time) error {
	const q = `
		UPDATE stock.ingestion_runs SET state = 'queued', attempt = attempt + 1, error = $2,
			next_attempt_time = $3
		WHERE run_id = $1`
	if _, err := s.db.Exec(ctx, q, runID, errText, next); err != nil {
		return fmt.Errorf("retry ingestion run: %w", err)
	}
	return nil
}

// RequeueRun puts a running run back in the queue as it was (same attempt), to start now:
// its leader stopped it without its fault (a shutdown).
func (s *Store) RequeueRun(ctx context.Context, runID int64, errText string) error {
	const q = `
		UPDATE stock.ingestion_runs SET state = 'queued', error = $2, next_attempt_time = now(), worker = ''
		WHERE run_id = $1 AND state = 'running'`
	if _, err := s.db.Exec(ctx, q, runID, errText); err != nil {
		return fmt.Errorf("requeue ingestion run: %w", err)
	}
	return nil
}

// CancelRequested returns the runs among ids whose cancel was asked.
func (s *Store) CancelRequested(ctx context.Context, ids []int64) ([]int64, error) {
	rows, _ := s.db.Query(ctx, `SELECT run_id FROM stock.ingestion_runs WHERE run_id = ANY($1) AND cancel_requested`, ids)
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("cancel requested: %w", err)
	}
	return out, nil
}

// RecordBatch adds a batch's counts to its run and stores its rejects from seq first on
// (rejects beyond the caller's cap are counted, not passed).
func (s *Store) RecordBatch(ctx context.Context, runID, accepted, rejected int64, first int64, rejects []IngestionReject) error {
	const q = `UPDATE stock.ingestion_runs SET rows_in = rows_in + $2, rows_rejected = rows_rejected + $3 WHERE run_id = $1`
	if _, err := s.db.Exec(ctx, q, runID, accepted, rejected); err != nil {
		return fmt.Errorf("record batch: %w", err)
	}
	if len(rejects) == 0 {
		return nil
	}
	_, err := s.db.CopyFrom(ctx, pgx.Identifier{"stock", "ingestion_rejects"}, []string{"run_id", "seq", "ref", "reason", "raw"},
		pgx.CopyFromSlice(len(rejects), func(i int) ([]any, error) {
			r := rejects[i]
			return []any{runID, first + int64(i), r.Ref, r.Reason, r.Raw}, nil
		}))
	if err != nil {
		return fmt.Errorf("store rejects: %w", err)
	}
	return nil
}

// RejectCount returns how many rejects a run stored, where a retried run goes on numbering.
func (s *Store) RejectCount(ctx context.Context, runID int64) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM stock.ingestion_rejects WHERE run_id = $1`, runID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count rejects: %w", err)
	}
	return n, nil
}
