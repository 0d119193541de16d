package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
)

// Config is a service's outbox settings.
type Config struct {
	Retention time.Duration `env:"OUTBOX_RETENTION, default=168h" help:"how long change events are kept for Watch...Events consumers to resume from; older ones are pruned and a consumer whose cursor they passed gets CURSOR_EXPIRED; 0: keep them all"`
}

// Connections is how many connections a process's Outbox opens beside its pool: the
// sequencer's (holding, or waiting for, the schema's lock) and the feed's LISTEN.
const Connections = 2

// Tuning that needs no setting.
const (
	// ringSize is how many recent events a process keeps in memory for its subscribers: a
	// subscriber within it reads no table, one behind it reads the table a page at a time.
	ringSize = 16384
	// feedPage is the most events the feed reads per statement.
	feedPage = 1000
	// poll bounds how long a missed notification (a reconnecting LISTEN) delays the feed.
	poll = time.Second
	// pruneEvery is how often the sequencer's leader prunes.
	pruneEvery = time.Minute
)

// Outbox is a service process's view of its schema's outbox: it runs a Sequencer (one
// process of the fleet at a time gives positions), a feed that follows the sequenced events
// into a ring in memory that every subscriber of the process shares, and, on the leader,
// pruning. Writers Append in their transaction and call Committed after it; subscribers
// read with Next (or Read/Recent and Wait).
type Outbox struct {
	schema string
	pool   *pgxpool.Pool
	cfg    Config
	seq    *Sequencer
	log    *slog.Logger
	wake   chan struct{} // Committed's coalesced wake-ups

	mu      sync.RWMutex
	ring    []Record      // the events (base, head], every type, in position order
	base    int64         // position before the ring's first event
	head    int64         // last position read
	changed chan struct{} // closed when head moves

	metrics outboxMetrics
}

type outboxMetrics struct {
	sequenced, pruned, tableReads prometheus.Counter
	head, leader                  prometheus.GaugeFunc
}

// New returns the outbox of schema on pool (the primary). Register its metrics with reg (nil:
// unregistered); Run it for as long as the service runs.
func New(ctx context.Context, schema string, pool *pgxpool.Pool, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Outbox, error) {
	if log == nil {
		log = slog.Default()
	}
	last, err := Last(ctx, pool, schema)
	if err != nil {
		return nil, err
	}
	o := &Outbox{
		schema:  schema,
		pool:    pool,
		cfg:     cfg,
		log:     log,
		wake:    make(chan struct{}, 1),
		base:    last,
		head:    last,
		changed: make(chan struct{}),
	}
	o.seq = NewSequencer(SequencerConfig{Schema: schema, Conn: pool.Config().ConnConfig, Log: log})
	o.metrics = outboxMetrics{
		sequenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgfleet_outbox_sequenced_events_total",
			Help: "Change events this process's sequencer gave a position (only the leader sequences)."}),
		pruned: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgfleet_outbox_pruned_events_total",
			Help: "Change events deleted by OUTBOX_RETENTION."}),
		tableReads: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgfleet_outbox_table_reads_total",
			Help: "Reads of events older than the process's in-memory ring, served from the table."}),
		head: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgfleet_outbox_position",
			Help: "Position of the last change event this process has read."}, func() float64 { return float64(o.Head()) }),
		leader: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgfleet_outbox_leader",
			Help: "1 while this process's sequencer holds its schema's lock and gives positions."}, func() float64 {
			if o.seq.Leader() {
				return 1
			}
			return 0
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{o.metrics.sequenced, o.metrics.pruned, o.metrics.tableReads, o.metrics.head, o.metrics.leader} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("outbox: metrics: %w", err)
			}
		}
	}
	return o, nil
}

// Schema is the outbox's schema.
func (o *Outbox) Schema() string { return o.schema }

// Run runs the sequencer, the feed, the wake-ups and pruning until ctx ends.
func (o *Outbox) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, f := range []func(context.Context){o.runSequencer, o.follow, o.sendWakes, o.prune} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	wg.Wait()
}

