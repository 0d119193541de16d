package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/metricstest"
)

// scoreCloses are the fixture's daily closes on days 0 to 5 ("" for no bar): three stocks
// and IDX, the benchmark, which has no bar on day 3.
var scoreCloses = map[string][]string{
	"A":   {"100", "110", "120", "90", "96", "120"},
	"B":   {"50", "50", "50", "65", "40", "40"},
	"C":   {"200", "210", "200", "220", "250", "275"},
	"IDX": {"100", "110", "100", "", "80", "100"},
}

// seedScoreboard stores the fixture: the stocks, their bars and six predictions.
//
//	P1 lgbm v1   A BUY         day 0 00:00  entry d0 100: h1 d1 110 (+0.1), h2 d2 120 (+0.2)
//	P2 lgbm v1   B SELL        day 1 06:00  entry d2 50:  h1 d3 65 (+0.3),  h2 d4 40 (-0.2)
//	P3 lgbm v1   C HOLD        day 0        a hold
//	P4 lgbm v2   C STRONG_BUY  day 3 12:00  entry d4 250: h1 d5 275 (+0.1), h2 pending
//	P5 analyst   A STRONG_SELL day 2 00:00  entry d2 120: h1 d3 90 (-0.25), h2 d4 96 (-0.2)
//	P6 analyst   B BUY         day 4 00:00  entry d4 40:  h1 d5 40 (0),     h2 pending
func seedScoreboard(t *testing.T, e env) {
	t.Helper()
	var stocks []*stockv1.Stock
	for _, sym := range []string{"A", "B", "C", "IDX"} {
		stocks = append(stocks, &stockv1.Stock{Symbol: sym, Name: "Stock " + sym, Currency: "USD"})
	}
	e.upsert(t, stocks...)
	for sym, closes := range scoreCloses {
		for d, c := range closes {
			if c == "" {
				continue
			}
			if _, err := e.pool.Exec(t.Context(), `INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
				VALUES ($1, $2, $3, $3, $3, $3, 1)`, sym, day(d).AsTime(), c); err != nil {
				t.Fatal(err)
			}
		}
	}
	at := func(d, hour int) *timestamppb.Timestamp {
		return timestamppb.New(day(d).AsTime().Add(time.Duration(hour) * time.Hour))
	}
	for _, r := range []*stockv1.Recommendation{
		{Symbol: "A", Source: "lgbm", ModelVersion: "v1", Action: stockv1.Action_ACTION_BUY, PredictTime: at(0, 0)},
		{Symbol: "B", Source: "lgbm", ModelVersion: "v1", Action: stockv1.Action_ACTION_SELL, PredictTime: at(1, 6)},
		{Symbol: "C", Source: "lgbm", ModelVersion: "v1", Action: stockv1.Action_ACTION_HOLD, PredictTime: at(0, 0)},
		{Symbol: "C", Source: "lgbm", ModelVersion: "v2", Action: stockv1.Action_ACTION_STRONG_BUY, PredictTime: at(3, 12)},
		{Symbol: "A", Source: "analyst", Action: stockv1.Action_ACTION_STRONG_SELL, PredictTime: at(2, 0)},
		{Symbol: "B", Source: "analyst", Action: stockv1.Action_ACTION_BUY, PredictTime: at(4, 0)},
	} {
		r.Confidence = 0.5
		e.upsertRecs(t, r)
	}
}

// score is a RecommendationScore; a negative hit means none (nothing scored).
func score(source, version string, h int32, scored, pending, holds int64, hit float64, ret, excess string, first, last *timestamppb.Timestamp) *stockv1.RecommendationScore {
	s := &stockv1.RecommendationScore{Source: source, ModelVersion: version, HorizonDays: h, ScoredCount: scored,
		PendingCount: pending, HoldCount: holds, AverageReturn: ret, AverageExcessReturn: excess,
		FirstPredictTime: first, LastPredictTime: last}
	if hit >= 0 {
		s.HitRate = &hit
	}
	return s
}

func hours(d, h int) *timestamppb.Timestamp {
	return timestamppb.New(day(d).AsTime().Add(time.Duration(h) * time.Hour))
}

