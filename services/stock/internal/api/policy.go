package api

import (
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
)

// writers may change market data: stocks, prices, recommendations.
var writers = auth.Roles(auth.RoleIngest, auth.RoleAdmin)

// Policy: market data is public to read and to watch (WatchLatestPrices, WatchStockEvents: the
// service's rule); writes need the ingest or admin role, and so does every ingestion job and
// run RPC, reads included.
var Policy = auth.Policy{
	stockv1.StockService_ServiceDesc.ServiceName:              auth.Public,
	stockv1.StockService_UpsertStocks_FullMethodName:          writers,
	stockv1.StockService_DeleteStock_FullMethodName:           writers,
	stockv1.StockService_IngestPrices_FullMethodName:          writers,
	stockv1.StockService_UpsertRecommendations_FullMethodName: writers,
	// The ingestion pipeline's jobs and runs are operator data: reads too need ingest or admin.
	stockv1.StockService_CreateIngestionJob_FullMethodName:   writers,
	stockv1.StockService_GetIngestionJob_FullMethodName:      writers,
	stockv1.StockService_ListIngestionJobs_FullMethodName:    writers,
	stockv1.StockService_UpdateIngestionJob_FullMethodName:   writers,
	stockv1.StockService_DeleteIngestionJob_FullMethodName:   writers,
	stockv1.StockService_RunIngestionJob_FullMethodName:      writers,
	stockv1.StockService_ListIngestionRuns_FullMethodName:    writers,
	stockv1.StockService_GetIngestionRun_FullMethodName:      writers,
	stockv1.StockService_CancelIngestionRun_FullMethodName:   writers,
	stockv1.StockService_ListIngestionRejects_FullMethodName: writers,
}
