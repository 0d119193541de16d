package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Score is how one (source, model_version) did at one horizon: a row of Scoreboard.
type Score struct {
	Source       string
	ModelVersion string
	HorizonDays  int32
	Scored       int64
	Pending      int64
	Holds        int64
	Unscored     int64
	Hits         int64
	// AverageReturn and AverageExcess are directional means rounded to 10 places, trailing
	// zeros trimmed; "" when Scored is 0, as are the zero First and Last.
	AverageReturn string
	AverageExcess string
	First, Last   time.Time
}

// scoreboardSQL scores predictions in one statement; see the proto's
// GetRecommendationScoreboard for the rules. Every price it reads is an index probe of the
// (symbol, ts) primary key of stock.prices's partitions: per prediction its entry bar (the
// first at or after predict_time) and, per horizon, its exit bar (h - 1 bars past the one
// after the entry); per distinct (entry, exit) pair the benchmark's two closes at or before
// them, or for the market each stock's closes at exactly those times (stock.stocks's key
// drives that walk). Predictions come through the history's indexes when the filter names a
// source or symbol. {{where}} is the filter's condition over r, or true.
const scoreboardSQL = `
	WITH pred AS (
		SELECT r.source, r.model_version, r.symbol, r.action, r.predict_time,
			CASE WHEN r.action IN ('ACTION_SELL', 'ACTION_STRONG_SELL') THEN -1 ELSE 1 END AS dir
		FROM stock.recommendation_history r
		WHERE %s
	), entry AS (
		SELECT p.*, e.ts AS entry_ts, e.close AS entry_close
		FROM pred p
		LEFT JOIN LATERAL (
			SELECT ts, close FROM stock.prices
			WHERE symbol = p.symbol AND ts >= p.predict_time
			ORDER BY ts LIMIT 1
		) e ON p.action <> 'ACTION_HOLD'
	), outcome AS (
		SELECT en.*, hz.h, x.ts AS exit_ts, x.close AS exit_close
		FROM entry en
		CROSS JOIN unnest(@horizons::int[]) AS hz(h)
		LEFT JOIN LATERAL (
			SELECT ts, close FROM stock.prices
			WHERE symbol = en.symbol AND ts > en.entry_ts
			ORDER BY ts OFFSET hz.h - 1 LIMIT 1
		) x ON en.entry_ts IS NOT NULL
	), pair AS (
		SELECT DISTINCT entry_ts, exit_ts FROM outcome WHERE exit_ts IS NOT NULL
	), bench AS (
		SELECT pr.entry_ts, pr.exit_ts, CASE WHEN @benchmark = '' THEN (
			SELECT avg(m.exit_close / m.entry_close - 1)
			FROM stock.stocks s
			CROSS JOIN LATERAL (
				SELECT (SELECT close FROM stock.prices WHERE symbol = s.symbol AND ts = pr.entry_ts) AS entry_close,
					(SELECT close FROM stock.prices WHERE symbol = s.symbol AND ts = pr.exit_ts) AS exit_close
				OFFSET 0 -- not pulled up: each close is probed once, not once per reference
			) m
			WHERE m.entry_close > 0 AND m.exit_close IS NOT NULL
		) ELSE (
			SELECT (SELECT close FROM stock.prices WHERE symbol = @benchmark AND ts <= pr.exit_ts ORDER BY ts DESC LIMIT 1)
				/ nullif((SELECT close FROM stock.prices WHERE symbol = @benchmark AND ts <= pr.entry_ts ORDER BY ts DESC LIMIT 1), 0) - 1
		) END AS r
		FROM pair pr
	), scored AS (
		SELECT o.source, o.model_version, o.h, o.action, o.predict_time, o.exit_ts IS NOT NULL AS has_exit,
			o.dir * (o.exit_close / nullif(o.entry_close, 0) - 1) AS ret,
			o.dir * (o.exit_close / nullif(o.entry_close, 0) - 1 - b.r) AS excess
		FROM outcome o
		LEFT JOIN bench b ON b.entry_ts = o.entry_ts AND b.exit_ts = o.exit_ts
	)
	SELECT source, model_version, h,
		count(*) FILTER (WHERE excess IS NOT NULL) AS scored,
		count(*) FILTER (WHERE action <> 'ACTION_HOLD' AND NOT has_exit) AS pending,
		count(*) FILTER (WHERE action = 'ACTION_HOLD') AS holds,
		count(*) FILTER (WHERE has_exit AND excess IS NULL) AS unscored,
		count(*) FILTER (WHERE excess > 0) AS hits,
		coalesce(trim_scale(round(avg(ret) FILTER (WHERE excess IS NOT NULL), 10))::text, '') AS avg_return,
		coalesce(trim_scale(round(avg(excess), 10))::text, '') AS avg_excess,
		min(predict_time) FILTER (WHERE excess IS NOT NULL) AS first,
		max(predict_time) FILTER (WHERE excess IS NOT NULL) AS last
	FROM scored
	GROUP BY source, model_version, h
	UNION ALL
	-- An unknown benchmark: one row without a source, which Scoreboard turns into ErrNotFound.
	SELECT NULL, NULL, NULL, 0, 0, 0, 0, 0, '', '', NULL, NULL
	WHERE @benchmark <> '' AND NOT EXISTS (SELECT FROM stock.stocks WHERE symbol = @benchmark)
	ORDER BY 1, 2, 3`

// ScoreboardSQL is Scoreboard's statement for filter, a query built from the scoreboard's
// schema (its Where over the history's columns as r.*): the EXPLAIN test runs it.
func ScoreboardSQL(filter *query.Query) string {
	where := "true"
	if filter.Where != "" {
		where = filter.Where
	}
	return fmt.Sprintf(scoreboardSQL, where)
}

// ScoreboardArgs are ScoreboardSQL's arguments: the filter's, the horizons and the benchmark
// symbol ("" for the market).
func ScoreboardArgs(filter *query.Query, horizons []int32, benchmark string) pgx.QueryRewriter {
	return filter.NamedArgs(pgx.NamedArgs{"horizons": horizons, "benchmark": benchmark})
}

// Scoreboard scores the predictions that filter selects at each horizon (in bars) against
// benchmark, or the market if it is "", ordered by source, model_version and horizon: an
// error wrapping a *NotFoundError if benchmark names no stock.
func (s *Store) Scoreboard(ctx context.Context, filter *query.Query, horizons []int32, benchmark string) ([]Score, error) {
	rows, _ := s.db.Query(ctx, ScoreboardSQL(filter), ScoreboardArgs(filter, horizons, benchmark))
	var unknown bool
	scores, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (sc Score, err error) {
		var source, version *string
		var horizon *int32
		var first, last *time.Time
		err = row.Scan(&source, &version, &horizon, &sc.Scored, &sc.Pending, &sc.Holds, &sc.Unscored, &sc.Hits,
			&sc.AverageReturn, &sc.AverageExcess, &first, &last)
		if err != nil {
			return sc, err
		}
		if source == nil {
			unknown = true
			return sc, nil
		}
		sc.Source, sc.ModelVersion, sc.HorizonDays = *source, *version, *horizon
		if first != nil {
			sc.First, sc.Last = *first, *last
		}
		return sc, nil
	})
	if err != nil {
		return nil, fmt.Errorf("scoreboard: %w", err)
	}
	if unknown {
		return nil, fmt.Errorf("scoreboard: %w", &NotFoundError{Kind: "stock", Field: "benchmark_symbol", Key: benchmark})
	}
	return scores, nil
}