func (o *Outbox) runSequencer(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = o.seq.Run(ctx)
	}()
	// Counted by difference, so the sequencer needs no metrics of its own.
	var counted int64
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		n := o.seq.Sequenced()
		o.metrics.sequenced.Add(float64(n - counted))
		counted = n
	}
}

// Append appends events in tx, the transaction of the change they describe (see Append).
func (o *Outbox) Append(ctx context.Context, tx pgx.Tx, events ...Event) error {
	return Append(ctx, tx, o.schema, events...)
}

// Committed wakes the sequencer after a transaction that appended has committed, so that
// its events are numbered now rather than at the sequencer's next poll. It never blocks:
// wake-ups that arrive while one is being sent are coalesced into the next one.
func (o *Outbox) Committed() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *Outbox) sendWakes(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.wake:
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second) // a busy pool delays, never holds, the wake-ups
		err := Wake(wctx, o.pool, o.schema)
		cancel()
		if err != nil && ctx.Err() == nil {
			o.log.Debug("outbox: wake failed; the sequencer's poll picks the events up", "schema", o.schema, "err", err)
		}
	}
}

func (o *Outbox) prune(ctx context.Context) {
	if o.cfg.Retention <= 0 {
		return
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !o.seq.Leader() {
			continue
		}
		n, err := Prune(ctx, o.pool, o.schema, Retention{MaxAge: o.cfg.Retention})
		if err != nil {
			if ctx.Err() == nil {
				o.log.Warn("outbox: prune failed", "schema", o.schema, "err", err)
			}
			continue
		}
		o.metrics.pruned.Add(float64(n))
	}
}

