package api_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
)

// TestPolicy: market data is public to read and watch; writes, and the ingestion pipeline's
// reads, need role ingest or admin.
func TestPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	stock := &stockv1.Stock{Symbol: "AAPL", Name: "Apple Inc."}
	upsert := func(opts ...grpc.CallOption) error {
		_, err := e.user.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{stock}}, opts...)
		return err
	}
	apptest.WantCode(t, upsert(), codes.Unauthenticated)
	apptest.WantCode(t, upsert(authtest.As(t, "ada@example.com")), codes.PermissionDenied)
	if err := upsert(authtest.As(t, "loader", "ingest")); err != nil {
		t.Fatalf("UpsertStocks with role ingest: %v", err)
	}
	_, err := e.user.DeleteStock(ctx, &stockv1.DeleteStockRequest{Symbol: "AAPL"}, authtest.As(t, "ada@example.com"))
	apptest.WantCode(t, err, codes.PermissionDenied)
	stream, err := e.user.IngestPrices(ctx)
	if err == nil {
		_, err = stream.CloseAndRecv()
	}
	apptest.WantCode(t, err, codes.Unauthenticated)

	if _, err := e.user.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAPL"}); err != nil {
		t.Errorf("GetStock without a token: %v", err)
	}
	if _, err := e.user.ListStocks(ctx, &stockv1.ListStocksRequest{}); err != nil {
		t.Errorf("ListStocks without a token: %v", err)
	}
	if _, err := e.user.ListRecommendationHistory(ctx, &stockv1.ListRecommendationHistoryRequest{}); err != nil {
		t.Errorf("ListRecommendationHistory without a token: %v", err)
	}
	// Ingestion jobs and runs are operator data: reads need ingest or admin too.
	_, err = e.user.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{})
	apptest.WantCode(t, err, codes.Unauthenticated)
	_, err = e.user.GetIngestionJob(ctx, &stockv1.GetIngestionJobRequest{JobId: "j"}, authtest.As(t, "ada@example.com"))
	apptest.WantCode(t, err, codes.PermissionDenied)
	if _, err := e.user.ListIngestionJobs(ctx, &stockv1.ListIngestionJobsRequest{}, authtest.As(t, "loader", "ingest")); err != nil {
		t.Errorf("ListIngestionJobs with role ingest: %v", err)
	}
	if _, err := e.user.GetRecommendationScoreboard(ctx, &stockv1.GetRecommendationScoreboardRequest{}); err != nil {
		t.Errorf("GetRecommendationScoreboard without a token: %v", err)
	}
	// The watches are market data too.
	prices, err := e.user.WatchLatestPrices(ctx, &stockv1.WatchLatestPricesRequest{Symbols: []string{"AAPL"}})
	if err == nil {
		_, err = prices.Recv()
	}
	if err != nil {
		t.Errorf("WatchLatestPrices without a token: %v", err)
	}
	evs, err := e.user.WatchStockEvents(ctx, &stockv1.WatchStockEventsRequest{})
	if err == nil {
		_, err = evs.Recv()
	}
	if err != nil {
		t.Errorf("WatchStockEvents without a token: %v", err)
	}
}

// TestValidate_everyMethod does for validation what Policy does for access: every RPC of the
// service has a case in Validate (an empty one when there is nothing to check), and a
// request without one is refused.
func TestValidate_everyMethod(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, api.Validate, stockv1.File_pgfleet_stock_v1_stock_proto)
}

// TestRoutes_everyMethod: every RPC says where it reads, and no write reads on a replica.
func TestRoutes_everyMethod(t *testing.T) {
	t.Parallel()
	if err := api.Routes.Check(stockv1.File_pgfleet_stock_v1_stock_proto); err != nil {
		t.Error(err)
	}
}
