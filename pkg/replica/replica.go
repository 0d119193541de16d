// Package replica chooses where a read runs: on a streaming replica (hot standby) whose replay
// lag is within a bound and which has replayed a given WAL position, else on the primary. A
// Router checks each replica periodically (reachable, in recovery, replay position, lag in time
// and bytes) and exports the figures to Prometheus. A replica's failure never fails a read: the
// read goes to the primary.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/retry"
)

// Config is the replicas' environment, read with go-envconfig.
type Config struct {
	// ReadURL lists the replicas: one postgres:// URL, or several separated by commas (each
	// starting with postgres:// or postgresql://). Empty: no replica, every read on the primary.
	ReadURL string `env:"DATABASE_READ_URL" json:"-" help:"postgres:// URL of a read replica, or several separated by commas; empty: all reads on the primary; passwords are secret" secret:"password"`
	// MaxLag is the most replay lag a replica may have and still serve reads.
	MaxLag time.Duration `env:"MAX_REPLICA_LAG, default=10s" help:"most replay lag (time) a replica may have and still serve reads"`
	// Interval is how often each replica is checked.
	Interval time.Duration `env:"REPLICA_CHECK_INTERVAL, default=1s" help:"period of each replica's check (reachable, in recovery, replay position and lag)"`
	// Wait bounds how long a read carrying a consistency token waits for a replica to replay
	// the write it names before it goes to the primary.
	Wait time.Duration `env:"REPLICA_WAIT, default=100ms" help:"most a read carrying a consistency token waits for a replica to replay that write before it runs on the primary"`
}

// Validate reports settings New would refuse, without reaching a database.
func (c Config) Validate() error {
	if c.MaxLag < 0 || c.Interval <= 0 || c.Wait < 0 {
		return fmt.Errorf("MAX_REPLICA_LAG (%v) and REPLICA_WAIT (%v) must not be negative and REPLICA_CHECK_INTERVAL (%v) must be positive", c.MaxLag, c.Wait, c.Interval)
	}
	for i, u := range SplitURLs(c.ReadURL) {
		if _, err := pgconn.ParseConfig(u); err != nil { // its errors redact the password
			return fmt.Errorf("parse DATABASE_READ_URL (replica %d): %w", i+1, err)
		}
	}
	return nil
}

// unknownLag is the lag of a replica behind the primary that has replayed no commit since it
// started: not usable, whatever MaxLag.
const unknownLag = time.Duration(1<<63 - 1)

// A read waiting for a replica to replay a write asks again after 1ms, then twice as long each
// time, up to 10ms: a write just made is usually replayed within a millisecond or two on a
// healthy standby (a fixed 10ms poll put nearly half of the token reads over 10ms in make
// bench), and a lagging one is not asked a thousand times a second.
const (
	firstPoll = time.Millisecond
	maxPoll   = 10 * time.Millisecond
)

// nextPoll returns the pause after one of poll.
func nextPoll(poll time.Duration) time.Duration { return min(2*poll, maxPoll) }

// Reasons, the reason label of pgfleet_db_reads_total.
const (
	ReasonReplica     = "replica"      // served by a replica
	ReasonNoReplica   = "no_replica"   // no replica reachable and in recovery (or none configured)
	ReasonLagging     = "lagging"      // usable replicas all lag beyond MaxLag
	ReasonNotReplayed = "not_replayed" // replicas within MaxLag have not replayed the position asked for (or the floor)
)

// state is what a replica's last check found.
type state struct {
	checked   bool      // false until the first check
	at        time.Time // when the check ended (or a failed read marked the replica down)
	up        bool      // reachable and in recovery
	replayLSN pgserver.LSN
	lag       time.Duration // replay lag in time; meaningful when up
	lagBytes  uint64
}

type replica struct {
	label string // host:port
	pool  *pgxpool.Pool
	state atomic.Pointer[state]
	reads atomic.Int64 // reads routed to it
}

