package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// Scoreboard horizons, in trading bars.
const (
	maxHorizon  = 260 // about a year of daily bars
	maxHorizons = 8
)

// DefaultHorizons are the horizons of a request without any, and of the metrics.
var DefaultHorizons = []int32{5, 20, 60}

// ScoreboardConfig bounds the scoreboard's statement and sets its metrics' refresh.
type ScoreboardConfig struct {
	// Timeout is the scoreboard statement's statement_timeout: a history too large for it
	// answers DEADLINE_EXCEEDED rather than holding a replica's connection.
	Timeout time.Duration `env:"SCOREBOARD_TIMEOUT, default=10s" help:"statement_timeout of GetRecommendationScoreboard's statement and of the metrics' refresh; beyond it DEADLINE_EXCEEDED (narrow the filter)"`
	// Refresh is how often the pgfleet_recommendation_* gauges are recomputed; 0: never.
	Refresh time.Duration `env:"SCOREBOARD_REFRESH, default=15m" help:"how often the recommendation scoreboard gauges (pgfleet_recommendation_*) are recomputed in the background, default horizons, all predictions; 0: disabled"`
}

// GetRecommendationScoreboard scores the predictions the filter selects; see the proto.
func (s *Server) GetRecommendationScoreboard(ctx context.Context, req *stockv1.GetRecommendationScoreboardRequest) (*stockv1.GetRecommendationScoreboardResponse, error) {
	horizons := req.GetHorizonsDays()
	if len(horizons) == 0 {
		horizons = DefaultHorizons
	}
	scores, err := s.scoreboard(ctx, req.GetFilter(), horizons, req.GetBenchmarkSymbol())
	if err != nil {
		return nil, s.scoreboardError(ctx, err)
	}
	resp := &stockv1.GetRecommendationScoreboardResponse{Scores: make([]*stockv1.RecommendationScore, len(scores))}
	for i, sc := range scores {
		resp.Scores[i] = toScore(sc)
	}
	return resp, nil
}

// scoreboard runs the scoring statement in a read-only transaction (on the call's replica)
// under a statement_timeout of s.score.Timeout, without JIT.
func (s *Server) scoreboard(ctx context.Context, filter string, horizons []int32, benchmark string) ([]store.Score, error) {
	q, err := s.lists.scoreboard.Build(query.Request{Filter: filter})
	if err != nil {
		return nil, err
	}
	var scores []store.Score
	err = s.retry.RunTx(ctx, s.db, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// JIT off: the statement's estimated cost (a probe of every partition per prediction
		// and horizon) passes jit_above_cost, and compiling its plan takes seconds to
		// minutes, where running it takes milliseconds.
		ms := strconv.FormatInt(s.score.Timeout.Milliseconds(), 10) // 0: no bound
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('jit', 'off', true)`, ms); err != nil {
			return fmt.Errorf("set statement_timeout: %w", err)
		}
		var err error
		scores, err = s.store.WithTx(tx).Scoreboard(ctx, q, horizons, benchmark)
		return err
	})
	return scores, err
}

// scoreboardError is grpcError, with the statement timeout as DEADLINE_EXCEEDED.
func (s *Server) scoreboardError(ctx context.Context, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.QueryCanceled && ctx.Err() == nil {
		return apierr.New(apierr.DeadlineExceeded,
			fmt.Sprintf("the scoreboard took longer than SCOREBOARD_TIMEOUT (%s): narrow the filter", s.score.Timeout), nil)
	}
	return s.grpcError(ctx, err)
}

func toScore(sc store.Score) *stockv1.RecommendationScore {
	out := &stockv1.RecommendationScore{
		Source: sc.Source, ModelVersion: sc.ModelVersion, HorizonDays: sc.HorizonDays,
		ScoredCount: sc.Scored, PendingCount: sc.Pending, HoldCount: sc.Holds, UnscoredCount: sc.Unscored,
		AverageReturn: sc.AverageReturn, AverageExcessReturn: sc.AverageExcess,
	}
	if sc.Scored > 0 {
		rate := float64(sc.Hits) / float64(sc.Scored)
		out.HitRate = &rate
		out.FirstPredictTime, out.LastPredictTime = timestamppb.New(sc.First), timestamppb.New(sc.Last)
	}
	return out
}

// ScoreboardMetrics keeps the scoreboard's gauges, per source, model_version and
// horizon_days, recomputed by Refresh from the scoreboard of every prediction at
// DefaultHorizons against the market.
type ScoreboardMetrics struct {
	s                   *Server
	hit, excess, scored *prometheus.GaugeVec
	models              map[[2]string]bool // (source, model_version) of the last refresh
}

// ScoreboardMetrics registers the scoreboard's gauges on reg.
func (s *Server) ScoreboardMetrics(reg prometheus.Registerer) *ScoreboardMetrics {
	labels := []string{"source", "model_version", "horizon_days"}
	m := &ScoreboardMetrics{
		s: s,
		hit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_recommendation_hit_ratio",
			Help: "Share of a model's scored predictions whose directional excess return over the market is above zero; absent with none scored."}, labels),
		excess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_recommendation_excess_return",
			Help: "Mean directional excess return of a model's scored predictions over the market (0.01 is 1%); absent with none scored."}, labels),
		scored: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgfleet_recommendation_scored_predictions",
			Help: "Predictions of a model scored at the horizon (BUY/SELL with an exit bar)."}, labels),
		models: map[[2]string]bool{},
	}
	reg.MustRegister(m.hit, m.excess, m.scored)
	return m
}

// Refresh recomputes the gauges, on a replica when one is usable, and deletes the series
// of the models that are gone. On an error the gauges keep their values.
func (m *ScoreboardMetrics) Refresh(ctx context.Context) error {
	scores, err := m.s.scoreboard(replica.WithReplicaReads(ctx, 0), "", DefaultHorizons, "")
	if err != nil {
		return err
	}
	seen := make(map[[2]string]bool, len(m.models))
	for _, sc := range scores {
		seen[[2]string{sc.Source, sc.ModelVersion}] = true
		l := prometheus.Labels{"source": sc.Source, "model_version": sc.ModelVersion, "horizon_days": strconv.Itoa(int(sc.HorizonDays))}
		m.scored.With(l).Set(float64(sc.Scored))
		excess, err := strconv.ParseFloat(sc.AverageExcess, 64)
		if sc.Scored == 0 || err != nil {
			m.hit.Delete(l)
			m.excess.Delete(l)
			continue
		}
		m.hit.With(l).Set(float64(sc.Hits) / float64(sc.Scored))
		m.excess.With(l).Set(excess)
	}
	for model := range m.models {
		if !seen[model] {
			l := prometheus.Labels{"source": model[0], "model_version": model[1]}
			m.hit.DeletePartialMatch(l)
			m.excess.DeletePartialMatch(l)
			m.scored.DeletePartialMatch(l)
		}
	}
	m.models = seen
	return nil
}

// Run refreshes the gauges at once and then every interval until ctx ends; a failed
// refresh is logged, and the gauges keep the last values.
func (m *ScoreboardMetrics) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.s.log.WarnContext(ctx, "scoreboard metrics refresh failed; keeping the last values", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
