// Package ingest runs the stock service's scheduled ingestion pipeline: one process at a
// time leads (a session advisory lock on a dedicated connection), queues a run for each due
// cron tick of each job, and executes queued runs, INGEST_WORKERS at a time. A run asks its
// job's source (package source's contract) for the job's symbols over its lookback, and
// writes each batch the source emits through the API's IngestBars, which is IngestPrices'
// path: bad bars go to the run's quarantine (stock.ingestion_rejects) with their reasons,
// good ones into stock.prices under the symbols' write locks, one transaction per batch.
//
// Failures: a source's TransientError fails the attempt; the run is queued again after
// max(Retry-After, backoff) while attempts remain, else fails. Any other error, and a panic
// in a connector, fails the run at once. A leader whose lock connection dies stops at once:
// its runs' contexts are cancelled and left running in the table, and the next leader
// requeues them ("leader lost") for another attempt.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/stock/internal/source"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// Config is the pipeline's environment.
type Config struct {
	Enabled    bool          `env:"INGEST_ENABLED, default=true" help:"run the scheduled ingestion pipeline in this process (one process at a time leads; the others stand by)"`
	Workers    int           `env:"INGEST_WORKERS, default=2" help:"ingestion runs the leader executes at once"`
	LeaderPoll time.Duration `env:"INGEST_LEADER_POLL, default=5s" help:"how often a standby process tries to take the ingestion lead"`
	MaxRejects int64         `env:"INGEST_MAX_REJECTS, default=10000" help:"rejected bars stored per run (ListIngestionRejects); the rest are counted only"`
	Dir        string        `env:"INGEST_DIR" help:"directory the files source reads *.csv and *.ndjson from (moved to done/ after a successful run); empty: no files source"`
	HTTP       HTTPConfig
}

// HTTPConfig configures the HTTP market-data connector (Polygon.io's aggregates format).
type HTTPConfig struct {
	BaseURL string        `env:"INGEST_HTTP_BASE_URL" help:"base URL of the HTTP market-data provider (Polygon.io REST format); empty: no polygon source"`
	APIKey  string        `env:"INGEST_HTTP_API_KEY" json:"-" help:"API key sent to the HTTP market-data provider" secret:"true"`
	Timeout time.Duration `env:"INGEST_HTTP_TIMEOUT, default=30s" help:"timeout of one request to the HTTP market-data provider"`
}

// Validate refuses settings the pipeline cannot run with.
func (c Config) Validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("INGEST_WORKERS must be at least 1, got %d", c.Workers)
	case c.LeaderPoll <= 0:
		return fmt.Errorf("INGEST_LEADER_POLL must be positive, got %s", c.LeaderPoll)
	case c.MaxRejects < 0:
		return fmt.Errorf("INGEST_MAX_REJECTS must not be negative, got %d", c.MaxRejects)
	}
	return nil
}

// Sink writes one batch of a run; the API's Server is the one (IngestBars). record runs in
// the batch's transaction.
type Sink interface {
	IngestBars(ctx context.Context, bars []source.Bar, appendOnly bool,
		record func(ctx context.Context, tx pgx.Tx, accepted int64, rejects []source.Reject) error) (int64, []source.Reject, error)
}

// Committer is a Source that keeps what a run read until the run succeeded: the files
// source then moves its files to done/. A failed run leaves them, so its retry reads them
// again.
type Committer interface {
	Commit(ctx context.Context) error
}

// Sources makes a fresh Source for each run, by the job's source name ("files", "polygon").
type Sources map[string]func() (source.Source, error)

// Deps are what a Leader runs on.
type Deps struct {
	Config Config
	// Pool is the primary's: the lock's dedicated connection is made from its config.
	Pool    *pgxpool.Pool
	Sink    Sink
	Sources Sources
	// Registry takes the pipeline's metrics (the service's registry); nil: none registered.
	Registry prometheus.Registerer
	Log      *slog.Logger
	// Poll is how often the leader looks at the schedule, the queue and cancels (default 1s).
	Poll time.Duration
	// RetryBase and RetryMax bound a failed attempt's backoff (defaults 5s and 10m); the
	// source's Retry-After, if longer, wins.
	RetryBase, RetryMax time.Duration
	// Worker names this process in runs (default host/pid).
	Worker string
}

