package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Bar is one interval of a symbol's daily bars, resampled: ListBars's row.
type Bar struct {
	Start    time.Time
	Open     string
	High     string
	Low      string
	Close    string
	Volume   int64
	BarCount int32
	// Return is close / previous bar's close - 1, rounded to 10 places with trailing zeros
	// trimmed; "" for the range's first bar or after a zero close.
	Return string
}

// BarUnits are the date_trunc fields ListBars resamples to: "week" is the ISO week, which
// starts on Monday.
var BarUnits = map[string]bool{"day": true, "week": true, "month": true}

// barsSQL resamples one symbol's daily bars in [start, end) to unit in one statement: the
// (symbol, ts) primary key index of each partition finds the rows, date_trunc in UTC buckets
// them, the first open and last close come from arrays ordered by time, and lag over the
// buckets gives each bar's previous close. The page's keyset condition (on bucket) applies
// outside the window, so a bar's return does not depend on where its page starts.
const barsSQL = `
	WITH bars AS (
		SELECT date_trunc(@unit, ts, 'UTC') AS bucket,
			(array_agg(open ORDER BY ts))[1] AS open,
			max(high) AS high,
			min(low) AS low,
			(array_agg(close ORDER BY ts DESC))[1] AS close,
			sum(volume)::bigint AS volume,
			count(*)::int AS bar_count
		FROM stock.prices
		WHERE symbol = @symbol AND ts >= @from AND ts < @end
		GROUP BY 1
	), returns AS (
		SELECT bars.*, lag(close) OVER (ORDER BY bucket) AS prev_close FROM bars
	)
	SELECT bucket, open::text, high::text, low::text, close::text, volume, bar_count,
		coalesce(trim_scale(round(close / nullif(prev_close, 0) - 1, 10))::text, '')
	FROM returns`

// ListBars returns one page of symbol's daily bars with start <= time < end resampled to
// unit (one of BarUnits), oldest first; page holds the keyset condition after the previous
// page. A first page reads the range's daily bars from start; a later one from the start of
// the previous page's last bar (BarsFrom), whose close the page's first return needs.
func (s *Store) ListBars(ctx context.Context, symbol, unit string, start, end time.Time, page *query.Query) ([]Bar, error) {
	if !BarUnits[unit] {
		return nil, fmt.Errorf("list bars: unknown unit %q", unit)
	}
	rows, _ := s.db.Query(ctx, BarsSQL(page),
		page.NamedArgs(pgx.NamedArgs{"symbol": symbol, "unit": unit, "from": BarsFrom(start, page), "end": end}))
	bars, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (b Bar, err error) {
		err = row.Scan(&b.Start, &b.Open, &b.High, &b.Low, &b.Close, &b.Volume, &b.BarCount, &b.Return)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("list bars of %q: %w", symbol, err)
	}
	return bars, nil
}

// BarsSQL is ListBars's statement for page (the EXPLAIN test runs it).
func BarsSQL(page *query.Query) string { return page.SQL(barsSQL) }

// BarsFrom is where ListBars's statement starts reading daily bars: start, or on a page
// after a token, the start of the previous page's last bar if that is later. The bars schema
// has no filter, so the page's only parameter is that start, decoded from the token; the
// earlier bars cannot change the page's bars or returns. Anything else falls back to start,
// which gives the same answer, only reading more.
func BarsFrom(start time.Time, page *query.Query) time.Time {
	if len(page.Args) == 1 {
		if last, ok := page.Args[0].(time.Time); ok && last.After(start) {
			return last
		}
	}
	return start
}