// TestGetRecommendationScoreboard_fixture checks the scores of the hand-computed fixture
// (seedScoreboard), against IDX and against the market, value for value.
//
// IDX's returns over the (entry, exit) pairs, its close at or before each time (day 3 has
// none: day 2's counts): (d0,d1) 0.1, (d0,d2) 0, (d2,d3) 0, (d2,d4) -0.2, (d4,d5) 0.25.
// The market's, the mean over the stocks with a bar at both times (IDX is one, but not
// on day 3): (d0,d1) (0.1+0+0.05+0.1)/4 = 0.0625, (d0,d2) (0.2+0+0+0)/4 = 0.05, (d2,d3)
// (-0.25+0.3+0.1)/3 = 0.05, (d2,d4) (-0.2-0.2+0.25-0.2)/4 = -0.0875, (d4,d5)
// (0.25+0+0.1+0.25)/4 = 0.15. SELLs count negated return and excess.
func TestGetRecommendationScoreboard_fixture(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedScoreboard(t, e)
	tests := []struct {
		name string
		req  *stockv1.GetRecommendationScoreboardRequest
		want []*stockv1.RecommendationScore
	}{{
		// lgbm v1 h1: P1 excess 0.1-0.1 = 0 (no hit), P2 excess -(0.3-0) = -0.3; h2: P1 0.2-0
		// = 0.2 (hit), P2 -(-0.2+0.2) = 0. analyst h1: P5 -(-0.25-0) = 0.25 (hit), P6 0-0.25.
		name: "benchmark IDX",
		req:  &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{2, 1}, BenchmarkSymbol: "IDX"},
		want: []*stockv1.RecommendationScore{
			score("analyst", "", 1, 2, 0, 0, 0.5, "0.125", "0", day(2), day(4)),
			score("analyst", "", 2, 1, 1, 0, 0, "0.2", "0", day(2), day(2)),
			score("lgbm", "v1", 1, 2, 0, 1, 0, "-0.1", "-0.15", day(0), hours(1, 6)),
			score("lgbm", "v1", 2, 2, 0, 1, 0.5, "0.2", "0.1", day(0), hours(1, 6)),
			score("lgbm", "v2", 1, 1, 0, 0, 0, "0.1", "-0.15", hours(3, 12), hours(3, 12)),
			score("lgbm", "v2", 2, 0, 1, 0, -1, "", "", nil, nil),
		},
	}, {
		// lgbm v1 h1: P1 0.1-0.0625 = 0.0375 (hit), P2 -(0.3-0.05) = -0.25; h2: P1 0.2-0.05 =
		// 0.15 (hit), P2 -(-0.2+0.0875) = 0.1125 (hit). lgbm v2 h1: 0.1-0.15. analyst h1: P5
		// -(-0.25-0.05) = 0.3 (hit), P6 0-0.15; h2: P5 -(-0.2+0.0875) = 0.1125 (hit).
		name: "market",
		req:  &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{1, 2}},
		want: []*stockv1.RecommendationScore{
			score("analyst", "", 1, 2, 0, 0, 0.5, "0.125", "0.075", day(2), day(4)),
			score("analyst", "", 2, 1, 1, 0, 1, "0.2", "0.1125", day(2), day(2)),
			score("lgbm", "v1", 1, 2, 0, 1, 0.5, "-0.1", "-0.10625", day(0), hours(1, 6)),
			score("lgbm", "v1", 2, 2, 0, 1, 1, "0.2", "0.13125", day(0), hours(1, 6)),
			score("lgbm", "v2", 1, 1, 0, 0, 0, "0.1", "-0.05", hours(3, 12), hours(3, 12)),
			score("lgbm", "v2", 2, 0, 1, 0, -1, "", "", nil, nil),
		},
	}, {
		name: "filter on source and model_version",
		req:  &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{1}, Filter: `source = "lgbm" AND model_version = "v1"`},
		want: []*stockv1.RecommendationScore{
			score("lgbm", "v1", 1, 2, 0, 1, 0.5, "-0.1", "-0.10625", day(0), hours(1, 6)),
		},
	}, {
		// P1 and P5 only.
		name: "filter on symbol",
		req:  &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{2}, Filter: `symbol = "A"`},
		want: []*stockv1.RecommendationScore{
			score("analyst", "", 2, 1, 0, 0, 1, "0.2", "0.1125", day(2), day(2)),
			score("lgbm", "v1", 2, 1, 0, 0, 1, "0.2", "0.15", day(0), day(0)),
		},
	}, {
		// P4, P5 and P6: predicted from day 2 on.
		name: "filter on predict_time",
		req: &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{1},
			Filter: fmt.Sprintf(`predict_time >= %q`, day(2).AsTime().Format(time.RFC3339))},
		want: []*stockv1.RecommendationScore{
			score("analyst", "", 1, 2, 0, 0, 0.5, "0.125", "0.075", day(2), day(4)),
			score("lgbm", "v2", 1, 1, 0, 0, 0, "0.1", "-0.05", hours(3, 12), hours(3, 12)),
		},
	}, {
		// 5 bars after P1's entry (d0) is d5: A +0.2, the market (0.2-0.2+0.375+0)/4 =
		// 0.09375, excess 0.10625. P2's (d2) is beyond the bars: pending, as is all of 20 and 60.
		name: "default horizons",
		req:  &stockv1.GetRecommendationScoreboardRequest{Filter: `source = "lgbm" AND model_version = "v1"`},
		want: []*stockv1.RecommendationScore{
			score("lgbm", "v1", 5, 1, 1, 1, 1, "0.2", "0.10625", day(0), day(0)),
			score("lgbm", "v1", 20, 0, 2, 1, -1, "", "", nil, nil),
			score("lgbm", "v1", 60, 0, 2, 1, -1, "", "", nil, nil),
		},
	}, {
		name: "nothing matches",
		req:  &stockv1.GetRecommendationScoreboardRequest{Filter: `source = "nobody"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := e.client.GetRecommendationScoreboard(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("GetRecommendationScoreboard(%v): %v", tt.req, err)
			}
			if diff := cmp.Diff(tt.want, resp.GetScores(), protocmp.Transform()); diff != "" {
				t.Errorf("GetRecommendationScoreboard(%v) mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}

// TestGetRecommendationScoreboard_unscored: a prediction on a stock whose entry close is 0,
// and one before the benchmark's first bar, have exit bars but cannot be scored.
func TestGetRecommendationScoreboard_unscored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "Z", Name: "Zero"}, &stockv1.Stock{Symbol: "LATE", Name: "Late index"}, &stockv1.Stock{Symbol: "OK", Name: "Fine"})
	for _, row := range []struct {
		sym   string
		d     int
		close string
	}{{"Z", 0, "0"}, {"Z", 1, "5"}, {"OK", 0, "10"}, {"OK", 1, "11"}, {"LATE", 1, "100"}} {
		if _, err := e.pool.Exec(t.Context(), `INSERT INTO stock.prices (symbol, ts, open, high, low, close) VALUES ($1, $2, $3, $3, $3, $3)`,
			row.sym, day(row.d).AsTime(), row.close); err != nil {
			t.Fatal(err)
		}
	}
	e.upsertRecs(t, &stockv1.Recommendation{Symbol: "Z", Source: "m", Action: stockv1.Action_ACTION_BUY, PredictTime: day(0), Confidence: 1},
		&stockv1.Recommendation{Symbol: "OK", Source: "m", Action: stockv1.Action_ACTION_BUY, PredictTime: day(0), Confidence: 1})
	for _, bench := range []string{"", "LATE"} {
		resp, err := e.client.GetRecommendationScoreboard(t.Context(), &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{1}, BenchmarkSymbol: bench})
		if err != nil {
			t.Fatalf("GetRecommendationScoreboard(benchmark %q): %v", bench, err)
		}
		// The market over (d0, d1) is OK's 0.1 (Z's zero close is left out); LATE has no close on day 0.
		want := score("m", "", 1, 1, 0, 0, 0, "0.1", "0", day(0), day(0))
		want.UnscoredCount = 1
		if bench == "LATE" {
			want = score("m", "", 1, 0, 0, 0, -1, "", "", nil, nil)
			want.UnscoredCount = 2
		}
		if diff := cmp.Diff([]*stockv1.RecommendationScore{want}, resp.GetScores(), protocmp.Transform()); diff != "" {
			t.Errorf("GetRecommendationScoreboard(benchmark %q) mismatch (-want +got):\n%s", bench, diff)
		}
	}
}

// TestGetRecommendationScoreboard_badInput: horizons out of range, too many or repeated, a
// bad filter or benchmark are INVALID_ARGUMENT naming the field; an unknown benchmark is
// NOT_FOUND (STOCK_NOT_FOUND).
func TestGetRecommendationScoreboard_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedScoreboard(t, e)
	tests := []struct {
		name   string
		req    *stockv1.GetRecommendationScoreboardRequest
		code   codes.Code
		reason apierr.Reason
		field  string
	}{
		{"horizon 0", &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{5, 0}}, codes.InvalidArgument, apierr.InvalidField, "horizons_days[1]"},
		{"horizon 261", &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{261}}, codes.InvalidArgument, apierr.InvalidField, "horizons_days[0]"},
		{"negative horizon", &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{-5}}, codes.InvalidArgument, apierr.InvalidField, "horizons_days[0]"},
		{"9 horizons", &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{1, 2, 3, 4, 5, 6, 7, 8, 9}}, codes.InvalidArgument, apierr.InvalidField, "horizons_days"},
		{"repeated horizon", &stockv1.GetRecommendationScoreboardRequest{HorizonsDays: []int32{5, 20, 5}}, codes.InvalidArgument, apierr.InvalidField, "horizons_days[2]"},
		{"bad filter", &stockv1.GetRecommendationScoreboardRequest{Filter: `action = "ACTION_BUY"`}, codes.InvalidArgument, apierr.InvalidField, "filter"},
		{"filter syntax", &stockv1.GetRecommendationScoreboardRequest{Filter: `source = `}, codes.InvalidArgument, apierr.InvalidField, "filter"},
		{"bad benchmark", &stockv1.GetRecommendationScoreboardRequest{BenchmarkSymbol: "not a symbol"}, codes.InvalidArgument, apierr.InvalidField, "benchmark_symbol"},
		{"unknown benchmark", &stockv1.GetRecommendationScoreboardRequest{BenchmarkSymbol: "ZZZZ"}, codes.NotFound, apierr.StockNotFound, ""},
		{"unknown benchmark, nothing to score", &stockv1.GetRecommendationScoreboardRequest{BenchmarkSymbol: "ZZZZ", Filter: `source = "nobody"`}, codes.NotFound, apierr.StockNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.client.GetRecommendationScoreboard(t.Context(), tt.req)
			apptest.WantCode(t, err, tt.code)
			if tt.code == codes.NotFound {
				apptest.WantReason(t, err, tt.reason, map[string]string{"benchmark_symbol": tt.req.GetBenchmarkSymbol()})
				return
			}
			apptest.WantReason(t, err, tt.reason, nil)
			var fields []string
			for _, d := range status.Convert(err).Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if !slices.Contains(fields, tt.field) {
				t.Errorf("GetRecommendationScoreboard(%v) violations on %v, want one on %s", tt.req, fields, tt.field)
			}
		})
	}
}

// TestScoreboardMetrics: one refresh sets the gauges of every (source, model_version,
// horizon) from the market scoreboard at the default horizons; none scored leaves the ratio
// and excess absent; a refresh that fails keeps the values; a model whose predictions are
// gone loses its series at the next refresh.
func TestScoreboardMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.upsert(t, &stockv1.Stock{Symbol: "X", Name: "X"}, &stockv1.Stock{Symbol: "Y", Name: "Y"})
	// X rises 20% over 5 bars, Y stays: the market's (d0, d5) return is 0.1.
	if _, err := e.pool.Exec(t.Context(), `INSERT INTO stock.prices (symbol, ts, open, high, low, close)
		SELECT s, $1::timestamptz + d * interval '1 day', 1, 1, 1, CASE WHEN s = 'X' THEN 100 + 4 * d ELSE 100 END
		FROM unnest(ARRAY['X', 'Y']) AS s, generate_series(0, 6) AS d`, day(0).AsTime()); err != nil {
		t.Fatal(err)
	}
	e.upsertRecs(t, &stockv1.Recommendation{Symbol: "X", Source: "m1", ModelVersion: "v1", Action: stockv1.Action_ACTION_BUY, PredictTime: day(0), Confidence: 1},
		&stockv1.Recommendation{Symbol: "Y", Source: "m2", Action: stockv1.Action_ACTION_SELL, PredictTime: day(0), Confidence: 1})
	m := e.srv.ScoreboardMetrics(e.reg)
	if err := m.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	url := metricstest.Serve(t, e.reg)
	body := metricstest.Scrape(t, url)
	for _, want := range []string{
		`pgfleet_recommendation_hit_ratio{horizon_days="5",model_version="v1",source="m1"} 1`,
		`pgfleet_recommendation_excess_return{horizon_days="5",model_version="v1",source="m1"} 0.1`,
		`pgfleet_recommendation_scored_predictions{horizon_days="5",model_version="v1",source="m1"} 1`,
		`pgfleet_recommendation_scored_predictions{horizon_days="20",model_version="v1",source="m1"} 0`,
		`pgfleet_recommendation_scored_predictions{horizon_days="60",model_version="v1",source="m1"} 0`,
		// Y's SELL: return 0, market 0.1, directional excess -(0 - 0.1) = 0.1, a hit.
		`pgfleet_recommendation_hit_ratio{horizon_days="5",model_version="",source="m2"} 1`,
		`pgfleet_recommendation_excess_return{horizon_days="5",model_version="",source="m2"} 0.1`,
	} {
		metricstest.WantLine(t, body, want)
	}
	for _, absent := range []string{
		`pgfleet_recommendation_hit_ratio{horizon_days="20"`,
		`pgfleet_recommendation_excess_return{horizon_days="60"`,
	} {
		if metricstest.HasLine(body, absent) {
			t.Errorf("scrape has %s..., want no series with nothing scored:\n%s", absent, metricstest.Lines(body, "pgfleet_recommendation_"))
		}
	}

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := m.Refresh(cancelled); err == nil {
		t.Fatal("Refresh with a cancelled context succeeded, want an error")
	}
	if after := metricstest.Scrape(t, url); metricstest.Lines(after, "pgfleet_recommendation_") != metricstest.Lines(body, "pgfleet_recommendation_") {
		t.Errorf("a failed refresh changed the gauges:\nbefore:\n%s\nafter:\n%s", metricstest.Lines(body, "pgfleet_recommendation_"), metricstest.Lines(after, "pgfleet_recommendation_"))
	}

	if _, err := e.pool.Exec(t.Context(), `DELETE FROM stock.recommendation_history WHERE source = 'm2'`); err != nil {
		t.Fatal(err)
	}
	if err := m.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	body = metricstest.Scrape(t, url)
	if metricstest.HasLine(body, `pgfleet_recommendation_scored_predictions{horizon_days="5",model_version="",source="m2"}`) ||
		metricstest.HasLine(body, `pgfleet_recommendation_hit_ratio{horizon_days="5",model_version="",source="m2"}`) {
		t.Errorf("m2's series remain after its predictions are gone:\n%s", metricstest.Lines(body, "pgfleet_recommendation_"))
	}
	metricstest.WantLine(t, body, `pgfleet_recommendation_hit_ratio{horizon_days="5",model_version="v1",source="m1"} 1`)
}

// TestGetRecommendationScoreboard_timeout: a statement that cannot finish within
// SCOREBOARD_TIMEOUT (here, waiting for a lock another transaction holds on the prices) is
// cancelled by its statement_timeout and answered DEADLINE_EXCEEDED, before the call's own
// deadline.
func TestGetRecommendationScoreboard_timeout(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, map[string]string{"SCOREBOARD_TIMEOUT": "100ms"})
	seedScoreboard(t, e)
	tx, err := e.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(t.Context())) //nolint:errcheck // a rollback of a read
	if _, err := tx.Exec(t.Context(), `LOCK TABLE stock.prices IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetRecommendationScoreboard(t.Context(), &stockv1.GetRecommendationScoreboardRequest{})
	apptest.WantCode(t, err, codes.DeadlineExceeded)
	apptest.WantReason(t, err, apierr.DeadlineExceeded, nil)
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "SCOREBOARD_TIMEOUT") {
		t.Errorf("GetRecommendationScoreboard past the timeout: message %q, want it to name SCOREBOARD_TIMEOUT", msg)
	}
}
