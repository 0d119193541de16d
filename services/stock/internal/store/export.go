package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// ExportRow is one bar of an export, with the point-in-time recommendation when one was
// asked for and known at the bar's time (the Rec fields are nil otherwise). Decimals are
// numeric(20, 6) as text: always six fraction digits.
type ExportRow struct {
	Symbol                 string
	Time                   time.Time
	Open, High, Low, Close string
	Volume                 int64

	RecAction       *string
	RecTargetPrice  *string
	RecConfidence   *float64
	RecModelVersion *string
	RecPredictTime  *time.Time
}

// ExportUniverse returns the symbols of the stocks the filter of q matches, sorted. Only
// q.Where is used: the universe is read whole, never paged.
func (s *Store) ExportUniverse(ctx context.Context, q *query.Query) ([]string, error) {
	sql := `SELECT symbol FROM stock.stocks`
	if q.Where != "" {
		sql += ` WHERE ` + q.Where
	}
	sql += ` ORDER BY symbol`
	rows, _ := s.db.Query(ctx, sql, q.NamedArgs(nil))
	symbols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("export universe: %w", err)
	}
	return symbols, nil
}

// Export reads statements: one index range scan of stock.prices' (symbol, ts) key per page;
// with a source, one probe of recommendation_history (symbol, source, predict_time) per bar
// for the latest prediction made at or before it (never a later one: no look-ahead).
const (
	exportPage = `
		SELECT p.symbol, p.ts, p.open::text, p.high::text, p.low::text, p.close::text, p.volume,
			NULL::text, NULL::text, NULL::float8, NULL::text, NULL::timestamptz
		FROM stock.prices p
		WHERE p.symbol = $1 AND p.ts > $2 AND p.ts < $3
		ORDER BY p.ts
		LIMIT $4`
	exportPagePIT = `
		SELECT p.symbol, p.ts, p.open::text, p.high::text, p.low::text, p.close::text, p.volume,
			r.action, r.target_price::text, r.confidence, r.model_version, r.predict_time
		FROM stock.prices p
		LEFT JOIN LATERAL (
			SELECT h.action, h.target_price, h.confidence, h.model_version, h.predict_time
			FROM stock.recommendation_history h
			WHERE h.symbol = p.symbol AND h.source = $5 AND h.predict_time <= p.ts
			ORDER BY h.predict_time DESC
			LIMIT 1
		) r ON true
		WHERE p.symbol = $1 AND p.ts > $2 AND p.ts < $3
		ORDER BY p.ts
		LIMIT $4`
)

// ExportPageSQL returns the statement ExportPage runs, for EXPLAIN in tests.
func ExportPageSQL(withSource bool) string {
	if withSource {
		return exportPagePIT
	}
	return exportPage
}

// ExportPage appends to dst up to limit bars of symbol with after < time < end, in time
// order, each joined with source's point-in-time prediction when source is not empty. Run
// it in the export's REPEATABLE READ transaction: every page then reads one snapshot.
func (s *Store) ExportPage(ctx context.Context, dst []ExportRow, symbol string, after, end time.Time, limit int, source string) ([]ExportRow, error) {
	args := []any{symbol, after, end, limit}
	if source != "" {
		args = append(args, source)
	}
	rows, _ := s.db.Query(ctx, ExportPageSQL(source != ""), args...)
	var r ExportRow
	_, err := pgx.ForEachRow(rows, []any{&r.Symbol, &r.Time, &r.Open, &r.High, &r.Low, &r.Close, &r.Volume,
		&r.RecAction, &r.RecTargetPrice, &r.RecConfidence, &r.RecModelVersion, &r.RecPredictTime}, func() error {
		dst = append(dst, r)
		r.RecAction, r.RecTargetPrice, r.RecConfidence, r.RecModelVersion, r.RecPredictTime = nil, nil, nil, nil, nil
		return nil
	})
	if err != nil {
		return dst, fmt.Errorf("export prices of %q: %w", symbol, err)
	}
	return dst, nil
}

// SnapshotGone reports whether err is PostgreSQL's refusal to import a snapshot that no
// longer exists: its exporting transaction ended (the identifier's file is gone: 42704), or
// the snapshot's transaction is no longer running (55000), or the identifier is not one
// (22023).
func SnapshotGone(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "42704", "55000", "22023":
		return true
	}
	return false
}
