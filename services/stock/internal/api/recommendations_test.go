package api_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

func TestRecommendations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 3)
	recs := []*stockv1.Recommendation{
		{Symbol: "S000", Source: "model", Action: stockv1.Action_ACTION_BUY, TargetPrice: "120.5", Confidence: 0.8, Rationale: "momentum"},
		{Symbol: "S001", Source: "model", Action: stockv1.Action_ACTION_SELL, Confidence: 0.6},
		{Symbol: "S002", Source: "model", Action: stockv1.Action_ACTION_BUY, TargetPrice: "10", Confidence: 0.9},
		{Symbol: "S002", Source: "analyst", Action: stockv1.Action_ACTION_HOLD, Confidence: 0.5},
	}
	resp, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{Recommendations: recs})
	if err != nil {
		t.Fatalf("UpsertRecommendations: %v", err)
	}
	if resp.GetInsertedCount() != 4 {
		t.Errorf("inserted %d, want 4", resp.GetInsertedCount())
	}
	list, err := e.client.ListRecommendations(t.Context(), &stockv1.ListRecommendationsRequest{
		Filter: `action = ACTION_BUY AND confidence >= 0.5`, OrderBy: "confidence desc",
	})
	if err != nil {
		t.Fatalf("ListRecommendations: %v", err)
	}
	want := []*stockv1.Recommendation{recs[2], recs[0]}
	if diff := cmp.Diff(want, list.GetRecommendations(), protocmp.Transform(),
		protocmp.IgnoreFields(&stockv1.Recommendation{}, "create_time", "update_time", "predict_time")); diff != "" {
		t.Errorf("ListRecommendations mismatch (-want +got):\n%s", diff)
	}

	tests := []struct {
		name string
		rec  *stockv1.Recommendation
	}{
		{"unknown stock", &stockv1.Recommendation{Symbol: "NOPE", Source: "model", Action: stockv1.Action_ACTION_BUY}},
		{"no action", &stockv1.Recommendation{Symbol: "S000", Source: "x"}},
		{"confidence above 1", &stockv1.Recommendation{Symbol: "S000", Source: "x", Action: stockv1.Action_ACTION_BUY, Confidence: 1.5}},
		{"negative target", &stockv1.Recommendation{Symbol: "S000", Source: "x", Action: stockv1.Action_ACTION_BUY, TargetPrice: "-3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.client.UpsertRecommendations(t.Context(), &stockv1.UpsertRecommendationsRequest{
				Recommendations: []*stockv1.Recommendation{tt.rec}})
			apptest.WantCode(t, err, codes.InvalidArgument)
		})
	}
}
