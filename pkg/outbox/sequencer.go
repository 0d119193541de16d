package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
)

// SequencerConfig configures a Sequencer.
type SequencerConfig struct {
	Schema string
	// Conn is the configuration of the sequencer's dedicated connection (copied at each
	// connect). Its session holds the advisory lock and runs every batch, so a sequencer that
	// lost its lock (its connection died) cannot give positions any more.
	Conn *pgx.ConnConfig
	// Batch is the most rows one statement sequences (default 1000).
	Batch int
	// Poll is how long it waits for a wake-up before looking anyway (default 1s).
	Poll time.Duration
	// Retry is how long it waits before reconnecting after an error (default 1s). A standby
	// already waiting for the lock takes over at once; Retry only delays a failed one's return.
	Retry time.Duration
	Log   *slog.Logger // default slog.Default()
}

// Sequencer gives the committed events of one schema their positions. Run it in every
// process that writes events: one at a time holds the schema's advisory lock and works, the
// others wait for it and take over when its session ends.
type Sequencer struct {
	cfg       SequencerConfig
	sequenced atomic.Int64
	leader    atomic.Bool
}

// NewSequencer returns a sequencer for cfg.Schema.
func NewSequencer(cfg SequencerConfig) *Sequencer {
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Sequencer{cfg: cfg}
}

// Sequenced returns how many events this sequencer has given a position.
func (s *Sequencer) Sequenced() int64 { return s.sequenced.Load() }

// Leader reports whether this sequencer holds the schema's lock.
func (s *Sequencer) Leader() bool { return s.leader.Load() }

// Run sequences until ctx ends, reconnecting (and waiting for the lock again) after errors.
// It returns ctx's error.
func (s *Sequencer) Run(ctx context.Context) error {
	for {
		err := s.session(ctx)
		s.leader.Store(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.cfg.Log.Warn("outbox sequencer: session ended, reconnecting", "schema", s.cfg.Schema, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(s.cfg.Retry):
		}
	}
}

// lockKey is the advisory lock's key, computed by the server from the schema's name.
const lockKey = `hashtextextended('pgfleet.outbox.' || $1, 0)`

// session connects, waits for the lock, then sequences until an error or ctx ends. Closing
// the connection ends the session and so releases the lock.
func (s *Sequencer) session(ctx context.Context) error {
	conn, hangUp, err := pgpool.Dedicated(ctx, s.cfg.Conn)
	if err != nil {
		return err
	}
	defer hangUp()
	n := namesOf(s.cfg.Schema)
	// Blocks until the holder's session ends; ctx's end cancels the wait.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+lockKey+`)`, s.cfg.Schema); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	// LISTEN only once leading: a session that listens while blocked in the lock's wait reads
	// no notification and holds back the server's whole notification queue (8 GB, then every
	// NOTIFY fails). The drain below sees whatever committed before.
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{n.wake}.Sanitize()); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.leader.Store(true)
	s.cfg.Log.Info("outbox sequencer: leading", "schema", s.cfg.Schema)
	sql := sequenceSQL(n)
	for {
		// Drain: batches until one is not full.
		for {
			k, err := s.batch(ctx, conn, sql)
			if err != nil {
				return err
			}
			if k < s.cfg.Batch {
				break
			}
		}
		if err := pgpool.AwaitWake(ctx, conn, s.cfg.Poll); err != nil {
			return err
		}
	}
}

// sequenceSQL is one batch in one statement, hence one transaction that commits before the
// next one starts: lock the head row, take up to $1 committed rows without a position in
// insertion order, number them from head.last+1, notify readers. The head row's lock would
// also order two sequencers that ran at once (it cannot happen while the advisory lock holds):
// the second waits for the first's commit and numbers after it.
func sequenceSQL(n names) string {
	return `WITH pending AS (
	SELECT id, row_number() OVER (ORDER BY append_seq) AS k FROM (
		SELECT id, append_seq FROM ` + n.table + ` WHERE position IS NULL
		ORDER BY append_seq LIMIT $1 FOR UPDATE SKIP LOCKED) p),
cnt AS (SELECT count(*) AS c FROM pending),
head AS (
	UPDATE ` + n.head + ` SET last = last + (SELECT c FROM cnt)
	WHERE (SELECT c FROM cnt) > 0
	RETURNING last - (SELECT c FROM cnt) AS base),
upd AS (
	UPDATE ` + n.table + ` o SET position = head.base + pending.k
	FROM pending, head WHERE o.id = pending.id
	RETURNING o.position)
SELECT count(*), pg_notify($2, max(position)::text) FROM upd HAVING count(*) > 0`
}

func (s *Sequencer) batch(ctx context.Context, conn *pgx.Conn, sql string) (int, error) {
	var (
		k      int
		ignore any
	)
	err := conn.QueryRow(ctx, sql, s.cfg.Batch, namesOf(s.cfg.Schema).sequenced).Scan(&k, &ignore)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sequence: %w", err)
	}
	s.sequenced.Add(int64(k))
	return k, nil
}