// follow reads the sequenced events into the ring as they come: woken by the sequencer's
// notification on a connection of its own (LISTEN only wakes: the events are read from the
// table), and every poll regardless.
func (o *Outbox) follow(ctx context.Context) {
	for ctx.Err() == nil {
		err := o.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		o.log.Warn("outbox: feed connection lost, reconnecting", "schema", o.schema, "err", err)
		// Meanwhile, poll: subscribers keep receiving while LISTEN is down.
		if err := o.catchUp(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("outbox: feed read failed", "schema", o.schema, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(poll):
		}
	}
}

func (o *Outbox) listen(ctx context.Context) error {
	conn, hangUp, err := pgpool.Dedicated(ctx, o.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer hangUp()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{SequencedChannel(o.schema)}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		// After LISTEN: whatever was sequenced before it is read here.
		if err := o.catchUp(ctx); err != nil {
			return err
		}
		if err := pgpool.AwaitWake(ctx, conn, poll); err != nil {
			return err
		}
	}
}

// catchUp reads every event after head into the ring, a page at a time.
func (o *Outbox) catchUp(ctx context.Context) error {
	for {
		o.mu.RLock()
		head := o.head
		o.mu.RUnlock()
		recs, err := Read(ctx, o.pool, o.schema, head, nil, feedPage)
		if errors.Is(err, ErrCursorPruned) {
			// Pruned past the ring's head (a process idle through OUTBOX_RETENTION): restart the
			// ring from the oldest kept event; subscribers behind it get ErrCursorPruned.
			oldest, err := Oldest(ctx, o.pool, o.schema)
			if err != nil {
				return err
			}
			o.mu.Lock()
			o.ring, o.base, o.head = nil, oldest-1, oldest-1
			o.mu.Unlock()
			continue
		}
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		o.mu.Lock()
		o.ring = append(o.ring, recs...)
		if over := len(o.ring) - ringSize; over > 0 {
			// Drop a quarter more than needed, so that the copy is amortized.
			drop := min(len(o.ring), over+ringSize/4)
			o.base = o.ring[drop-1].Position
			o.ring = slices.Delete(o.ring, 0, drop)
		}
		o.head = recs[len(recs)-1].Position
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
		if len(recs) < feedPage {
			return nil
		}
	}
}

// Head returns the position of the last event this process has read: every event up to it
// is committed and can be read.
func (o *Outbox) Head() int64 {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.head
}

// Wait blocks until Head() > after, or ctx ends (it then returns ctx's error).
func (o *Outbox) Wait(ctx context.Context, after int64) error {
	for {
		o.mu.RLock()
		head, changed := o.head, o.changed
		o.mu.RUnlock()
		if head > after {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Recent returns the events after `after` that keep accepts (every one if keep is nil) from
// the ring, and next, the cursor to go on from (every event up to it has been looked at). ok
// is false when the ring no longer holds every event after `after`: a latest-value stream
// then takes a fresh snapshot (after noting Head()), an event stream reads the table (Read).
// keep runs under the ring's read lock, on every event, for every subscriber: it must be
// cheap and must not call the Outbox. Only the events it keeps are copied, so a subscriber
// pays for what it watches, not for every event of the schema.
func (o *Outbox) Recent(after int64, keep func(*Record) bool) (recs []Record, next int64, ok bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	if after < o.base {
		return nil, after, false
	}
	if after >= o.head {
		return nil, after, true
	}
	// Positions are gapless, so the event after `after` sits at index after-base.
	ring := o.ring[after-o.base:]
	for i := range ring {
		if keep == nil || keep(&ring[i]) {
			recs = append(recs, ring[i])
		}
	}
	return recs, o.head, true
}

// OfTypes is a Recent filter keeping the events of the given types (every one if none).
func OfTypes(types []string) func(*Record) bool {
	if len(types) == 0 {
		return nil
	}
	return func(r *Record) bool { return slices.Contains(types, r.Type) }
}

// Read returns up to limit events after `after` of the given types (all if none), from the
// ring when it holds them, else from the table, and next, the cursor to go on from (every
// event up to it has been looked at; equal to `after` when there was nothing yet). It returns
// ErrCursorPruned when events after `after` have been pruned.
func (o *Outbox) Read(ctx context.Context, after int64, types []string, limit int) (recs []Record, next int64, err error) {
	if limit < 1 {
		limit = DefaultLimit
	}
	if recs, next, ok := o.Recent(after, OfTypes(types)); ok {
		if len(recs) > limit {
			recs = recs[:limit]
			next = recs[limit-1].Position
		}
		return recs, next, nil
	}
	o.metrics.tableReads.Inc()
	// The table's last position, read first: the page below covers at least up to it.
	last, err := Last(ctx, o.pool, o.schema)
	if err != nil {
		return nil, after, err
	}
	recs, err = Read(ctx, o.pool, o.schema, after, types, limit)
	if err != nil {
		return nil, after, err
	}
	if len(recs) == limit {
		return recs, recs[limit-1].Position, nil
	}
	next = max(after, last)
	if len(recs) > 0 {
		next = max(next, recs[len(recs)-1].Position)
	}
	return recs, next, nil
}

// Next blocks until there are events after `after` of the given types (all if none), then
// returns up to limit of them in position order and the cursor to go on from. It is the
// loop of a subscriber: one that reads slowly finds, at its next call, everything that
// happened meanwhile (a latest-value stream keeps the newest per key); memory never grows
// with its delay (the ring is shared, the table is read a page at a time). It returns
// ErrCursorPruned when events after `after` have been pruned, and ctx's error when it ends.
func (o *Outbox) Next(ctx context.Context, after int64, types []string, limit int) ([]Record, int64, error) {
	for {
		if err := o.Wait(ctx, after); err != nil {
			return nil, after, err
		}
		recs, next, err := o.Read(ctx, after, types, limit)
		if err != nil || len(recs) > 0 {
			return recs, next, err
		}
		after = next
	}
}

// Last returns the table's last position (it may be ahead of Head by events the feed has
// not read yet).
func (o *Outbox) Last(ctx context.Context) (int64, error) { return Last(ctx, o.pool, o.schema) }

// Oldest returns the position of the oldest event still kept.
func (o *Outbox) Oldest(ctx context.Context) (int64, error) { return Oldest(ctx, o.pool, o.schema) }
