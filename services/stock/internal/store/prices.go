package store

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Price is a price bar. Decimals travel as text both ways (PostgreSQL's numeric text out,
// validated decimal strings in), so they are exact and never pass through floating point,
// and COPY sends them without pgx's costly binary numeric encoding.
type Price struct {
	Symbol string    `db:"symbol"`
	Time   time.Time `db:"ts"`
	Open   string    `db:"open"`
	High   string    `db:"high"`
	Low    string    `db:"low"`
	Close  string    `db:"close"`
	Volume int64     `db:"volume"`

	// Set by LatestPrices only: the stock's currency, and for a deleted stock's final price
	// when it was deleted.
	Currency   string     `db:"-"`
	DelistTime *time.Time `db:"-"`
}

// Unbounded ends of a time range: PostgreSQL stores both, and a concrete bound keeps the
// range an index range and lets the planner prune partitions.
var (
	MinTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

const priceColumns = `symbol, ts, open::text, high::text, low::text, close::text, volume`

// StagePrices copies rows from src (symbol, time, open, high, low, close, volume, with
// decimals as validated strings) into a temporary staging table that lives until the
// transaction ends. It must run in a transaction; MergeStagedPrices then applies the rows.
// One COPY for the whole source: the fastest way into PostgreSQL short of a file.
func (s *Store) StagePrices(ctx context.Context, src pgx.CopyFromSource) (int64, error) {
	const create = `
		CREATE TEMP TABLE price_stage (
			seq    bigint GENERATED ALWAYS AS IDENTITY,
			symbol text NOT NULL,
			ts     timestamptz NOT NULL,
			open   text NOT NULL,
			high   text NOT NULL,
			low    text NOT NULL,
			close  text NOT NULL,
			volume bigint NOT NULL
		) ON COMMIT DROP`
	if _, err := s.db.Exec(ctx, create); err != nil {
		return 0, fmt.Errorf("create price stage: %w", err)
	}
	n, err := s.db.CopyFrom(ctx, pgx.Identifier{"price_stage"},
		[]string{"symbol", "ts", "open", "high", "low", "close", "volume"}, src)
	if err != nil {
		return n, fmt.Errorf("copy prices: %w", err)
	}
	return n, nil
}

// CopyPrices copies rows in COPY's text format from r (symbol, time, open, high, low,
// close, volume; tab-separated, a row a line) straight into stock.prices, in tx: for streams
// that only append bars later than their symbols' latest, under those symbols' write locks,
// so that no row can collide with a stored one. Text, because PostgreSQL parses decimals far
// faster than pgx's binary COPY encodes them (through big.Int). Call AdvanceLatest afterwards.
func (s *Store) CopyPrices(ctx context.Context, tx pgx.Tx, r io.Reader) (int64, error) {
	const q = `COPY stock.prices (symbol, ts, open, high, low, close, volume) FROM STDIN`
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, r, q)
	if err != nil {
		return 0, fmt.Errorf("copy prices: %w", err)
	}
	return tag.RowsAffected(), nil
}

// LatestTimes returns the time of each symbol's latest stored bar; a symbol without bars is
// absent.
func (s *Store) LatestTimes(ctx context.Context, symbols []string) (map[string]time.Time, error) {
	rows, _ := s.db.Query(ctx, `SELECT symbol, ts FROM stock.latest_prices WHERE symbol = ANY($1)`, symbols)
	latest := make(map[string]time.Time, len(symbols))
	var sym string
	var ts time.Time
	_, err := pgx.ForEachRow(rows, []any{&sym, &ts}, func() error {
		latest[sym] = ts
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("latest price times: %w", err)
	}
	return latest, nil
}

// MergeStagedPrices upserts the staged rows into stock.prices; a row for an existing
// (symbol, time) replaces it. Staged rows may repeat a (symbol, time) only if dedup is set,
// and then the last one staged wins: deduplication sorts the whole stage, so callers that
// know every symbol's times arrived strictly increasing skip it. Callers hold the write lock
// of every staged symbol, so the count of existing rows stays true until they commit, and
// call AdvanceLatest afterwards.
func (s *Store) MergeStagedPrices(ctx context.Context, dedup bool) (inserted, updated int64, err error) {
	src := "price_stage"
	if dedup {
		const q = `
			CREATE TEMP TABLE price_merge ON COMMIT DROP AS
			SELECT DISTINCT ON (symbol, ts) symbol, ts, open, high, low, close, volume
			FROM price_stage
			ORDER BY symbol, ts, seq DESC`
		if _, err := s.db.Exec(ctx, `SET LOCAL work_mem = '64MB'`); err != nil {
			return 0, 0, fmt.Errorf("dedup prices: %w", err)
		}
		if _, err := s.db.Exec(ctx, q); err != nil {
			return 0, 0, fmt.Errorf("dedup prices: %w", err)
		}
		src = "price_merge"
	}
	// A stored row can only match a staged one not newer than its symbol's latest bar
	// (latest_prices holds every symbol's greatest time), so the common append of new bars
	// probes nothing.
	const countExisting = `
		SELECT count(*)
		FROM %s s JOIN stock.latest_prices l ON l.symbol = s.symbol AND s.ts <= l.ts
		WHERE EXISTS (SELECT 1 FROM stock.prices p WHERE p.symbol = s.symbol AND p.ts = s.ts)`
	if err := s.db.QueryRow(ctx, fmt.Sprintf(countExisting, src)).Scan(&updated); err != nil {
		return 0, 0, fmt.Errorf("count existing prices: %w", err)
	}
	// Without conflicts a plain INSERT does: ON CONFLICT's speculative insertion costs a
	// good part of the merge.
	const insert = `
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT symbol, ts, open::numeric, high::numeric, low::numeric, close::numeric, volume FROM %s`
	const upsert = insert + `
		ON CONFLICT (symbol, ts) DO UPDATE SET
			open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
			close = EXCLUDED.close, volume = EXCLUDED.volume`
	q := insert
	if updated > 0 {
		q = upsert
	}
	tag, err := s.db.Exec(ctx, fmt.Sprintf(q, src))
	if err != nil {
		return 0, 0, fmt.Errorf("merge prices: %w", err)
	}
	return tag.RowsAffected() - updated, updated, nil
}

// AdvanceLatest records each row as its symbol's latest price unless a later one is stored,
// and returns the latest prices it changed, with their stock's currency (as LatestPrices sets
// it), in no particular order: a row later than the stored latest, or at its time with other
// values. A row equal to the stored latest changes nothing and is not returned. Rows must hold
// one bar per symbol, each of a stock that exists (callers hold its write lock).
func (s *Store) AdvanceLatest(ctx context.Context, rows []Price) ([]Price, error) {
	// One statement keeps the table and says what it changed: the events of an ingest of
	// many symbols cost one extra INSERT, whatever the number of rows.
	const q = `
		WITH up AS (
			INSERT INTO stock.latest_prices AS l (symbol, ts, open, high, low, close, volume)
			SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[]::numeric[], $4::text[]::numeric[],
				$5::text[]::numeric[], $6::text[]::numeric[], $7::bigint[])
			ON CONFLICT (symbol) DO UPDATE SET
				ts = EXCLUDED.ts, open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low,
				close = EXCLUDED.close, volume = EXCLUDED.volume, currency = NULL, delist_time = NULL
			WHERE l.ts < EXCLUDED.ts OR (l.ts = EXCLUDED.ts AND
				(l.open, l.high, l.low, l.close, l.volume, l.delist_time) IS DISTINCT FROM
				(EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, NULL))
			RETURNING l.symbol, l.ts, l.open, l.high, l.low, l.close, l.volume)
		SELECT up.symbol, up.ts, up.open::text, up.high::text, up.low::text, up.close::text, up.volume, s.currency
		FROM up JOIN stock.stocks s ON s.symbol = up.symbol`
	n := len(rows)
	sym, ts, vol := make([]string, n), make([]time.Time, n), make([]int64, n)
	o, h, l, c := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, r := range rows {
		sym[i], ts[i], vol[i] = r.Symbol, r.Time, r.Volume
		o[i], h[i], l[i], c[i] = r.Open, r.High, r.Low, r.Close
	}
	out, _ := s.db.Query(ctx, q, sym, ts, o, h, l, c, vol)
	changed, err := pgx.CollectRows(out, func(row pgx.CollectableRow) (p Price, err error) {
		err = row.Scan(&p.Symbol, &p.Time, &p.Open, &p.High, &p.Low, &p.Close, &p.Volume, &p.Currency)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("advance latest prices: %w", err)
	}
	return changed, nil
}

// UnknownSymbols returns the symbols, sorted, that are neither a stock nor a delisted one
// with a final price.
func (s *Store) UnknownSymbols(ctx context.Context, symbols []string) ([]string, error) {
	const q = `
		SELECT DISTINCT w.symbol
		FROM unnest($1::text[]) AS w(symbol)
		WHERE NOT EXISTS (SELECT 1 FROM stock.stocks s WHERE s.symbol = w.symbol)
			AND NOT EXISTS (SELECT 1 FROM stock.latest_prices l WHERE l.symbol = w.symbol AND l.delist_time IS NOT NULL)
		ORDER BY w.symbol`
	rows, _ := s.db.Query(ctx, q, symbols)
	unknown, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check symbols known: %w", err)
	}
	return unknown, nil
}

// ListPrices returns one page of symbol's prices with start <= time < end; page holds the
// keyset condition after the previous page.
func (s *Store) ListPrices(ctx context.Context, symbol string, start, end time.Time, page *query.Query) ([]Price, error) {
	q := page.SQL(`SELECT `+priceColumns+` FROM stock.prices`, `symbol = @symbol AND ts >= @start AND ts < @end`)
	rows, _ := s.db.Query(ctx, q, page.NamedArgs(pgx.NamedArgs{"symbol": symbol, "start": start, "end": end}))
	prices, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Price])
	if err != nil {
		return nil, fmt.Errorf("list prices of %q: %w", symbol, err)
	}
	return prices, nil
}