// Leader is one process's part in the pipeline.
type Leader struct {
	d       Deps
	store   *store.Store
	m       *metrics
	leading atomic.Bool

	mu      sync.Mutex
	running map[int64]context.CancelCauseFunc
}

// Causes of a run's context ending.
var (
	errLeaderLost = errors.New("leader lost")
	errCancelled  = errors.New("cancelled by CancelIngestionRun")
)

// New returns a Leader; Run runs it.
func New(d Deps) *Leader {
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	if d.RetryBase <= 0 {
		d.RetryBase = 5 * time.Second
	}
	if d.RetryMax <= 0 {
		d.RetryMax = 10 * time.Minute
	}
	if d.Config.Workers < 1 {
		d.Config.Workers = 2
	}
	if d.Config.LeaderPoll <= 0 {
		d.Config.LeaderPoll = 5 * time.Second
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Worker == "" {
		host, _ := os.Hostname()
		d.Worker = fmt.Sprintf("%s/%d", host, os.Getpid())
	}
	return &Leader{d: d, store: store.New(d.Pool), m: newMetrics(d.Registry), running: map[int64]context.CancelCauseFunc{}}
}

// Leading reports whether this process leads now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// lockKey is the leader's advisory lock, computed by the server from a name of its own.
const lockKey = `hashtextextended('pgfleet.ingest.stock', 0)`

// Run tries to lead until ctx ends, every INGEST_LEADER_POLL while another process leads,
// and again after losing the lead. It returns ctx's error.
func (l *Leader) Run(ctx context.Context) error {
	for {
		err := l.session(ctx)
		l.setLeading(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			l.d.Log.Warn("ingest: leader session ended", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.d.Config.LeaderPoll):
		}
	}
}

func (l *Leader) setLeading(b bool) {
	l.leading.Store(b)
	if b {
		l.m.leader.Set(1)
	} else {
		l.m.leader.Set(0)
	}
}

// Connections is how many connections each stock process opens beside its pool for the
// pipeline: the leader lock's, held by every process, leading or waiting for the lead (the
// deployment's connection budget reads it).
const Connections = 1

// session connects, takes the lock when it is free, and leads until the connection fails
// or ctx ends. Closing the connection releases the lock.
func (l *Leader) session(ctx context.Context) error {
	conn, hangUp, err := pgpool.Dedicated(ctx, l.d.Pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer hangUp()
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+lockKey+`)`).Scan(&ok); err != nil {
			return fmt.Errorf("try lock: %w", err)
		}
		if ok {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.d.Config.LeaderPoll):
		}
	}
	l.setLeading(true)
	l.d.Log.Info("ingest: leading", "worker", l.d.Worker)
	lctx, cancel := context.WithCancelCause(ctx)
	done := make(chan error, 1)
	go func() { done <- l.lead(lctx) }()
	for {
		// Reads the lock's connection: a closed one (the server gone, the backend terminated)
		// shows here at once, a silent one at the ping.
		err := pgpool.AwaitWake(ctx, conn, l.d.Poll)
		if err == nil {
			pctx, pcancel := context.WithTimeout(ctx, 5*l.d.Poll)
			err = conn.Ping(pctx)
			pcancel()
		}
		select {
		case lerr := <-done:
			cancel(nil)
			return lerr
		default:
		}
		if err != nil {
			cancel(errLeaderLost) // the lock may be gone with the connection: stop every run now
			if lerr := <-done; lerr != nil && !errors.Is(lerr, errLeaderLost) {
				l.d.Log.Warn("ingest: lead ended", "err", lerr)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("lock connection: %w", err)
		}
	}
}

// lead requeues what a dead leader left running, then schedules, claims and watches runs
// until ctx ends; it returns after its runs have stopped.
func (l *Leader) lead(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	n, err := l.store.RequeueOrphans(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		l.d.Log.Info("ingest: requeued runs a lost leader left running", "runs", n)
	}
	finished := make(chan struct{}, l.d.Config.Workers)
	t := time.NewTicker(l.d.Poll)
	defer t.Stop()
	for {
		if err := l.schedule(ctx, time.Now()); err != nil && ctx.Err() == nil {
			l.d.Log.Warn("ingest: schedule", "err", err)
		}
		if err := l.watchCancels(ctx); err != nil && ctx.Err() == nil {
			l.d.Log.Warn("ingest: cancels", "err", err)
		}
		for l.busy() < l.d.Config.Workers && ctx.Err() == nil {
			run, job, ok, err := l.store.ClaimRun(ctx, l.d.Worker)
			if err != nil {
				if ctx.Err() == nil {
					l.d.Log.Warn("ingest: claim", "err", err)
				}
				break
			}
			if !ok {
				break
			}
			rctx, cancel := context.WithCancelCause(ctx)
			l.mu.Lock()
			l.running[run.RunID] = cancel
			l.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				l.execute(ctx, rctx, run, job)
				l.mu.Lock()
				delete(l.running, run.RunID)
				l.mu.Unlock()
				cancel(nil)
				finished <- struct{}{}
			}()
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-t.C:
		case <-finished:
		}
	}
}

