package api

import (
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// Routes: market data reads tolerate the replicas' lag bound (stocks, bars, exports,
// recommendations); the latest prices stay on the primary, since trades execute at them, and
// so do the watches, which read the outbox there.
var Routes = replica.Routes{
	stockv1.StockService_GetStock_FullMethodName:                  replica.Replica,
	stockv1.StockService_ListStocks_FullMethodName:                replica.Replica,
	stockv1.StockService_BatchGetStocks_FullMethodName:            replica.Replica,
	stockv1.StockService_ListPrices_FullMethodName:                replica.Replica,
	stockv1.StockService_StreamPrices_FullMethodName:              replica.Replica,
	stockv1.StockService_ExportPrices_FullMethodName:              replica.Replica,
	stockv1.StockService_ListBars_FullMethodName:                  replica.Replica,
	stockv1.StockService_ListRecommendations_FullMethodName:       replica.Replica,
	stockv1.StockService_ListRecommendationHistory_FullMethodName: replica.Replica,
	stockv1.StockService_GetLatestPrices_FullMethodName:           replica.Primary,
	stockv1.StockService_UpsertStocks_FullMethodName:              replica.Primary,
	stockv1.StockService_DeleteStock_FullMethodName:               replica.Primary,
	stockv1.StockService_IngestPrices_FullMethodName:              replica.Primary,
	stockv1.StockService_UpsertRecommendations_FullMethodName:     replica.Primary,
	stockv1.StockService_WatchLatestPrices_FullMethodName:         replica.Primary,
	stockv1.StockService_WatchStockEvents_FullMethodName:          replica.Primary,
	// Ingestion jobs and runs: every read on the primary. A run's progress (rows_in, state)
	// moves by the second and an operator polls it after RunIngestionJob or a cancel; a
	// replica behind would show a run queued after it started, or a job missing just after
	// its create. The rows are few, so the primary pays little.
	stockv1.StockService_CreateIngestionJob_FullMethodName:   replica.Primary,
	stockv1.StockService_GetIngestionJob_FullMethodName:      replica.Primary,
	stockv1.StockService_ListIngestionJobs_FullMethodName:    replica.Primary,
	stockv1.StockService_UpdateIngestionJob_FullMethodName:   replica.Primary,
	stockv1.StockService_DeleteIngestionJob_FullMethodName:   replica.Primary,
	stockv1.StockService_RunIngestionJob_FullMethodName:      replica.Primary,
	stockv1.StockService_ListIngestionRuns_FullMethodName:    replica.Primary,
	stockv1.StockService_GetIngestionRun_FullMethodName:      replica.Primary,
	stockv1.StockService_CancelIngestionRun_FullMethodName:   replica.Primary,
	stockv1.StockService_ListIngestionRejects_FullMethodName: replica.Primary,

	// The scoreboard reads the history and the prices, as the lists do.
	stockv1.StockService_GetRecommendationScoreboard_FullMethodName: replica.Replica,
}
