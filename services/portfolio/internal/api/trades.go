package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/ledger"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// ExecuteTrade buys or sells at the stock service's latest price, once per request_id.
func (s *Server) ExecuteTrade(ctx context.Context, req *portfoliov1.ExecuteTradeRequest) (*portfoliov1.ExecuteTradeResponse, error) {
	t, cash, err := s.executeTrade(ctx, req)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.ExecuteTradeResponse{Trade: toTrade(t), Cash: decimal.Trim(cash)}, nil
}

func (s *Server) executeTrade(ctx context.Context, req *portfoliov1.ExecuteTradeRequest) (store.Trade, string, error) {
	pid, rid, sym, side := req.GetPortfolioId(), req.GetRequestId(), req.GetSymbol(), req.GetSide()
	qty, err := decimal.Parse(req.GetQuantity())
	if err != nil {
		return store.Trade{}, "", fmt.Errorf("quantity: %w", err)
	}
	var limit *big.Rat
	if req.GetLimitPrice() != "" {
		if limit, err = decimal.Parse(req.GetLimitPrice()); err != nil {
			return store.Trade{}, "", fmt.Errorf("limit_price: %w", err)
		}
	}
	limitText := ""
	if limit != nil {
		limitText = decimal.Format(limit)
	}
	hash := requestHash("trade", sym, side.String(), decimal.Format(qty), limitText)

	// A repeat needs no price: answer it first, so it works even while prices cannot be read.
	prev, repeat, err := s.previousTrade(ctx, pid, rid)
	if err != nil {
		return store.Trade{}, "", err
	}
	if repeat {
		return repeatedTrade(ctx, s.store, prev, hash)
	}

	// The price is read before the transaction: RunTx may run its function several times,
	// and a call to another service does not belong inside it. Not being able to read it says
	// nothing about the portfolio, so it is answered at once; whatever the price says about
	// this trade is decided under the lock, after the repeat check.
	q, err := s.latestPrice(ctx, sym)
	if err != nil {
		return store.Trade{}, "", err
	}

	var trade store.Trade
	var cashAfter string
	appended := false
	err = s.write(ctx, pid, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		appended = false // a retry starts over
		// A concurrent copy of this request may have executed while this one waited for the
		// lock: it is recognised here, under the lock and before any business check, so it
		// gets the first answer rather than a refusal for want of the cash it spent.
		prev, err := st.TradeByRequest(ctx, pid, rid)
		if err == nil {
			trade, cashAfter, err = repeatedTrade(ctx, st, prev, hash)
			return err
		}
		if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		h, err := st.Holding(ctx, pid, sym)
		if err != nil {
			return err
		}
		if err := checkQuote(q, side, h.Currency, limit, time.Now(), s.maxPriceAge); err != nil {
			return err
		}
		cash, err := decimal.Parse(h.Cash)
		if err != nil {
			return fmt.Errorf("portfolio %d cash %q: %w", pid, h.Cash, err)
		}
		apply, kind := ledger.Buy, portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_BUY
		if side == portfoliov1.Side_SIDE_SELL {
			apply, kind = ledger.Sell, portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_SELL
		}
		fill, err := apply(ledger.Holding{PortfolioID: pid, Symbol: sym, Cash: cash, Position: toLedger(h.Position)}, qty, q.price)
		if err != nil {
			return err
		}
		cashAfter = decimal.Format(fill.Cash)
		trade, err = st.WriteTrade(ctx, store.TradeWrite{
			Trade: store.Trade{PortfolioID: pid, Symbol: sym, Side: side.String(), Quantity: decimal.Format(qty),
				Price: decimal.Format(q.price), Amount: decimal.Format(fill.Amount), RequestID: rid, RequestHash: hash,
				PriceTime: &q.time},
			Cash: cashAfter,
			Position: store.Position{Symbol: sym, Quantity: decimal.Format(fill.Position.Quantity),
				CostBasis: fill.Position.CostBasis.FloatString(ledger.CostDigits)},
			Movement: decimal.Format(fill.Movement),
			Kind:     kind.String(),
		})
		if err != nil {
			return err
		}
		if err := s.appendEvent(ctx, tx, pid, &portfoliov1.TradeExecuted{Trade: toTrade(trade), Cash: decimal.Trim(cashAfter)}); err != nil {
			return err
		}
		appended = true
		return nil
	})
	if err == nil && appended {
		s.outbox.Committed()
	}
	if errors.Is(err, store.ErrRepeat) { // only a writer without the lock gets here: tests' weakened server
		if trade, err = s.store.TradeByRequest(ctx, pid, rid); err == nil {
			return repeatedTrade(ctx, s.store, trade, hash)
		}
	}
	if err != nil {
		return store.Trade{}, "", err
	}
	return trade, cashAfter, nil
}

// toLedger reads a stored position (its cost basis may carry up to ledger.CostDigits
// fraction digits, more than decimal.Parse takes).
func toLedger(p store.Position) ledger.Position {
	qty, _ := new(big.Rat).SetString(p.Quantity)
	cost, _ := new(big.Rat).SetString(p.CostBasis)
	return ledger.Position{Quantity: qty, CostBasis: cost}
}

// quote is the stock service's latest price of a stock.
type quote struct {
	symbol   string
	price    *big.Rat
	time     time.Time  // the bar's start
	currency string     // the stock's
	delisted *time.Time // set for a deleted stock's final price
}