// Router routes reads between a primary and its replicas. Its methods are safe for concurrent use.
type Router struct {
	primary  *pgxpool.Pool
	cfg      Config
	log      *slog.Logger
	replicas []*replica
	next     atomic.Uint64 // round robin
	floor    atomic.Uint64 // a WAL position every read needs replayed (SetFloor)

	lagSeconds *prometheus.GaugeVec
	lagBytes   *prometheus.GaugeVec
	up         *prometheus.GaugeVec
	reads      *prometheus.CounterVec
	readCounts [len(readRoutes)]atomic.Int64 // pgfleet_db_reads_total's series, for Status
}

// readRoutes are the series of pgfleet_db_reads_total, in Status's order.
var readRoutes = [...]ReadCount{
	{Target: "replica", Reason: ReasonReplica},
	{Target: "primary", Reason: ReasonNoReplica},
	{Target: "primary", Reason: ReasonLagging},
	{Target: "primary", Reason: ReasonNotReplayed},
}

// SplitURLs splits DATABASE_READ_URL into one URL per replica: a comma starts a new URL only
// before postgres:// or postgresql://, so a URL's own comma-separated host list stays whole.
func SplitURLs(s string) []string {
	var urls []string
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if len(urls) > 0 && !strings.HasPrefix(part, "postgres://") && !strings.HasPrefix(part, "postgresql://") {
			urls[len(urls)-1] += "," + part
			continue
		}
		urls = append(urls, part)
	}
	return urls
}

// New returns a Router over primary and the replicas of cfg.ReadURL, each with a small pool of
// its own (pkg/pgpool). It does not wait for the replicas: until Run's first check finds one
// usable, reads go to the primary. Metrics are registered on reg (none if nil).
func New(ctx context.Context, primary *pgxpool.Pool, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Router{primary: primary, cfg: cfg, log: log,
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_db_replica_lag_seconds",
			Help: "Replay lag of the replica in time at its last check: 0 once it has replayed the primary's position."}, []string{"replica"}),
		lagBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_db_replica_lag_bytes",
			Help: "WAL bytes between the primary's position and the replica's replay position at its last check."}, []string{"replica"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_db_replica_up",
			Help: "1 if the replica serves reads (reachable, in recovery, lag within MAX_REPLICA_LAG, past the service's migrations), else 0."}, []string{"replica"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_db_reads_total",
			Help: "Reads routed, by target (replica or primary) and reason."}, []string{"target", "reason"}),
	}
	for i, u := range SplitURLs(cfg.ReadURL) {
		pc, err := pgconn.ParseConfig(u) // its errors redact the password
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("parse DATABASE_READ_URL (replica %d): %w", i+1, err)
		}
		// As large as the primary's: the reads it takes over ran there.
		pool, err := pgpool.New(ctx, pgpool.Config{URL: u, MaxConns: primary.Config().MaxConns, Health: cfg.Interval})
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("DATABASE_READ_URL (replica %d): %w", i+1, err)
		}
		rep := &replica{label: net.JoinHostPort(pc.Host, strconv.Itoa(int(pc.Port))), pool: pool}
		rep.state.Store(&state{})
		r.replicas = append(r.replicas, rep)
		r.up.WithLabelValues(rep.label).Set(0)
	}
	for _, rc := range readRoutes {
		r.reads.WithLabelValues(rc.Target, rc.Reason)
	}
	if reg != nil {
		for _, c := range r.collectors() {
			if err := reg.Register(c); err != nil {
				r.Close()
				return nil, fmt.Errorf("register replica metrics: %w", err)
			}
		}
	}
	return r, nil
}

// Describe and Collect make the Router a prometheus.Collector of its metrics, for a caller
// that registers them after New (New's reg nil).
func (r *Router) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range r.collectors() {
		c.Describe(ch)
	}
}

// Collect: see Describe.
func (r *Router) Collect(ch chan<- prometheus.Metric) {
	for _, c := range r.collectors() {
		c.Collect(ch)
	}
}

func (r *Router) collectors() []prometheus.Collector {
	return []prometheus.Collector{r.lagSeconds, r.lagBytes, r.up, r.reads}
}

// Close closes the replicas' pools (not the primary's).
func (r *Router) Close() {
	for _, rep := range r.replicas {
		rep.pool.Close()
	}
}