func (l *Leader) busy() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.running)
}

// schedule queues the latest due tick of every active job, if not queued yet.
func (l *Leader) schedule(ctx context.Context, now time.Time) error {
	jobs, err := l.store.AllIngestionJobs(ctx)
	if err != nil {
		return err
	}
	last, err := l.store.LastScheduledTimes(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Paused {
			continue
		}
		sched, err := ParseSchedule(j.Schedule)
		if err != nil {
			continue // the API refuses bad schedules; one stored before a stricter rule waits for an update
		}
		after, ok := last[j.JobID]
		if !ok {
			after = j.CreateTime
		}
		tick, due := latestTick(sched, after, now)
		if !due {
			continue
		}
		if _, err := l.store.QueueScheduledRun(ctx, j.JobID, tick); err != nil {
			return err
		}
	}
	return nil
}

// watchCancels cancels the context of each running run whose cancel was asked.
func (l *Leader) watchCancels(ctx context.Context) error {
	l.mu.Lock()
	ids := make([]int64, 0, len(l.running))
	for id := range l.running {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	cancelled, err := l.store.CancelRequested(ctx, ids)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, id := range cancelled {
		if cancel := l.running[id]; cancel != nil {
			cancel(errCancelled)
		}
	}
	return nil
}

// execute makes one attempt of a run and records how it ended. lctx is the lead's, rctx the
// run's own (cancelled by a cancel request, or with the lead).
func (l *Leader) execute(lctx, rctx context.Context, run store.IngestionRun, job store.IngestionJob) {
	start := time.Now()
	log := l.d.Log.With("run_id", run.RunID, "job_id", job.JobID, "attempt", run.Attempt)
	log.Info("ingest: run started")
	src, err := l.attempt(rctx, run, job)
	l.m.seconds.WithLabelValues(job.JobID).Observe(time.Since(start).Seconds())
	if lctx.Err() != nil {
		if errors.Is(context.Cause(lctx), errLeaderLost) {
			// The lock may be gone: the run stays running in the table for the next leader
			// to requeue (another attempt).
			log.Warn("ingest: run stopped, leader lost", "err", err)
			return
		}
		// The process is shutting down, the database is fine: the run goes back to the
		// queue at once, without spending an attempt, for whoever leads next.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(lctx), 5*time.Second)
		defer cancel()
		if err := l.store.RequeueRun(ctx, run.RunID, "stopped: the leading process shut down"); err != nil {
			log.Warn("ingest: requeue the run at shutdown", "err", err)
		}
		return
	}
	state, text := store.RunSucceeded, ""
	var next time.Time
	switch {
	case errors.Is(context.Cause(rctx), errCancelled):
		state, text = store.RunCancelled, errCancelled.Error()
	case err == nil:
		if c, ok := src.(Committer); ok {
			if err = c.Commit(lctx); err != nil {
				state, text = store.RunFailed, "after the run: "+err.Error()
			}
		}
	default:
		text = err.Error()
		state = store.RunFailed
		if after, ok := source.Transient(err); ok && run.Attempt < job.MaxAttempts {
			state = store.RunQueued
			next = time.Now().Add(max(after, retry.Backoff(l.d.RetryBase, l.d.RetryMax, int(run.Attempt))))
		}
	}
	if state == store.RunQueued {
		err = l.store.RetryRun(lctx, run.RunID, text, next)
	} else {
		err = l.store.FinishRun(lctx, run.RunID, state, text)
	}
	if err != nil {
		log.Error("ingest: record the run's end", "state", state, "err", err)
		return
	}
	l.m.runs.WithLabelValues(job.JobID, state).Inc()
	if state == store.RunSucceeded {
		l.m.lastSuccess.WithLabelValues(job.JobID).SetToCurrentTime()
	}
	log.Info("ingest: run ended", "state", state, "err", text, "next_attempt", next)
}

// attempt fetches the job's bars and writes them batch by batch.
func (l *Leader) attempt(ctx context.Context, run store.IngestionRun, job store.IngestionJob) (src source.Source, err error) {
	makeSource := l.d.Sources[job.Source]
	if makeSource == nil {
		return nil, fmt.Errorf("source %q is not configured in this deployment", job.Source)
	}
	if src, err = makeSource(); err != nil {
		return nil, fmt.Errorf("source %q: %w", job.Source, err)
	}
	stored, err := l.store.RejectCount(ctx, run.RunID) // a retry numbers on
	if err != nil {
		return src, err
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	req := source.Request{Symbols: job.Symbols, From: today.AddDate(0, 0, -int(job.LookbackDays)), To: today.AddDate(0, 0, 1)}
	emit := func(bars []source.Bar, rejects []source.Reject) error {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var kept int64
		accepted, _, err := l.d.Sink.IngestBars(ctx, bars, job.AppendOnly,
			func(ctx context.Context, tx pgx.Tx, accepted int64, barRejects []source.Reject) error {
				all := slices.Concat(rejects, barRejects)
				kept = min(int64(len(all)), max(0, l.d.Config.MaxRejects-stored))
				rows := make([]store.IngestionReject, kept)
				for i := range rows {
					rows[i] = store.IngestionReject{Ref: clean(all[i].Ref, 1024), Reason: clean(all[i].Reason, 1024), Raw: clean(all[i].Raw, maxRaw)}
				}
				l.m.rows.WithLabelValues(job.JobID, "rejected").Add(float64(len(all)))
				return l.store.WithTx(tx).RecordBatch(ctx, run.RunID, accepted, int64(len(all)), stored+1, rows)
			})
		if err != nil {
			err = fmt.Errorf("write batch: %w", err)
			// The database's passing troubles (unreachable, a lock wait timed out, a conflict)
			// are worth another attempt, as a source's are; bad data is not.
			if retry.Unavailable(err) || errors.Is(err, lock.ErrTimeout) || retry.Classify(err) == retry.Retryable {
				return &source.TransientError{Err: err}
			}
			return err
		}
		l.m.rows.WithLabelValues(job.JobID, "accepted").Add(float64(accepted))
		stored += kept
		return nil
	}
	return src, fetch(ctx, l.d.Log, src, req, emit)
}

// fetch runs the source, turning a panic in it into the run's error (its stack goes to the
// log). A panic in a goroutine the connector started cannot be caught here.
func fetch(ctx context.Context, log *slog.Logger, src source.Source, req source.Request, emit func([]source.Bar, []source.Reject) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic in source %s: %v", src.Name(), p)
			log.Error("ingest: panic in source", "source", src.Name(), "panic", p, "stack", string(debug.Stack()))
		}
	}()
	return src.Fetch(ctx, req, emit)
}

