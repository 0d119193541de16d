package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Recommendation is a row of stock.recommendations: one source's current advice on a stock.
type Recommendation struct {
	Symbol      string    `db:"symbol"`
	Source      string    `db:"source"`
	Action      string    `db:"action"`       // the enum value's name, e.g. "ACTION_BUY"
	TargetPrice string    `db:"target_price"` // decimal text; "" for none
	Confidence  float64   `db:"confidence"`
	Rationale   string    `db:"rationale"`
	CreateTime  time.Time `db:"create_time"`
	UpdateTime  time.Time `db:"update_time"`
}

// ListRecommendations returns one page of recommendations.
func (s *Store) ListRecommendations(ctx context.Context, page *query.Query) ([]Recommendation, error) {
	const sel = `SELECT symbol, source, action, coalesce(target_price::text, '') AS target_price, confidence,
		rationale, create_time, update_time FROM stock.recommendations`
	rows, _ := s.db.Query(ctx, page.SQL(sel), page.NamedArgs(nil))
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByName[Recommendation])
	if err != nil {
		return nil, fmt.Errorf("list recommendations: %w", err)
	}
	return recs, nil
}

// RecommendationChange is a recommendation UpsertRecommendations inserted or replaced, as
// stored.
type RecommendationChange struct {
	Recommendation
	Inserted bool // a new row, not a replacement
}

// UpsertRecommendations inserts new recommendations and replaces changed ones, and returns
// those it inserted or replaced, in no particular order. Every symbol must exist (check with
// MissingStocks first for a clear error; the foreign key is the backstop).
func (s *Store) UpsertRecommendations(ctx context.Context, recs []Recommendation) ([]RecommendationChange, error) {
	const q = `
		INSERT INTO stock.recommendations AS r (symbol, source, action, target_price, confidence, rationale)
		SELECT s, src, a, nullif(tp, '')::numeric, c, why
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[]) AS u(s, src, a, tp, c, why)
		ON CONFLICT (symbol, source) DO UPDATE SET
			action = EXCLUDED.action, target_price = EXCLUDED.target_price,
			confidence = EXCLUDED.confidence, rationale = EXCLUDED.rationale, update_time = now()
		WHERE (r.action, r.target_price, r.confidence, r.rationale) IS DISTINCT FROM
			(EXCLUDED.action, EXCLUDED.target_price, EXCLUDED.confidence, EXCLUDED.rationale)
		RETURNING symbol, source, action, coalesce(target_price::text, ''), confidence, rationale,
			create_time, update_time, (xmax = 0) AS inserted`
	n := len(recs)
	sym, src, action, why := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	target, conf := make([]string, n), make([]float64, n)
	for i, r := range recs {
		sym[i], src[i], action[i], why[i] = r.Symbol, r.Source, r.Action, r.Rationale
		target[i], conf[i] = r.TargetPrice, r.Confidence
	}
	rows, _ := s.db.Query(ctx, q, sym, src, action, target, conf, why)
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (c RecommendationChange, err error) {
		r := &c.Recommendation
		err = row.Scan(&r.Symbol, &r.Source, &r.Action, &r.TargetPrice, &r.Confidence, &r.Rationale,
			&r.CreateTime, &r.UpdateTime, &c.Inserted)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert recommendations: %w", err)
	}
	return changes, nil
}
