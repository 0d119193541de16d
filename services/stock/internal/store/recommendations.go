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
	Symbol      string  `db:"symbol"`
	Source      string  `db:"source"`
	Action      string  `db:"action"`       // the enum value's name, e.g. "ACTION_BUY"
	TargetPrice string  `db:"target_price"` // decimal text; "" for none
	Confidence  float64 `db:"confidence"`
	Rationale   string  `db:"rationale"`
	// ModelVersion is the version of the model that predicted; "" for none.
	ModelVersion string `db:"model_version"`
	// PredictTime is when the prediction was made. Zero in UpsertRecommendations' input means
	// the write's time.
	PredictTime time.Time `db:"predict_time"`
	CreateTime  time.Time `db:"create_time"`
	UpdateTime  time.Time `db:"update_time"`
}

// ListRecommendations returns one page of recommendations.
func (s *Store) ListRecommendations(ctx context.Context, page *query.Query) ([]Recommendation, error) {
	const sel = `SELECT symbol, source, action, coalesce(target_price::text, '') AS target_price, confidence,
		rationale, model_version, predict_time, create_time, update_time FROM stock.recommendations`
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
//
// The same statement appends the predictions to stock.recommendation_history: each one with a
// PredictTime, and each one without that inserted or replaced its current row (at the write's
// time); a prediction already there (same symbol, source and predict_time: a retry) is skipped.
// A prediction older than the current one of its (symbol, source) goes to history only.
func (s *Store) UpsertRecommendations(ctx context.Context, recs []Recommendation) ([]RecommendationChange, error) {
	const q = `
		WITH u AS (
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[],
				$7::text[], $8::timestamptz[]) AS u(s, src, a, tp, c, why, mv, pt)
		), up AS (
			INSERT INTO stock.recommendations AS r
				(symbol, source, action, target_price, confidence, rationale, model_version, predict_time)
			SELECT s, src, a, nullif(tp, '')::numeric, c, why, mv, coalesce(pt, now()) FROM u
			ON CONFLICT (symbol, source) DO UPDATE SET
				action = EXCLUDED.action, target_price = EXCLUDED.target_price,
				confidence = EXCLUDED.confidence, rationale = EXCLUDED.rationale,
				model_version = EXCLUDED.model_version, predict_time = EXCLUDED.predict_time,
				update_time = now()
			WHERE EXCLUDED.predict_time >= r.predict_time
				AND (r.action, r.target_price, r.confidence, r.rationale, r.model_version) IS DISTINCT FROM
					(EXCLUDED.action, EXCLUDED.target_price, EXCLUDED.confidence, EXCLUDED.rationale, EXCLUDED.model_version)
			RETURNING symbol, source, action, coalesce(target_price::text, '') AS target_price, confidence,
				rationale, model_version, predict_time, create_time, update_time, (xmax = 0) AS inserted
		), history AS (
			INSERT INTO stock.recommendation_history
				(symbol, source, model_version, action, target_price, confidence, rationale, predict_time)
			SELECT u.s, u.src, u.mv, u.a, nullif(u.tp, '')::numeric, u.c, u.why, coalesce(u.pt, up.predict_time)
			FROM u LEFT JOIN up ON up.symbol = u.s AND up.source = u.src
			WHERE u.pt IS NOT NULL OR up.symbol IS NOT NULL
			ON CONFLICT (predict_time, symbol, source) DO NOTHING
		)
		SELECT * FROM up`
	n := len(recs)
	sym, src, action, why := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	target, conf, version := make([]string, n), make([]float64, n), make([]string, n)
	predicted := make([]*time.Time, n)
	for i, r := range recs {
		sym[i], src[i], action[i], why[i] = r.Symbol, r.Source, r.Action, r.Rationale
		target[i], conf[i], version[i] = r.TargetPrice, r.Confidence, r.ModelVersion
		if !r.PredictTime.IsZero() {
			predicted[i] = &recs[i].PredictTime
		}
	}
	rows, _ := s.db.Query(ctx, q, sym, src, action, target, conf, why, version, predicted)
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (c RecommendationChange, err error) {
		r := &c.Recommendation
		err = row.Scan(&r.Symbol, &r.Source, &r.Action, &r.TargetPrice, &r.Confidence, &r.Rationale,
			&r.ModelVersion, &r.PredictTime, &r.CreateTime, &r.UpdateTime, &c.Inserted)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert recommendations: %w", err)
	}
	return changes, nil
}

// PastRecommendation is a row of stock.recommendation_history: one prediction as it was made.
type PastRecommendation struct {
	Symbol       string    `db:"symbol"`
	Source       string    `db:"source"`
	ModelVersion string    `db:"model_version"`
	Action       string    `db:"action"`       // the enum value's name
	TargetPrice  string    `db:"target_price"` // decimal text; "" for none
	Confidence   float64   `db:"confidence"`
	Rationale    string    `db:"rationale"`
	PredictTime  time.Time `db:"predict_time"`
	RecordTime   time.Time `db:"record_time"`
}

// ListRecommendationHistory returns one page of past predictions.
func (s *Store) ListRecommendationHistory(ctx context.Context, page *query.Query) ([]PastRecommendation, error) {
	const sel = `SELECT symbol, source, model_version, action, coalesce(target_price::text, '') AS target_price,
		confidence, rationale, predict_time, record_time FROM stock.recommendation_history`
	rows, _ := s.db.Query(ctx, page.SQL(sel), page.NamedArgs(nil))
	recs, err := pgx.CollectRows(rows, pgx.RowToStructByName[PastRecommendation])
	if err != nil {
		return nil, fmt.Errorf("list recommendation history: %w", err)
	}
	return recs, nil
}