// Run checks every replica at once, then every Interval, until ctx ends.
func (r *Router) Run(ctx context.Context) {
	if len(r.replicas) == 0 {
		return
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check checks every replica once, in parallel: the primary's WAL position is read once, then
// each replica's recovery state, replay position and last replayed commit's time. A check is
// bounded by Interval (at least a second).
func (r *Router) Check(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, max(r.cfg.Interval, time.Second))
	defer cancel()
	primaryLSN, perr := lsn(ctx, r.primary, "SELECT pg_current_wal_insert_lsn()::text")
	if perr != nil {
		r.log.Warn("replica check: primary's WAL position unknown, lag judged by time only", "err", perr)
	}
	var wg sync.WaitGroup
	for _, rep := range r.replicas {
		wg.Go(func() { r.checkOne(ctx, rep, primaryLSN, perr == nil) })
	}
	wg.Wait()
}

func (r *Router) checkOne(ctx context.Context, rep *replica, primaryLSN pgserver.LSN, primaryKnown bool) {
	const q = `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		EXTRACT(epoch FROM now() - pg_last_xact_replay_timestamp())::float8`
	var (
		inRecovery bool
		replay     *string
		lagSecs    *float64
	)
	was := rep.state.Load()
	st := &state{checked: true}
	err := rep.pool.QueryRow(ctx, q).Scan(&inRecovery, &replay, &lagSecs)
	st.at = time.Now()
	switch {
	case err != nil:
		r.logChange(was, "replica check failed", rep, "err", err)
	case !inRecovery || replay == nil:
		r.logChange(was, "replica not in recovery (promoted, or a primary): not used", rep)
	default:
		l, perr := pgserver.ParseLSN(*replay)
		if perr != nil {
			r.logChange(was, "replica check failed", rep, "err", perr)
			break
		}
		st.up, st.replayLSN = true, l
		switch {
		case primaryKnown && l >= primaryLSN:
			st.lag = 0
		case lagSecs == nil: // behind, and no commit replayed since it started: unknown
			st.lag = unknownLag
		default:
			st.lag = max(0, time.Duration(*lagSecs*float64(time.Second)))
		}
		if primaryKnown && primaryLSN > l {
			st.lagBytes = uint64(primaryLSN - l)
		}
		if !was.up {
			r.log.Info("replica up", "replica", rep.label, "replay_lsn", l.String(), "lag", st.lag)
		}
	}
	rep.state.Store(st)
	usable := 0.0
	if r.usable(st) {
		usable = 1
	}
	r.up.WithLabelValues(rep.label).Set(usable)
	if st.up {
		r.lagSeconds.WithLabelValues(rep.label).Set(min(st.lag.Seconds(), 1e9))
		r.lagBytes.WithLabelValues(rep.label).Set(float64(st.lagBytes))
	}
}

// logChange logs msg when a replica that was up is not any more, or is not at its first check.
func (r *Router) logChange(was *state, msg string, rep *replica, args ...any) {
	if was.up || !was.checked {
		r.log.Warn(msg, append([]any{"replica", rep.label}, args...)...)
	}
}

// usable reports whether a replica serves reads by its last check: up, within MaxLag, and past
// the floor (the migrations its service applied at start).
func (r *Router) usable(st *state) bool {
	return st.up && st.lag <= r.cfg.MaxLag && st.replayLSN >= pgserver.LSN(r.floor.Load())
}

// SetFloor makes every read need a replica that has replayed lsn, whatever position it asks
// for: reads that would go to a replica behind it go to the primary (reason not_replayed).
// A service sets it to the primary's position after its migrations (SetFloorToPrimary), so no
// read runs on a replica that lacks a table or column its code reads, however small the
// replica's lag in time. The floor only rises.
func (r *Router) SetFloor(lsn pgserver.LSN) {
	for {
		cur := r.floor.Load()
		if uint64(lsn) <= cur || r.floor.CompareAndSwap(cur, uint64(lsn)) {
			return
		}
	}
}

// SetFloorToPrimary sets the floor (SetFloor) to the primary's current WAL insert position:
// past the commit records of the migrations just applied. Not the write position
// (pg_current_wal_lsn): with synchronous_commit=off a migration's commit may not be written
// yet, and a replica paused before it passed that floor and served reads without the tables
// (TestStartServer_replicaBehindMigrations, 1 CI run in 4). It does nothing without replicas.
func (r *Router) SetFloorToPrimary(ctx context.Context) error {
	if len(r.replicas) == 0 {
		return nil
	}
	l, err := lsn(ctx, r.primary, "SELECT pg_current_wal_insert_lsn()::text")
	if err != nil {
		return fmt.Errorf("read the primary's WAL position: %w", err)
	}
	r.SetFloor(l)
	return nil
}

// pick chooses a replica that has replayed minLSN and the floor, round robin, or says why
// there is none.
func (r *Router) pick(minLSN pgserver.LSN) (*replica, string) {
	minLSN = max(minLSN, pgserver.LSN(r.floor.Load()))
	n := len(r.replicas)
	if n == 0 {
		return nil, ReasonNoReplica
	}
	start := int(r.next.Add(1) % uint64(n))
	reason := ReasonNoReplica
	for i := range n {
		rep := r.replicas[(start+i)%n]
		st := rep.state.Load()
		switch {
		case !st.up:
		case st.lag > r.cfg.MaxLag:
			if reason == ReasonNoReplica {
				reason = ReasonLagging
			}
		case st.replayLSN < minLSN:
			reason = ReasonNotReplayed
		default:
			return rep, ReasonReplica
		}
	}
	return nil, reason
}

func (r *Router) count(rep *replica, reason string) (*pgxpool.Pool, bool) {
	if rep == nil {
		r.countRead("primary", reason)
		return r.primary, false
	}
	rep.reads.Add(1)
	r.countRead("replica", reason)
	return rep.pool, true
}

// countRead counts a read in pgfleet_db_reads_total and in Status's totals.
func (r *Router) countRead(target, reason string) {
	r.reads.WithLabelValues(target, reason).Inc()
	for i, rc := range readRoutes {
		if rc.Target == target && rc.Reason == reason {
			r.readCounts[i].Add(1)
		}
	}
}

// Reader returns the pool a read runs on: a usable replica (its lag within MaxLag at its last
// check) that has replayed minLSN (0: any position), spread over the usable ones round robin;
// else the primary, with onReplica false. It never fails and never waits.
func (r *Router) Reader(minLSN pgserver.LSN) (pool *pgxpool.Pool, onReplica bool) {
	return r.count(r.pick(minLSN))
}

// WaitReader is Reader for read-your-writes: if no replica has replayed minLSN at its last
// check, it asks a usable one how far it has replayed (after 1ms, then up to every 10ms), for
// up to wait, and returns it once it reaches minLSN; else (or once ctx ends) the primary. It
// never fails.
func (r *Router) WaitReader(ctx context.Context, minLSN pgserver.LSN, wait time.Duration) (pool *pgxpool.Pool, onReplica bool) {
	rep, conn, reason := r.waitReplayed(ctx, minLSN, time.Now().Add(wait))
	if conn != nil {
		conn.Release()
	}
	return r.count(rep, reason)
}

// waitReplayed chooses where a read that must see minLSN runs: a replica whose last check saw
// it replayed, else a usable one, asked until deadline. It returns the connection on which the
// position was seen replayed (the caller releases it), or no replica and why.
func (r *Router) waitReplayed(ctx context.Context, minLSN pgserver.LSN, deadline time.Time) (*replica, *pgxpool.Conn, string) {
	rep, reason := r.pick(minLSN)
	if reason == ReasonNotReplayed {
		rep, reason = r.pick(0) // usable, past the floor: wait for it to replay minLSN
	}
	if rep == nil {
		return nil, nil, reason
	}
	conn := r.replayedConn(ctx, rep, max(minLSN, pgserver.LSN(r.floor.Load())), deadline)
	if conn == nil {
		return nil, nil, ReasonNotReplayed
	}
	return rep, conn, ReasonReplica
}

// markDown marks rep down until its next check, after a read failed because it was lost.
func (r *Router) markDown(rep *replica) {
	rep.state.Store(&state{checked: true, at: time.Now()})
	r.up.WithLabelValues(rep.label).Set(0)
}

// replicaFault reports whether err is the replica's doing rather than the read's: the
// replica lost or unreachable, or a query canceled by a conflict with recovery (40001).
func replicaFault(err error) bool {
	var pgErr *pgconn.PgError
	return lost(err) || (errors.As(err, &pgErr) && pgErr.Code == "40001")
}

// lost reports whether err says the replica is unreachable or going away (refused, lost or
// shut-down connections; not a canceled or expired context).
func lost(err error) bool { return retry.Unavailable(err) }

// Replicas returns the replicas' labels (host:port), in DATABASE_READ_URL's order.
func (r *Router) Replicas() []string {
	labels := make([]string, len(r.replicas))
	for i, rep := range r.replicas {
		labels[i] = rep.label
	}
	return labels
}

var errNoLSN = errors.New("no WAL position (NULL): not a standby")

func lsn(ctx context.Context, pool *pgxpool.Pool, sql string) (pgserver.LSN, error) {
	var text *string
	if err := pool.QueryRow(ctx, sql).Scan(&text); err != nil {
		return 0, err
	}
	if text == nil {
		return 0, errNoLSN
	}
	return pgserver.ParseLSN(*text)
}

// ReplicaStatus is what the Router knows of one replica (see Status).
type ReplicaStatus struct {
	// Label is the replica's host:port, the replica label of its metrics.
	Label string
	// Checked is false until the replica's first check has ended.
	Checked bool
	// Up: reachable and in recovery (a hot standby) at the last check.
	Up bool
	// Usable: Up with its lag within MAX_REPLICA_LAG, past the service's migrations; reads may run on it
	// (pgfleet_db_replica_up).
	Usable bool
	// ReplayLSN is the last WAL position it had replayed at the last check; 0 when not Up.
	ReplayLSN pgserver.LSN
	// Lag is its replay lag in time at the last check: 0 once it has replayed the primary's
	// position, else the age of the last commit it replayed. LagKnown is false when it is not
	// Up, or behind with no commit replayed since it started.
	Lag      time.Duration
	LagKnown bool
	// LagBytes is the WAL between the primary's position and ReplayLSN at the last check.
	LagBytes uint64
	// CheckTime is when the last check ended, or when a read that failed on the replica
	// marked it down; zero before the first check.
	CheckTime time.Time
	// Reads counts the reads routed to it since the Router started.
	Reads int64
}

// ReadCount is one series of pgfleet_db_reads_total: reads routed to Target ("replica" or
// "primary") for Reason (ReasonReplica, ReasonNoReplica, ReasonLagging, ReasonNotReplayed).
type ReadCount struct {
	Target, Reason string
	Count          int64
}

// Status is a snapshot of the Router's replicas and of where its reads went.
type Status struct {
	// MaxLag is MAX_REPLICA_LAG.
	MaxLag time.Duration
	// Replicas, in DATABASE_READ_URL's order; empty when none is configured.
	Replicas []ReplicaStatus
	// Reads since the Router started, one entry per series of pgfleet_db_reads_total (the
	// replica one first), zeros included. The services count only the reads of Replica
	// calls, and only with a replica configured (see Router.UnaryInterceptor). A read that fails on a replica for the replica's
	// sake and runs again on the primary is counted twice: on the replica, then on the
	// primary as no_replica.
	Reads []ReadCount
}

// Status returns what the last checks found and the reads counted so far, without reaching
// a database. A nil Router (no routing) has an empty status.
func (r *Router) Status() Status {
	if r == nil {
		return Status{}
	}
	st := Status{MaxLag: r.cfg.MaxLag, Replicas: make([]ReplicaStatus, len(r.replicas)), Reads: make([]ReadCount, len(readRoutes))}
	for i, rep := range r.replicas {
		s := rep.state.Load()
		st.Replicas[i] = ReplicaStatus{
			Label:     rep.label,
			Checked:   s.checked,
			Up:        s.up,
			Usable:    r.usable(s),
			ReplayLSN: s.replayLSN,
			LagBytes:  s.lagBytes,
			CheckTime: s.at,
			Reads:     rep.reads.Load(),
		}
		if s.up && s.lag != unknownLag {
			st.Replicas[i].Lag, st.Replicas[i].LagKnown = s.lag, true
		}
	}
	for i, rc := range readRoutes {
		rc.Count = r.readCounts[i].Load()
		st.Reads[i] = rc
	}
	return st
}
