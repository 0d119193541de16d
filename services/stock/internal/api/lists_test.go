package api_test

import (
	"context"
	"fmt"
	"testing"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/query/querytest"
)

// TestList_everyOrderPages walks ListStocks and ListRecommendations in small pages under
// every order they accept: the page tokens hold each sort field's value of the last row.
func TestList_everyOrderPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stocks := seedStocks(t, e, 40)
	var recs []*stockv1.Recommendation
	for i, st := range stocks {
		for j, source := range []string{"model", "analyst"} {
			recs = append(recs, &stockv1.Recommendation{
				Symbol: st.GetSymbol(), Source: source, Action: stockv1.Action(1 + (i+j)%3), Confidence: float64((i*7+j)%10) / 10,
			})
		}
	}
	if _, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: recs}); err != nil {
		t.Fatalf("UpsertRecommendations: %v", err)
	}

	t.Run("stocks", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListStocks(ctx, &stockv1.ListStocksRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			var keys []string
			for _, st := range resp.GetStocks() {
				keys = append(keys, st.GetSymbol())
			}
			return keys, resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 7, "symbol", "name", "sector", "industry", "exchange", "currency",
			"market_cap", "create_time", "update_time")
	})
	t.Run("recommendations", func(t *testing.T) {
		t.Parallel()
		list := func(ctx context.Context, orderBy, token string, size int32) ([]string, string, error) {
			resp, err := e.client.ListRecommendations(ctx, &stockv1.ListRecommendationsRequest{OrderBy: orderBy, PageToken: token, PageSize: size})
			var keys []string
			for _, r := range resp.GetRecommendations() {
				keys = append(keys, fmt.Sprintf("%s/%s", r.GetSymbol(), r.GetSource()))
			}
			return keys, resp.GetNextPageToken(), err
		}
		querytest.PagesMatch(t, list, 7, "symbol", "source", "action", "confidence", "create_time", "update_time")
	})
}
