package api

import (
	"context"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// GetStock returns one stock by symbol.
func (s *Server) GetStock(ctx context.Context, req *stockv1.GetStockRequest) (*stockv1.GetStockResponse, error) {
	var st store.Stock
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		st, err = s.store.GetStock(ctx, req.GetSymbol())
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.GetStockResponse{Stock: toStock(st)}, nil
}

// ListStocks returns a page of stocks.
func (s *Server) ListStocks(ctx context.Context, req *stockv1.ListStocksRequest) (*stockv1.ListStocksResponse, error) {
	stocks, next, err := query.List(ctx, s.retry, &s.lists.stocks, query.RequestOf(req, ""), s.store.ListStocks, toStock)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListStocksResponse{Stocks: stocks, NextPageToken: next}, nil
}

// BatchGetStocks returns the stocks that exist among the symbols, in request order.
func (s *Server) BatchGetStocks(ctx context.Context, req *stockv1.BatchGetStocksRequest) (*stockv1.BatchGetStocksResponse, error) {
	var rows []store.Stock
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		rows, err = s.store.BatchGetStocks(ctx, req.GetSymbols())
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	bySymbol := make(map[string]store.Stock, len(rows))
	for _, st := range rows {
		bySymbol[st.Symbol] = st
	}
	resp := &stockv1.BatchGetStocksResponse{}
	for _, sym := range req.GetSymbols() {
		if st, ok := bySymbol[sym]; ok {
			resp.Stocks = append(resp.Stocks, toStock(st))
		} else {
			resp.MissingSymbols = append(resp.MissingSymbols, sym)
		}
	}
	return resp, nil
}

// UpsertStocks inserts and updates stocks in one transaction, with a StockChanged event per
// stock inserted or changed, and a LatestPriceChanged without a price for a delisted symbol
// stored again (its final price goes), or with the latest price in its new currency for a
// stock whose currency changed.
func (s *Server) UpsertStocks(ctx context.Context, req *stockv1.UpsertStocksRequest) (*stockv1.UpsertStocksResponse, error) {
	stocks := make([]store.Stock, len(req.GetStocks()))
	for i, st := range req.GetStocks() {
		stocks[i] = fromStock(st)
	}
	var inserted, updated int
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		changed, err := s.store.WithTx(tx).UpsertStocks(ctx, stocks)
		if err != nil {
			return err
		}
		slices.SortFunc(changed, func(a, b store.StockChange) int { return strings.Compare(a.Symbol, b.Symbol) })
		inserted, updated = 0, 0
		var evs changes
		for _, c := range changed {
			if c.Inserted {
				inserted++
			} else {
				updated++
			}
			if err := evs.add(c.Symbol, &stockv1.StockChanged{Stock: toStock(c.Stock)}); err != nil {
				return err
			}
			switch {
			case c.Cleared:
				err = evs.latestPrice(c.Symbol, nil)
			case c.Latest != nil:
				err = evs.latestPrice(c.Symbol, c.Latest)
			}
			if err != nil {
				return err
			}
		}
		return evs.appendTo(ctx, s.outbox, tx)
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	s.outbox.Committed()
	return &stockv1.UpsertStocksResponse{InsertedCount: int32(inserted), UpdatedCount: int32(updated)}, nil
}

// DeleteStock deletes a stock, its price history and its recommendations, and keeps its
// latest price as its final one (delisted), for portfolios that still hold it: a StockDeleted
// event, and a LatestPriceChanged with the final price if it had one.
func (s *Server) DeleteStock(ctx context.Context, req *stockv1.DeleteStockRequest) (*stockv1.DeleteStockResponse, error) {
	sym := req.GetSymbol()
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := s.locks.Acquire(ctx, tx, stockLock(sym), lock.Write); err != nil {
			return err
		}
		at, final, err := s.store.WithTx(tx).DeleteStock(ctx, sym)
		if err != nil {
			return err
		}
		var evs changes
		if err := evs.add(sym, &stockv1.StockDeleted{Symbol: sym, DelistTime: timestamppb.New(at)}); err != nil {
			return err
		}
		if final != nil {
			if err := evs.latestPrice(sym, final); err != nil {
				return err
			}
		}
		return evs.appendTo(ctx, s.outbox, tx)
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	s.outbox.Committed()
	return &stockv1.DeleteStockResponse{}, nil
}
