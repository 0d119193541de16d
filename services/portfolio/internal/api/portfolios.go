package api

import (
	"context"
	"errors"
	"maps"
	"math/big"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// CreateUser registers a user.
func (s *Server) CreateUser(ctx context.Context, req *portfoliov1.CreateUserRequest) (*portfoliov1.CreateUserResponse, error) {
	if p := auth.Caller(ctx); !p.Owns(req.GetEmail()) {
		return nil, apierr.Newf(apierr.SubjectMismatch, map[string]string{"field": "email", "subject": p.Subject},
			"email must be the token's subject %q: users register themselves", p.Subject)
	}
	u, err := s.store.CreateUser(ctx, req.GetEmail(), req.GetDisplayName())
	if errors.Is(err, store.ErrConflict) {
		err = apierr.New(apierr.UserAlreadyExists, err.Error(), map[string]string{"email": req.GetEmail()})
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.CreateUserResponse{User: toUser(u)}, nil
}

// GetUser returns one user.
func (s *Server) GetUser(ctx context.Context, req *portfoliov1.GetUserRequest) (*portfoliov1.GetUserResponse, error) {
	var u store.User
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		u, err = s.store.GetUser(ctx, req.GetUserId())
		return err
	})
	if err == nil && !auth.Caller(ctx).Owns(u.Email) {
		err = &store.NotFoundError{Kind: "user", Field: "user_id", Key: req.GetUserId()} // as if it did not exist
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.GetUserResponse{User: toUser(u)}, nil
}

// CreatePortfolio opens an empty portfolio, once per request_id: a repeat returns the
// portfolio the first call created, as it is now.
func (s *Server) CreatePortfolio(ctx context.Context, req *portfoliov1.CreatePortfolioRequest) (*portfoliov1.CreatePortfolioResponse, error) {
	name, currency, rid := req.GetName(), req.GetCurrency(), req.GetRequestId()
	if currency == "" {
		currency = "USD"
	}
	owner, err := s.ownerID(ctx, req.GetUserId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	p, created, err := s.store.CreatePortfolio(ctx, owner, name, currency, rid)
	if err == nil && !created && (p.Name != name || p.Currency != currency) {
		err = reusedRequestID(rid)
	}
	if errors.Is(err, store.ErrConflict) {
		err = apierr.New(apierr.PortfolioAlreadyExists, err.Error(),
			map[string]string{"user_id": strconv.FormatInt(owner, 10), "name": name})
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.CreatePortfolioResponse{Portfolio: toPortfolio(p)}, nil
}

// GetPortfolio returns a portfolio with its positions valued by one batched call to the
// stock service, each in its stock's currency. Without prices (stock service down) it still
// answers, values left empty; totals add amounts of one currency only.
func (s *Server) GetPortfolio(ctx context.Context, req *portfoliov1.GetPortfolioRequest) (*portfoliov1.GetPortfolioResponse, error) {
	if err := s.requireOwner(ctx, req.GetPortfolioId()); err != nil {
		return nil, s.grpcError(ctx, err)
	}
	var resp *portfoliov1.GetPortfolioResponse
	var err error
	if req.GetAsOf() != nil {
		resp, err = s.valuationAt(ctx, req.GetPortfolioId(), req.GetAsOf().AsTime())
	} else {
		resp, _, err = s.valuation(ctx, req.GetPortfolioId())
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return resp, nil
}

// held is what a valuation saw of a portfolio's positions: their symbols, whose price changes
// move it, and whether their prices could be read (false: the stock service failed, values
// are left empty; a later valuation may have them).
type held struct {
	symbols []string
	priced  bool
}

// valuation reads a portfolio and its positions from one snapshot and values them at the
// stock service's latest prices (GetPortfolio's answer; WatchPortfolio sends it too). The
// caller has checked that the caller may read the portfolio.
func (s *Server) valuation(ctx context.Context, portfolioID int64) (*portfoliov1.GetPortfolioResponse, held, error) {
	var p store.Portfolio
	var positions []store.Position
	// Read-only and repeatable: portfolio and positions come from one snapshot.
	err := s.retry.RunTx(ctx, s.pool, readOnly, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		if p, err = st.GetPortfolio(ctx, portfolioID); err != nil {
			return err
		}
		positions, err = st.Positions(ctx, p.ID)
		return err
	})
	if err != nil {
		return nil, held{}, err
	}
	resp, h := s.value(ctx, p, positions, nil)
	return resp, h, nil
}

// value values positions of p at the stock service's latest prices, or its last ones at or
// before asOf (non-nil). Without prices (the stock service failed) the values are left empty.
func (s *Server) value(ctx context.Context, p store.Portfolio, positions []store.Position, asOf *timestamppb.Timestamp) (*portfoliov1.GetPortfolioResponse, held) {
	resp := &portfoliov1.GetPortfolioResponse{Portfolio: toPortfolio(p)}
	prices := map[string]*stockv1.Price{}
	h := held{symbols: make([]string, len(positions)), priced: true}
	for i, pos := range positions {
		h.symbols[i] = pos.Symbol
	}
	if len(positions) > 0 {
		latest, err := s.stock.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: h.symbols, AsOf: asOf})
		if err != nil {
			s.log.WarnContext(ctx, "portfolio valued without prices", "portfolio", p.ID, "err", err)
			h.priced = false
		}
		for _, pr := range latest.GetPrices() {
			prices[pr.GetSymbol()] = pr
		}
	}
	// Values add up per currency only: a position bought across currencies before trades
	// across them were refused is valued, but never added to the portfolio's cash.
	byCurrency := map[string]*big.Rat{}
	complete, foreign := true, false
	for _, pos := range positions {
		out, value := valuePosition(pos, prices[pos.Symbol])
		resp.Positions = append(resp.Positions, out)
		if value == nil {
			complete = false
			continue
		}
		sum := byCurrency[out.GetCurrency()]
		if sum == nil {
			sum = new(big.Rat)
			byCurrency[out.GetCurrency()] = sum
		}
		sum.Add(sum, value)
		foreign = foreign || out.GetCurrency() != p.Currency
	}
	if !complete {
		return resp, h
	}
	for _, c := range slices.Sorted(maps.Keys(byCurrency)) {
		resp.PositionsValues = append(resp.PositionsValues, &portfoliov1.CurrencyValue{Currency: c, PositionsValue: decimal.Format(byCurrency[c])})
	}
	if !foreign {
		total := new(big.Rat)
		if v := byCurrency[p.Currency]; v != nil {
			total = v
		}
		cash, _ := decimal.Parse(p.Cash)
		resp.PositionsValue = decimal.Format(total)
		resp.TotalValue = decimal.Format(decimal.Add(cash, total))
	}
	return resp, h
}

// valuePosition values one position at price (nil: no price known), returning the market
// value too (nil without a price).
func valuePosition(pos store.Position, price *stockv1.Price) (*portfoliov1.Position, *big.Rat) {
	lp := toLedger(pos)
	out := &portfoliov1.Position{
		Symbol:      pos.Symbol,
		Quantity:    decimal.Format(lp.Quantity),
		AverageCost: decimal.Format(lp.AverageCost()),
	}
	if price == nil {
		return out, nil
	}
	last, err := decimal.Parse(price.GetClose())
	if err != nil {
		return out, nil
	}
	value, pnl := lp.Value(last)
	out.LastPrice = decimal.Format(last)
	out.PriceTime = timestamppb.New(price.GetTime().AsTime())
	out.Currency = price.GetCurrency()
	out.DelistTime = price.GetDelistTime()
	out.MarketValue = decimal.Format(value)
	out.UnrealizedPnl = decimal.Format(pnl)
	return out, value
}

// ListPortfolios returns a page of portfolios.
func (s *Server) ListPortfolios(ctx context.Context, req *portfoliov1.ListPortfoliosRequest) (*portfoliov1.ListPortfoliosResponse, error) {
	// A user sees only their own portfolios; the token is bound to whose list it pages.
	owner := ownerFilter(auth.Caller(ctx))
	read := func(ctx context.Context, q *query.Query) ([]store.Portfolio, error) {
		return s.store.ListPortfolios(ctx, owner, q)
	}
	portfolios, next, err := query.List(ctx, s.retry, &s.lists.portfolios, query.RequestOf(req, owner), read, toPortfolio)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &portfoliov1.ListPortfoliosResponse{Portfolios: portfolios, NextPageToken: next}, nil
}
