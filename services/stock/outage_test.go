package main

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestOutage stops the database under the real service, with its default retry and breaker
// settings: every call, from the first (while the retrier still retries refused
// connections) to the last (once the breaker has opened), answers UNAVAILABLE with reason
// DATABASE_UNAVAILABLE, never ABORTED (issue 11: the first calls of an outage were reported
// as concurrency conflicts).
func TestOutage(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":  cluster.NewDBURL(t),
		"DRAIN_TIMEOUT": "2s",
		"INGEST_DIR":    t.TempDir(),
	})
	apptest.AwaitHealth(t, svc.Conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)
	c := stockv1.NewStockServiceClient(svc.Conn)
	if _, err := c.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{
		Stocks: []*stockv1.Stock{{Symbol: "AAPL", Name: "Apple Inc."}}}); err != nil {
		t.Fatalf("UpsertStocks before the outage: %v", err)
	}
	bar := &stockv1.Price{Symbol: "AAPL", Time: timestamppb.New(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)),
		Open: "1", High: "1", Low: "1", Close: "1", Volume: 1}

	cluster.StopUntilCleanup(t)
	apptest.RequireUnavailable(t, 3,
		apptest.Call{Name: "GetStock", Do: func(ctx context.Context) error {
			_, err := c.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAPL"})
			return err
		}},
		apptest.Call{Name: "ListStocks", Do: func(ctx context.Context) error {
			_, err := c.ListStocks(ctx, &stockv1.ListStocksRequest{})
			return err
		}},
		apptest.Call{Name: "BatchGetStocks", Do: func(ctx context.Context) error {
			_, err := c.BatchGetStocks(ctx, &stockv1.BatchGetStocksRequest{Symbols: []string{"AAPL"}})
			return err
		}},
		apptest.Call{Name: "UpsertStocks", Do: func(ctx context.Context) error {
			_, err := c.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "MSFT", Name: "Microsoft"}}})
			return err
		}},
		apptest.Call{Name: "DeleteStock", Do: func(ctx context.Context) error {
			_, err := c.DeleteStock(ctx, &stockv1.DeleteStockRequest{Symbol: "AAPL"})
			return err
		}},
		apptest.Call{Name: "GetLatestPrices", Do: func(ctx context.Context) error {
			_, err := c.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: []string{"AAPL"}})
			return err
		}},
		apptest.Call{Name: "ListPrices", Do: func(ctx context.Context) error {
			_, err := c.ListPrices(ctx, &stockv1.ListPricesRequest{Symbol: "AAPL"})
			return err
		}},
		apptest.Call{Name: "CreateIngestionJob", Do: func(ctx context.Context) error {
			_, err := c.CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{Job: &stockv1.IngestionJob{
				JobId: "j", Source: stockv1.IngestionSource_INGESTION_SOURCE_FILES, Schedule: "@daily"}})
			return err
		}},
		apptest.Call{Name: "GetIngestionRun", Do: func(ctx context.Context) error {
			_, err := c.GetIngestionRun(ctx, &stockv1.GetIngestionRunRequest{RunId: 1})
			return err
		}},
		apptest.Call{Name: "ListIngestionRuns", Do: func(ctx context.Context) error {
			_, err := c.ListIngestionRuns(ctx, &stockv1.ListIngestionRunsRequest{})
			return err
		}},
		apptest.Call{Name: "ListBars", Do: func(ctx context.Context) error {
			_, err := c.ListBars(ctx, &stockv1.ListBarsRequest{Symbol: "AAPL", Interval: stockv1.Interval_INTERVAL_WEEK})
			return err
		}},
		apptest.Call{Name: "StreamPrices", Do: func(ctx context.Context) error {
			stream, err := c.StreamPrices(ctx, &stockv1.StreamPricesRequest{Symbol: "AAPL"})
			if err != nil {
				return err
			}
			for {
				if _, err := stream.Recv(); err != nil {
					return err
				}
			}
		}},
		apptest.Call{Name: "IngestPrices", Do: func(ctx context.Context) error {
			stream, err := c.IngestPrices(ctx)
			if err != nil {
				return err
			}
			_ = stream.Send(&stockv1.IngestPricesRequest{Prices: []*stockv1.Price{bar}}) // io.EOF: the status follows
			_, err = stream.CloseAndRecv()
			return err
		}},
		apptest.Call{Name: "ListRecommendations", Do: func(ctx context.Context) error {
			_, err := c.ListRecommendations(ctx, &stockv1.ListRecommendationsRequest{})
			return err
		}},
		apptest.Call{Name: "ListRecommendationHistory", Do: func(ctx context.Context) error {
			_, err := c.ListRecommendationHistory(ctx, &stockv1.ListRecommendationHistoryRequest{})
			return err
		}},
		apptest.Call{Name: "GetRecommendationScoreboard", Do: func(ctx context.Context) error {
			_, err := c.GetRecommendationScoreboard(ctx, &stockv1.GetRecommendationScoreboardRequest{})
			return err
		}},
		apptest.Call{Name: "UpsertRecommendations", Do: func(ctx context.Context) error {
			_, err := c.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{
				{Symbol: "AAPL", Source: "model", Action: stockv1.Action_ACTION_BUY}}})
			return err
		}},
	)
}