// ScanPrices calls fn for the first limit prices of symbol with from <= time < end (from <
// time < end if after is set), oldest first: one chunk of an export, which reads its range
// chunk by chunk by keyset, each chunk from where the last one ended, so that no connection
// stays checked out while the client takes its rows. Rows are read off the connection as fn
// consumes them; fn must copy what it keeps, since p is reused.
func (s *Store) ScanPrices(ctx context.Context, symbol string, from time.Time, after bool, end time.Time, limit int, fn func(p *Price) error) error {
	const (
		q = `
			SELECT ` + priceColumns + `
			FROM stock.prices
			WHERE symbol = $1 AND ts >= $2 AND ts < $3
			ORDER BY ts
			LIMIT $4`
		qAfter = `
			SELECT ` + priceColumns + `
			FROM stock.prices
			WHERE symbol = $1 AND ts > $2 AND ts < $3
			ORDER BY ts
			LIMIT $4`
	)
	sql := q
	if after {
		sql = qAfter
	}
	rows, _ := s.db.Query(ctx, sql, symbol, from, end, limit)
	var p Price
	_, err := pgx.ForEachRow(rows, []any{&p.Symbol, &p.Time, &p.Open, &p.High, &p.Low, &p.Close, &p.Volume},
		func() error { return fn(&p) })
	if err != nil {
		return fmt.Errorf("scan prices of %q: %w", symbol, err)
	}
	return nil
}

