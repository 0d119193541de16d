package api

import (
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
)

// writers may change market data: stocks, prices, recommendations.
var writers = auth.Roles(auth.RoleIngest, auth.RoleAdmin)

// Policy: market data is public to read and to watch (WatchLatestPrices, WatchStockEvents: the
// service's rule); writes need the ingest or admin role.
var Policy = auth.Policy{
	stockv1.StockService_ServiceDesc.ServiceName:              auth.Public,
	stockv1.StockService_UpsertStocks_FullMethodName:          writers,
	stockv1.StockService_DeleteStock_FullMethodName:           writers,
	stockv1.StockService_IngestPrices_FullMethodName:          writers,
	stockv1.StockService_UpsertRecommendations_FullMethodName: writers,
}