// maxRaw is the most of a reject's raw input stored.
const maxRaw = 256

// clean makes s storable as text (no NUL, valid UTF-8) and at most n bytes, cut on a rune.
func clean(s string, n int) string {
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

type metrics struct {
	runs        *prometheus.CounterVec
	rows        *prometheus.CounterVec
	seconds     *prometheus.HistogramVec
	leader      prometheus.Gauge
	lastSuccess *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	return &metrics{
		runs: f.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_ingest_runs_total",
			Help: "Ingestion run attempts ended, by job and the state they left the run in (queued: to be retried)."}, []string{"ingestion_job", "state"}),
		rows: f.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_ingest_rows_total",
			Help: "Bars ingestion runs wrote (accepted) or quarantined (rejected), by job."}, []string{"ingestion_job", "outcome"}),
		seconds: f.NewHistogramVec(prometheus.HistogramOpts{Name: "pgfleet_ingest_run_seconds",
			Help:    "Duration of ingestion run attempts, by job.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 9)}, []string{"ingestion_job"}),
		leader: f.NewGauge(prometheus.GaugeOpts{Name: "pgfleet_ingest_leader",
			Help: "1 while this process leads the ingestion pipeline."}),
		lastSuccess: f.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_ingest_last_success_timestamp_seconds",
			Help: "Unix time of the job's last successful ingestion run in this process."}, []string{"ingestion_job"}),
	}
}