// LatestPrices returns the latest price of each symbol that has one, in no particular order,
// with its currency: the stock's, or for a deleted stock's final price the one it had, with
// DelistTime set. A final price whose symbol was stored again since (a new listing, racing
// DeleteStock) counts as the new stock's until its first ingest replaces it.
func (s *Store) LatestPrices(ctx context.Context, symbols []string) ([]Price, error) {
	const q = `
		SELECT l.symbol, l.ts, l.open::text, l.high::text, l.low::text, l.close::text, l.volume,
			coalesce(s.currency, l.currency, ''), CASE WHEN s.symbol IS NULL THEN l.delist_time END
		FROM stock.latest_prices l LEFT JOIN stock.stocks s ON s.symbol = l.symbol
		WHERE l.symbol = ANY($1)`
	rows, _ := s.db.Query(ctx, q, symbols)
	prices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (p Price, err error) {
		err = row.Scan(&p.Symbol, &p.Time, &p.Open, &p.High, &p.Low, &p.Close, &p.Volume, &p.Currency, &p.DelistTime)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("latest prices: %w", err)
	}
	return prices, nil
}

// pricesAsOf is LatestPrices at a time: each symbol's last bar at or before $2, found by a
// backward probe of the (symbol, ts) primary key of each partition not later than $2 (LIMIT 1
// stops at the first row), or a delisted stock's final price if its bar is at or before $2
// (its bars were deleted with it). Where a symbol has both (a new listing racing DeleteStock),
// the later bar wins, as in LatestPrices.
const pricesAsOf = `
	SELECT q.symbol,
		CASE WHEN f.final THEN l.ts ELSE b.ts END,
		(CASE WHEN f.final THEN l.open ELSE b.open END)::text,
		(CASE WHEN f.final THEN l.high ELSE b.high END)::text,
		(CASE WHEN f.final THEN l.low ELSE b.low END)::text,
		(CASE WHEN f.final THEN l.close ELSE b.close END)::text,
		CASE WHEN f.final THEN l.volume ELSE b.volume END,
		coalesce(s.currency, l.currency, ''), CASE WHEN s.symbol IS NULL THEN l.delist_time END
	FROM unnest($1::text[]) AS q(symbol)
	LEFT JOIN stock.stocks s ON s.symbol = q.symbol
	LEFT JOIN stock.latest_prices l ON l.symbol = q.symbol AND l.delist_time IS NOT NULL
	LEFT JOIN LATERAL (
		SELECT p.ts, p.open, p.high, p.low, p.close, p.volume FROM stock.prices p
		WHERE p.symbol = q.symbol AND p.ts <= $2 ORDER BY p.ts DESC LIMIT 1
	) b ON true
	CROSS JOIN LATERAL (SELECT l.ts IS NOT NULL AND l.ts <= $2 AND (b.ts IS NULL OR l.ts > b.ts) AS final) f
	WHERE b.ts IS NOT NULL OR f.final`

// PricesAsOfSQL is the statement of PricesAsOf, for the plan tests.
func PricesAsOfSQL() string { return pricesAsOf }

// PricesAsOf returns each symbol's last bar at or before asOf, as LatestPrices returns the
// latest ones: with the stock's currency, and DelistTime set for a deleted stock's final
// price. Symbols without such a bar are left out.
func (s *Store) PricesAsOf(ctx context.Context, symbols []string, asOf time.Time) ([]Price, error) {
	rows, _ := s.db.Query(ctx, pricesAsOf, symbols, asOf)
	prices, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (p Price, err error) {
		err = row.Scan(&p.Symbol, &p.Time, &p.Open, &p.High, &p.Low, &p.Close, &p.Volume, &p.Currency, &p.DelistTime)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("prices as of %s: %w", asOf.UTC().Format(time.RFC3339), err)
	}
	return prices, nil
}
