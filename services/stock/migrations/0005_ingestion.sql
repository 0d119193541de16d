-- The scheduled ingestion pipeline (package internal/ingest): jobs say what to fetch from
-- which source and when (a cron schedule); each run of a job is recorded, whether the
-- schedule or an operator (RunIngestionJob) started it; and the bars a run refused are kept
-- with their reasons, a per-run quarantine, instead of failing the whole run.
--
-- Runs outlive their job (no foreign key): deleting a job keeps its history of runs, which
-- is what an operator reads after the fact. Rejects go with their run.

-- +goose Up
CREATE TABLE stock.ingestion_jobs (
    -- A slug, so it can sit in a URL path and a metric label as it is.
    job_id        text PRIMARY KEY CHECK (job_id ~ '^[a-z][a-z0-9-]{0,62}$'),
    source        text NOT NULL CHECK (source IN ('polygon', 'files')),
    -- Empty means all the source has (a files drop delivers what it holds).
    symbols       text[] NOT NULL DEFAULT '{}',
    -- Parsed by robfig/cron (5 fields, UTC, or a descriptor); the API refuses a bad one.
    schedule      text NOT NULL CHECK (schedule <> ''),
    lookback_days int NOT NULL DEFAULT 5 CHECK (lookback_days BETWEEN 1 AND 3650),
    append_only   bool NOT NULL DEFAULT false,
    max_attempts  int NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 10),
    paused        bool NOT NULL DEFAULT false,
    create_time   timestamptz NOT NULL DEFAULT now(),
    update_time   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stock.ingestion_runs (
    run_id            bigserial PRIMARY KEY,
    job_id            text NOT NULL,
    trigger           text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    state             text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempt           int NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- The cron tick a scheduled run serves; a manual run's is the time it was asked for.
    scheduled_time    timestamptz NOT NULL,
    start_time        timestamptz,
    end_time          timestamptz,
    -- When a queued run may start: now for a new one, later for a retry after backoff.
    next_attempt_time timestamptz NOT NULL DEFAULT now(),
    rows_in           bigint NOT NULL DEFAULT 0,
    rows_rejected     bigint NOT NULL DEFAULT 0,
    error             text NOT NULL DEFAULT '',
    cancel_requested  bool NOT NULL DEFAULT false,
    -- host/pid of the process that runs (or last ran) it.
    worker            text NOT NULL DEFAULT '',
    -- A manual run's optional idempotency key (RunIngestionJob's request_id): a repeat
    -- returns the run the first call queued. NULL for scheduled runs and runs without one.
    request_id        text,
    -- Two leaders (one that lost its lock and does not know yet, and its successor) can
    -- never queue one tick twice: the scheduler inserts ON CONFLICT DO NOTHING.
    CONSTRAINT ingestion_runs_tick_key UNIQUE (job_id, scheduled_time)
);
-- ListIngestionRuns: newest first, all jobs or one job's (the tick key above serves
-- neither order: it leads with job_id, then time, not run_id).
CREATE INDEX ingestion_runs_job_idx ON stock.ingestion_runs (job_id, run_id);
-- RunIngestionJob's idempotency keys; partial, so it holds only the runs that have one.
CREATE UNIQUE INDEX ingestion_runs_request_key ON stock.ingestion_runs (job_id, request_id)
    WHERE request_id IS NOT NULL;
-- The leader's queue: queued runs by the time they may start; running ones to requeue when a
-- leader takes over. Partial, so the index stays the size of the work, not of the history.
CREATE INDEX ingestion_runs_queue_idx ON stock.ingestion_runs (next_attempt_time)
    WHERE state IN ('queued', 'running');

CREATE TABLE stock.ingestion_rejects (
    run_id bigint NOT NULL REFERENCES stock.ingestion_runs (run_id) ON DELETE CASCADE,
    -- Order of refusal within the run: ListIngestionRejects pages on it.
    seq    bigint NOT NULL,
    ref    text NOT NULL,
    reason text NOT NULL,
    -- The offending input, at most 256 bytes.
    raw    text NOT NULL DEFAULT '',
    PRIMARY KEY (run_id, seq)
);

-- +goose Down
DROP TABLE stock.ingestion_rejects;
DROP TABLE stock.ingestion_runs;
DROP TABLE stock.ingestion_jobs;
