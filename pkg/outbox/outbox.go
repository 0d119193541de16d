// Package outbox is a transactional outbox per service schema whose positions follow commit order.
//
// A writer appends events in the transaction of the change they describe (Append): the rows
// carry no position yet, so nothing is visible to readers before the commit and nothing of a
// rolled-back transaction ever is. One Sequencer per schema (a session advisory lock elects it
// across processes) gives committed rows their positions, one short statement at a time: each
// batch commits before the next one starts, so positions become visible in increasing order and
// a reader that asks for `position > cursor` (Read) never passes a row that appears later below
// its cursor. A position taken at INSERT time would not do: a transaction that commits late
// holds a smaller position than rows a reader has already passed, and its event is lost.
//
// The table follows the layout Debezium's outbox event router expects (id, aggregatetype,
// aggregateid, type, payload), plus created_at, position and append_seq (insertion order, so
// the events of one transaction keep their order). Positions are gapless: they come from a
// counter row (outbox_head) updated in the sequencer's statement, not from a sequence, which
// also records how far Prune went so that Read can tell a consumer whose cursor was pruned that
// it must resynchronize (ErrCursorPruned). LISTEN/NOTIFY only wakes: `<schema>_outbox` at a
// writer's commit (for the sequencer), `<schema>_outbox_seq` with the last position after each
// batch (for readers).
package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrCursorPruned is returned by Read when events after the cursor have been pruned: the
// consumer must resynchronize (from its source of truth, then from Oldest()-1).
var ErrCursorPruned = errors.New("outbox: events after the cursor have been pruned")

// DefaultLimit is the most events Read returns when its limit is below 1.
const DefaultLimit = 1000

// DB is what Read, Oldest and Prune need: a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Event is one change others may care about, as a writer appends it.
type Event struct {
	AggregateType string // e.g. "portfolio"; Debezium routes on it (topic per aggregate type)
	AggregateID   string // e.g. the portfolio id; Debezium's message key
	Type          string // e.g. "TradeExecuted"
	Payload       []byte // a serialized protobuf message
}

// Record is an event as a reader sees it, with its position.
type Record struct {
	Position      int64
	ID            string // uuid, text form
	AggregateType string
	AggregateID   string
	Type          string
	Payload       []byte
	CreatedAt     time.Time // the writer's transaction start (now()), not its commit
}

// names holds the quoted identifiers and channel names of one schema's outbox.
type names struct {
	table, head, appendSeq, pendingIdx, createdIdx string
	wake, sequenced                                string // notification channels (not identifiers)
}

func namesOf(schema string) names {
	q := func(s string) string { return pgx.Identifier{schema, s}.Sanitize() }
	return names{
		table:      q("outbox"),
		head:       q("outbox_head"),
		appendSeq:  q("outbox_append_seq"),
		pendingIdx: pgx.Identifier{"outbox_pending"}.Sanitize(),
		createdIdx: pgx.Identifier{"outbox_created_at"}.Sanitize(),
		wake:       schema + "_outbox",
		sequenced:  schema + "_outbox_seq",
	}
}

// WakeChannel is the channel Wake notifies after a commit (the sequencer listens on it).
func WakeChannel(schema string) string { return namesOf(schema).wake }

// SequencedChannel is the channel the sequencer notifies after each batch, with the last
// position as payload (a hint only: readers read the table).
func SequencedChannel(schema string) string { return namesOf(schema).sequenced }

// Schema returns the DDL of the outbox of schema (which must exist), idempotent, for a
// service's migrations. Identifiers are quoted, so any schema name is safe.
func Schema(schema string) string {
	n := namesOf(schema)
	return fmt.Sprintf(`CREATE SEQUENCE IF NOT EXISTS %[3]s;
CREATE TABLE IF NOT EXISTS %[1]s (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	aggregatetype text NOT NULL,
	aggregateid text NOT NULL,
	type text NOT NULL,
	payload bytea NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	position bigint UNIQUE NULL,
	append_seq bigint NOT NULL DEFAULT nextval('%[6]s')
);
CREATE INDEX IF NOT EXISTS %[4]s ON %[1]s (append_seq) WHERE position IS NULL;
CREATE INDEX IF NOT EXISTS %[5]s ON %[1]s (created_at);
CREATE TABLE IF NOT EXISTS %[2]s (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	last bigint NOT NULL DEFAULT 0,
	pruned bigint NOT NULL DEFAULT 0
);
INSERT INTO %[2]s DEFAULT VALUES ON CONFLICT DO NOTHING;
`, n.table, n.head, n.appendSeq, n.pendingIdx, n.createdIdx, quoteLiteralBody(n.appendSeq))
}