// checkQuote decides whether a trade may execute at q, for a portfolio in currency, at time
// now: not across currencies (nothing converts between them), no buy of a delisted stock, no
// price older than maxAge (0: any age) unless the stock is delisted (its final price is the
// one it will ever have, so its positions stay sellable), and within the limit price if one
// is set.
func checkQuote(q quote, side portfoliov1.Side, currency string, limit *big.Rat, now time.Time, maxAge time.Duration) error {
	if q.currency != currency {
		stockCurrency := q.currency
		if stockCurrency == "" {
			stockCurrency = "unknown"
		}
		return apierr.Newf(apierr.CurrencyMismatch, map[string]string{"symbol": q.symbol, "stock_currency": q.currency,
			"portfolio_currency": currency},
			"currency mismatch: %s is priced in %s, the portfolio holds %s", q.symbol, stockCurrency, currency)
	}
	if q.delisted != nil {
		if side == portfoliov1.Side_SIDE_BUY {
			return apierr.Newf(apierr.StockDelisted, map[string]string{"symbol": q.symbol,
				"delist_time": q.delisted.UTC().Format(time.RFC3339)},
				"%s was delisted at %s: it can be sold at its final price, not bought", q.symbol, q.delisted.UTC().Format(time.RFC3339))
		}
	} else if maxAge > 0 && now.Sub(q.time) > maxAge {
		return apierr.Newf(apierr.PriceTooOld, map[string]string{"symbol": q.symbol,
			"price_time": q.time.UTC().Format(time.RFC3339), "max_price_age": maxAge.String()},
			"the latest price of %s is from %s, older than %s: no trade executes at it", q.symbol,
			q.time.UTC().Format(time.RFC3339), maxAge)
	}
	if limit != nil {
		limitText := decimal.Format(limit)
		if side == portfoliov1.Side_SIDE_BUY && q.price.Cmp(limit) > 0 {
			return apierr.Newf(apierr.LimitNotMet, limitMetadata(q.symbol, side, q.price, limitText),
				"limit not met: %s trades at %s, above the buy limit %s", q.symbol, decimal.Format(q.price), limitText)
		}
		if side == portfoliov1.Side_SIDE_SELL && q.price.Cmp(limit) < 0 {
			return apierr.Newf(apierr.LimitNotMet, limitMetadata(q.symbol, side, q.price, limitText),
				"limit not met: %s trades at %s, below the sell limit %s", q.symbol, decimal.Format(q.price), limitText)
		}
	}
	return nil
}

// limitMetadata is the ErrorInfo metadata of LIMIT_NOT_MET.
func limitMetadata(symbol string, side portfoliov1.Side, price *big.Rat, limit string) map[string]string {
	return map[string]string{"symbol": symbol, "side": side.String(), "price": decimal.Format(price), "limit_price": limit}
}

// repeatedTrade answers a request_id seen before: the first answer (the trade and the cash
// right after it) if the request is the same, a conflict if the id was used for another
// request.
func repeatedTrade(ctx context.Context, st *store.Store, prev store.Trade, hash []byte) (store.Trade, string, error) {
	if !bytes.Equal(prev.RequestHash, hash) {
		return store.Trade{}, "", reusedRequestID(prev.RequestID)
	}
	cash, err := st.CashAfterTrade(ctx, prev.PortfolioID, prev.ID)
	if err != nil {
		return store.Trade{}, "", err
	}
	return prev, cash, nil
}

// latestPrice asks the stock service for symbol's latest close, its time and currency.
func (s *Server) latestPrice(ctx context.Context, symbol string) (quote, error) {
	resp, err := s.stock.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: []string{symbol}})
	if err != nil {
		st := status.Convert(err)
		switch st.Code() {
		case codes.InvalidArgument:
			return quote{}, validate.Field("symbol", "%s", st.Message())
		case codes.Canceled:
			return quote{}, st.Err()
		}
		// Breaker open, peer down or too slow: the trade cannot be priced now.
		md := map[string]string{"peer": "stock"}
		if info := apierr.Info(st); info != nil {
			md["peer_reason"] = info.GetReason()
		}
		return quote{}, apierr.Newf(apierr.PeerUnavailable, md, "stock prices unavailable, trade not executed: %s", st.Message())
	}
	if len(resp.GetPrices()) == 0 {
		return quote{}, apierr.Newf(apierr.PriceNotFound, map[string]string{"symbol": symbol}, "no price for %q: unknown symbol", symbol)
	}
	p := resp.GetPrices()[0]
	price, err := decimal.Parse(p.GetClose())
	if err != nil {
		return quote{}, fmt.Errorf("price of %s from the stock service: %w", symbol, err)
	}
	q := quote{symbol: symbol, price: price, time: p.GetTime().AsTime(), currency: p.GetCurrency()}
	if p.GetDelistTime() != nil {
		t := p.GetDelistTime().AsTime()
		q.delisted = &t
	}
	return q, nil
}

// ListTrades returns a page of a portfolio's trades.
func (s *Server) ListTrades(ctx context.Context, req *portfoliov1.ListTradesRequest) (*portfoliov1.ListTradesResponse, error) {
	pid := req.GetPortfolioId()
	if err := s.requireOwner(ctx, pid); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	read := func(ctx context.Context, q *query.Query) ([]store.Trade, error) {
		return s.store.ListTrades(ctx, pid, q)
	}
	trades, next, err := query.List(ctx, s.retry, &s.lists.trades, query.RequestOf(req, strconv.FormatInt(pid, 10)), read, toTrade)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.ListTradesResponse{Trades: trades, NextPageToken: next}, nil
}
