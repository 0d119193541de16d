package api

import (
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// Routes: the list pages (portfolios, trades, cash movements, the value history) tolerate the
// replicas' lag bound, or see a write whose consistency token they carry; a user, a portfolio
// and its valuation (at a time too) and its profit and loss are read on the primary, as is
// everything a write decides on. The watch streams read the outbox, which lives on the primary.
var Routes = replica.Routes{
	portfoliov1.PortfolioService_ListPortfolios_FullMethodName:       replica.Replica,
	portfoliov1.PortfolioService_ListTrades_FullMethodName:           replica.Replica,
	portfoliov1.PortfolioService_ListCashMovements_FullMethodName:    replica.Replica,
	portfoliov1.PortfolioService_ListPortfolioValues_FullMethodName:  replica.Replica,
	portfoliov1.PortfolioService_GetPortfolioPnl_FullMethodName:      replica.Primary,
	portfoliov1.PortfolioService_GetUser_FullMethodName:              replica.Primary,
	portfoliov1.PortfolioService_GetPortfolio_FullMethodName:         replica.Primary,
	portfoliov1.PortfolioService_CreateUser_FullMethodName:           replica.Primary,
	portfoliov1.PortfolioService_CreatePortfolio_FullMethodName:      replica.Primary,
	portfoliov1.PortfolioService_Deposit_FullMethodName:              replica.Primary,
	portfoliov1.PortfolioService_Withdraw_FullMethodName:             replica.Primary,
	portfoliov1.PortfolioService_ExecuteTrade_FullMethodName:         replica.Primary,
	portfoliov1.PortfolioService_WatchPortfolio_FullMethodName:       replica.Primary,
	portfoliov1.PortfolioService_WatchPortfolioEvents_FullMethodName: replica.Primary,
}
