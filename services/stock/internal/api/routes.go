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
}
