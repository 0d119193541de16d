package api

import (
	"cmp"
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// ListRecommendations returns a page of recommendations.
func (s *Server) ListRecommendations(ctx context.Context, req *stockv1.ListRecommendationsRequest) (*stockv1.ListRecommendationsResponse, error) {
	recs, next, err := query.List(ctx, s.retry, &s.lists.recommendations, query.RequestOf(req, ""),
		s.store.ListRecommendations, toRecommendation)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListRecommendationsResponse{Recommendations: recs, NextPageToken: next}, nil
}

// ListRecommendationHistory returns a page of past predictions, newest first by default.
func (s *Server) ListRecommendationHistory(ctx context.Context, req *stockv1.ListRecommendationHistoryRequest) (*stockv1.ListRecommendationHistoryResponse, error) {
	recs, next, err := query.List(ctx, s.retry, &s.lists.history, query.RequestOf(req, ""),
		s.store.ListRecommendationHistory, toPastRecommendation)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListRecommendationHistoryResponse{Recommendations: recs, NextPageToken: next}, nil
}

// UpsertRecommendations records recommendations in one transaction, with a
// RecommendationChanged event per row inserted or replaced; every stock must exist. The
// store appends the predictions to the history in the same statement.
func (s *Server) UpsertRecommendations(ctx context.Context, req *stockv1.UpsertRecommendationsRequest) (*stockv1.UpsertRecommendationsResponse, error) {
	recs := make([]store.Recommendation, len(req.GetRecommendations()))
	symbols := make([]string, len(recs))
	for i, r := range req.GetRecommendations() {
		recs[i] = fromRecommendation(r)
		symbols[i] = r.GetSymbol()
	}
	var inserted, updated int
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		missing, err := st.MissingStocks(ctx, symbols)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return &store.UnknownStocksError{Symbols: missing}
		}
		changed, err := st.UpsertRecommendations(ctx, recs)
		if err != nil {
			return err
		}
		slices.SortFunc(changed, func(a, b store.RecommendationChange) int {
			return cmp.Or(strings.Compare(a.Symbol, b.Symbol), strings.Compare(a.Source, b.Source))
		})
		inserted, updated = 0, 0
		var evs changes
		for _, c := range changed {
			if c.Inserted {
				inserted++
			} else {
				updated++
			}
			if err := evs.add(c.Symbol, &stockv1.RecommendationChanged{Recommendation: toRecommendation(c.Recommendation)}); err != nil {
				return err
			}
		}
		return evs.appendTo(ctx, s.outbox, tx)
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	s.outbox.Committed()
	return &stockv1.UpsertRecommendationsResponse{InsertedCount: int32(inserted), UpdatedCount: int32(updated)}, nil
}