// quoteLiteralBody doubles single quotes so s can sit inside a '...' literal.
func quoteLiteralBody(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// Append inserts events into schema's outbox in the caller's transaction, without positions.
// It takes a pgx.Tx, not a pool or a connection, so an event cannot be written apart from its
// change. It does not notify: a transaction that runs NOTIFY holds a database-wide lock through
// its commit (PostgreSQL serializes notifying commits), which would serialize every write of
// the schema. Call Wake once the transaction has committed; the sequencer also looks every
// Poll without one.
func Append(ctx context.Context, tx pgx.Tx, schema string, events ...Event) error {
	if len(events) == 0 {
		return nil
	}
	aggTypes := make([]string, len(events))
	aggIDs := make([]string, len(events))
	types := make([]string, len(events))
	payloads := make([][]byte, len(events))
	for i, e := range events {
		aggTypes[i], aggIDs[i], types[i], payloads[i] = e.AggregateType, e.AggregateID, e.Type, e.Payload
		if payloads[i] == nil {
			payloads[i] = []byte{}
		}
	}
	n := namesOf(schema)
	// WITH ORDINALITY + ORDER BY: append_seq (a column default) follows the events' order.
	sql := `
	INSERT INTO ` + n.table + ` (aggregatetype, aggregateid, type, payload)
	SELECT a, b, c, d FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) WITH ORDINALITY AS e(a, b, c, d, i)
	ORDER BY i`
	if _, err := tx.Exec(ctx, sql, aggTypes, aggIDs, types, payloads); err != nil {
		return fmt.Errorf("outbox: append to %s: %w", n.table, err)
	}
	return nil
}

// Wake tells schema's sequencer that events were committed, so that it numbers them now
// rather than at its next poll. Call it after the commit of a transaction that called Append,
// on any connection (its own short transaction takes PostgreSQL's notify lock only for itself).
func Wake(ctx context.Context, db DB, schema string) error {
	if _, err := db.Exec(ctx, "SELECT pg_notify($1, '')", namesOf(schema).wake); err != nil {
		return fmt.Errorf("outbox: wake %s's sequencer: %w", schema, err)
	}
	return nil
}

// Read returns up to limit events of schema with a position after the cursor after, in
// position order, only of the given types (all if types is empty). It returns
// ErrCursorPruned if events after the cursor have been pruned. A limit below 1 means
// DefaultLimit. Read from the primary: a standby's snapshot is also in commit order, but lags.
func Read(ctx context.Context, db DB, schema string, after int64, types []string, limit int) ([]Record, error) {
	n := namesOf(schema)
	if limit < 1 {
		limit = DefaultLimit
	}
	if len(types) == 0 {
		types = nil
	}
	// One statement, one snapshot: the pruned mark and the rows agree.
	rows, err := db.Query(ctx, `SELECT h.pruned, r.position, r.id::text, r.aggregatetype, r.aggregateid, r.type, r.payload, r.created_at
FROM `+n.head+` h LEFT JOIN LATERAL (
	SELECT * FROM `+n.table+`
	WHERE position > $1 AND ($2::text[] IS NULL OR type = ANY($2))
	ORDER BY position LIMIT $3) r ON true
ORDER BY r.position`, after, types, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", n.table, err)
	}
	defer rows.Close()
	var (
		out    []Record
		pruned int64
	)
	for rows.Next() {
		var (
			pos              *int64
			id, at, aid, typ *string
			payload          []byte
			created          *time.Time
		)
		if err := rows.Scan(&pruned, &pos, &id, &at, &aid, &typ, &payload, &created); err != nil {
			return nil, fmt.Errorf("outbox: read %s: %w", n.table, err)
		}
		if pos == nil {
			continue // no rows: the LEFT JOIN's single NULL row
		}
		out = append(out, Record{Position: *pos, ID: *id, AggregateType: *at, AggregateID: *aid,
			Type: *typ, Payload: payload, CreatedAt: *created})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", n.table, err)
	}
	if after < pruned {
		return nil, fmt.Errorf("%w: cursor %d, oldest event %d", ErrCursorPruned, after, pruned+1)
	}
	return out, nil
}

// Oldest returns the position of the oldest event Read can still return: a cursor must be at
// least Oldest()-1 (1 when nothing was ever pruned).
func Oldest(ctx context.Context, db DB, schema string) (int64, error) {
	n := namesOf(schema)
	var pruned int64
	if err := db.QueryRow(ctx, `SELECT pruned FROM `+n.head).Scan(&pruned); err != nil {
		return 0, fmt.Errorf("outbox: oldest of %s: %w", n.table, err)
	}
	return pruned + 1, nil
}

// Last returns the last position given (0 if none).
func Last(ctx context.Context, db DB, schema string) (int64, error) {
	n := namesOf(schema)
	var last int64
	if err := db.QueryRow(ctx, `SELECT last FROM `+n.head).Scan(&last); err != nil {
		return 0, fmt.Errorf("outbox: last of %s: %w", n.table, err)
	}
	return last, nil
}

// Retention says what Prune deletes; a zero field does not prune.
type Retention struct {
	// MaxAge prunes the events created more than MaxAge ago, up to (excluding) the first
	// sequenced event that is younger, so pruning always cuts a prefix of the positions.
	MaxAge time.Duration
	// Before prunes the events with a position below Before.
	Before int64
}

// Prune deletes a prefix of schema's sequenced events as r says and records how far it went,
// so that a Read from a cursor below it fails with ErrCursorPruned. It returns the number of
// events deleted. Unsequenced rows are never pruned.
func Prune(ctx context.Context, db DB, schema string, r Retention) (int64, error) {
	n := namesOf(schema)
	var ageUpto *int64
	if r.MaxAge > 0 {
		// Positions <= last all exist (gapless) unless pruned.
		err := db.QueryRow(ctx, `SELECT coalesce(
	(SELECT min(position) FROM `+n.table+` WHERE position IS NOT NULL AND created_at >= now() - $1::interval),
	(SELECT last + 1 FROM `+n.head+`)) - 1`, r.MaxAge).Scan(&ageUpto)
		if err != nil {
			return 0, fmt.Errorf("outbox: prune %s: %w", n.table, err)
		}
	}
	upto := int64(0)
	if ageUpto != nil {
		upto = *ageUpto
	}
	if r.Before > 0 {
		upto = max(upto, r.Before-1)
	}
	if upto <= 0 {
		return 0, nil
	}
	var deleted int64
	err := db.QueryRow(ctx, `WITH h AS (
	UPDATE `+n.head+` SET pruned = greatest(pruned, least($1::bigint, last)) RETURNING pruned),
d AS (DELETE FROM `+n.table+` WHERE position <= (SELECT pruned FROM h) RETURNING 1)
SELECT count(*) FROM d`, upto).Scan(&deleted)
	if err != nil {
		return 0, fmt.Errorf("outbox: prune %s: %w", n.table, err)
	}
	return deleted, nil
}

// WaitSequenced waits until every event committed so far has a position, polling, and
// returns the last position: what a consumer starting from the oldest event must reach to
// have seen them all (tests, tools). It returns ctx's error if ctx ends first.
func WaitSequenced(ctx context.Context, db DB, schema string) (int64, error) {
	n := namesOf(schema)
	for {
		var pending, last int64
		err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM `+n.table+` WHERE position IS NULL), (SELECT last FROM `+n.head+`)`).Scan(&pending, &last)
		if err != nil || pending == 0 {
			return last, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}
