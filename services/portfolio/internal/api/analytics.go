package api

import (
	"context"
	"fmt"
	"maps"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/ledger"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// Analytics reads: a portfolio as it stood at a time (GetPortfolio with as_of), its profit
// and loss (GetPortfolioPnl) and its value history (ListPortfolioValues). Each replays the
// portfolio's trades and cash movements from one read-only snapshot (ledger.Book applies the
// rules the trades were executed by, so a replayed position is the one stored then), and
// prices them with the stock service's bars at or before each time.

// Bounds of one ListPortfolioValues page: query.MaxPageSize points, and the symbols held at
// any of them, each read from the stock service by its own sequence of ListBars calls.
const (
	maxValueSymbols = 200
	// barsPageSize is the page size of the ListBars calls: the stock service's largest.
	barsPageSize = 1000
	// maxPriceSymbols is how many symbols one GetLatestPrices call takes.
	maxPriceSymbols = 1000
)

// valueIntervals are the intervals ListPortfolioValues takes.
var valueIntervals = map[stockv1.Interval]bool{
	stockv1.Interval_INTERVAL_DAY: true, stockv1.Interval_INTERVAL_WEEK: true, stockv1.Interval_INTERVAL_MONTH: true,
}

// bookAt reads a portfolio and its trades up to asOf in one read-only transaction, with
// whatever more also reads in it (nil: nothing), and replays the trades, oldest first,
// through a ledger.Book.
func (s *Server) bookAt(ctx context.Context, portfolioID int64, asOf time.Time,
	also func(st *store.Store) error) (store.Portfolio, *ledger.Book, error) {
	var p store.Portfolio
	var trades []store.Trade
	err := s.retry.RunTx(ctx, s.db, readOnly, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		if p, err = st.GetPortfolio(ctx, portfolioID); err != nil {
			return err
		}
		if trades, err = st.TradesUpTo(ctx, portfolioID, asOf); err != nil {
			return err
		}
		if also != nil {
			return also(st)
		}
		return nil
	})
	if err != nil {
		return p, nil, err
	}
	b := ledger.NewBook()
	for _, t := range trades {
		if err := apply(b, t); err != nil {
			return p, nil, err
		}
	}
	return p, b, nil
}

// apply records one stored trade in b.
func apply(b *ledger.Book, t store.Trade) error {
	qty, ok1 := new(big.Rat).SetString(t.Quantity)
	amount, ok2 := new(big.Rat).SetString(t.Amount)
	if !ok1 || !ok2 {
		return fmt.Errorf("trade %d: quantity %q, amount %q: not decimals", t.ID, t.Quantity, t.Amount)
	}
	if t.Side == portfoliov1.Side_SIDE_SELL.String() {
		b.Sell(t.Symbol, qty, amount)
	} else {
		b.Buy(t.Symbol, qty, amount)
	}
	return nil
}

// heldPositions are b's positions with shares held, as the positions table stores them.
func heldPositions(b *ledger.Book) []store.Position {
	var out []store.Position
	for _, sym := range b.Held() {
		p := b.Entry(sym).Position
		out = append(out, store.Position{Symbol: sym, Quantity: decimal.Format(p.Quantity),
			CostBasis: p.CostBasis.FloatString(ledger.CostDigits)})
	}
	return out
}

// valuationAt is GetPortfolio's answer at asOf: the portfolio's cash the sum of its ledger up
// to asOf, its positions replayed from the trades up to it, priced at the stock service's last
// bars at or before it (left unpriced, as GetPortfolio leaves them, while the stock service
// fails). Before the portfolio was created it is empty.
func (s *Server) valuationAt(ctx context.Context, portfolioID int64, asOf time.Time) (*portfoliov1.GetPortfolioResponse, error) {
	var cash string
	var last *time.Time
	p, book, err := s.bookAt(ctx, portfolioID, asOf, func(st *store.Store) (err error) {
		cash, last, err = st.CashAt(ctx, portfolioID, asOf)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.Cash = cash
	p.UpdateTime = p.CreateTime
	if last != nil && last.After(p.UpdateTime) {
		p.UpdateTime = *last // every trade moves cash: the last movement is the last change
	}
	resp, _ := s.value(ctx, p, heldPositions(book), timestamppb.New(asOf))
	return resp, nil
}

// GetPortfolioPnl returns a portfolio's profit and loss per symbol and per currency at as_of.
func (s *Server) GetPortfolioPnl(ctx context.Context, req *portfoliov1.GetPortfolioPnlRequest) (*portfoliov1.GetPortfolioPnlResponse, error) {
	resp, err := s.portfolioPnl(ctx, req)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return resp, nil
}

func (s *Server) portfolioPnl(ctx context.Context, req *portfoliov1.GetPortfolioPnlRequest) (*portfoliov1.GetPortfolioPnlResponse, error) {
	pid := req.GetPortfolioId()
	if err := s.requireOwner(ctx, pid); err != nil {
		return nil, err
	}
	asOf := time.Now()
	if req.GetAsOf() != nil {
		asOf = req.GetAsOf().AsTime()
	}
	p, book, err := s.bookAt(ctx, pid, asOf, nil)
	if err != nil {
		return nil, err
	}
	// Unset as_of: the latest prices, as GetPortfolio values the positions now.
	prices, err := s.pricesAt(ctx, book.Symbols(), req.GetAsOf())
	if err != nil {
		return nil, err
	}
	type total struct {
		realized, unrealized *big.Rat
		complete             bool
	}
	totals := map[string]*total{}
	resp := &portfoliov1.GetPortfolioPnlResponse{PortfolioId: pid, AsOf: timestamppb.New(asOf)}
	for _, sym := range book.Symbols() {
		e := book.Entry(sym)
		held := e.Position.Quantity.Sign() > 0
		out := &portfoliov1.SymbolPnl{Symbol: sym, Quantity: decimal.Format(e.Position.Quantity),
			CostBasis: decimal.Format(e.Position.CostBasis), RealizedPnl: decimal.Format(e.Realized), Currency: p.Currency}
		var unrealized *big.Rat
		if held {
			out.AverageCost = decimal.Format(e.Position.AverageCost())
		} else {
			unrealized = new(big.Rat)
		}
		if pr := prices[sym]; pr != nil {
			if last, err := decimal.Parse(pr.GetClose()); err == nil {
				out.LastPrice, out.PriceTime = decimal.Format(last), pr.GetTime()
				if pr.GetCurrency() != "" {
					out.Currency = pr.GetCurrency()
				}
				if held {
					_, unrealized = e.Position.Value(last)
				}
			}
		}
		if unrealized != nil {
			out.UnrealizedPnl = decimal.Format(unrealized)
		}
		resp.Symbols = append(resp.Symbols, out)
		t := totals[out.Currency]
		if t == nil {
			t = &total{realized: new(big.Rat), unrealized: new(big.Rat), complete: true}
			totals[out.Currency] = t
		}
		t.realized.Add(t.realized, e.Realized)
		if unrealized == nil {
			t.complete = false
		} else {
			t.unrealized.Add(t.unrealized, unrealized)
		}
	}
	for _, c := range slices.Sorted(maps.Keys(totals)) {
		t := totals[c]
		out := &portfoliov1.CurrencyPnl{Currency: c, RealizedPnl: decimal.Format(t.realized)}
		if t.complete {
			out.UnrealizedPnl = decimal.Format(t.unrealized)
			out.TotalPnl = decimal.Format(decimal.Add(t.realized, t.unrealized))
		}
		resp.Totals = append(resp.Totals, out)
	}
	return resp, nil
}

// pricesAt returns the stock service's latest price of each symbol that has one (asOf nil),
// or its last one at or before asOf, in calls of at most maxPriceSymbols symbols.
// PEER_UNAVAILABLE while the stock service cannot answer.
func (s *Server) pricesAt(ctx context.Context, symbols []string, asOf *timestamppb.Timestamp) (map[string]*stockv1.Price, error) {
	out := make(map[string]*stockv1.Price, len(symbols))
	for chunk := range slices.Chunk(symbols, maxPriceSymbols) {
		resp, err := s.stock.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: chunk, AsOf: asOf})
		if err != nil {
			return nil, stockUnavailable(err, "prices")
		}
		for _, p := range resp.GetPrices() {
			out[p.GetSymbol()] = p
		}
	}
	return out, nil
}

// stockUnavailable turns a failed call to the stock service into PEER_UNAVAILABLE, what was
// being read named in the message (a cancelled call stays cancelled).
func stockUnavailable(err error, what string) error {
	st := status.Convert(err)
	if st.Code() == codes.Canceled {
		return st.Err()
	}
	md := map[string]string{"peer": "stock"}
	if info := apierr.Info(st); info != nil {
		md["peer_reason"] = info.GetReason()
	}
	return apierr.Newf(apierr.PeerUnavailable, md, "stock %s unavailable: %s", what, st.Message())
}

// valuePoints returns the interval boundaries of unit from the first at or after from, fewer
// than limit of them and all before end.
func valuePoints(unit stockv1.Interval, from, end time.Time, limit int) []time.Time {
	from = from.UTC()
	t := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	switch unit {
	case stockv1.Interval_INTERVAL_WEEK:
		t = t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7)) // back to Monday
	case stockv1.Interval_INTERVAL_MONTH:
		t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	var points []time.Time
	for ; t.Before(end) && len(points) < limit; t = nextPoint(unit, t) {
		if !t.Before(from) {
			points = append(points, t)
		}
	}
	return points
}

// nextPoint is the boundary after t, one of unit's.
func nextPoint(unit stockv1.Interval, t time.Time) time.Time {
	switch unit {
	case stockv1.Interval_INTERVAL_WEEK:
		return t.AddDate(0, 0, 7)
	case stockv1.Interval_INTERVAL_MONTH:
		return t.AddDate(0, 1, 0)
	}
	return t.AddDate(0, 0, 1)
}

// ListPortfolioValues returns a page of a portfolio's value history.
func (s *Server) ListPortfolioValues(ctx context.Context, req *portfoliov1.ListPortfolioValuesRequest) (*portfoliov1.ListPortfolioValuesResponse, error) {
	resp, err := s.listPortfolioValues(ctx, req)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return resp, nil
}

func (s *Server) listPortfolioValues(ctx context.Context, req *portfoliov1.ListPortfolioValuesRequest) (*portfoliov1.ListPortfolioValuesResponse, error) {
	pid, unit := req.GetPortfolioId(), req.GetInterval()
	start, end := req.GetStartTime().AsTime(), req.GetEndTime().AsTime()
	q, err := s.lists.values.Build(query.Request{PageToken: req.GetPageToken(), PageSize: req.GetPageSize(),
		// A token only continues the portfolio, interval and range it was made for.
		Extra: fmt.Sprintf("%d|%s|%d|%d", pid, unit, start.UnixMicro(), end.UnixMicro())})
	if err != nil {
		return nil, err
	}
	if err := s.requireOwner(ctx, pid); err != nil {
		return nil, err
	}
	from := start
	if len(q.Args) == 1 { // the values schema has no filter: a token's only parameter is the last point sent
		if last, ok := q.Args[0].(time.Time); ok && !last.Before(start) {
			from = nextPoint(unit, last)
		}
	}
	points, next, err := s.lists.values.Page(q, valuePoints(unit, from, end, q.Limit))
	if err != nil {
		return nil, err
	}
	resp := &portfoliov1.ListPortfolioValuesResponse{NextPageToken: next}
	if len(points) == 0 {
		return resp, nil
	}
	last := points[len(points)-1]
	var p store.Portfolio
	var trades []store.Trade
	var movements []store.Movement
	err = s.retry.RunTx(ctx, s.db, readOnly, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		if p, err = st.GetPortfolio(ctx, pid); err != nil {
			return err
		}
		if trades, err = st.TradesUpTo(ctx, pid, last); err != nil {
			return err
		}
		movements, err = st.MovementsUpTo(ctx, pid, last)
		return err
	})
	if err != nil {
		return nil, err
	}

	// The replay at each point: cash, net deposits, and the positions held.
	type state struct {
		cash, deposits *big.Rat
		positions      []store.Position
	}
	states := make([]state, len(points))
	book := ledger.NewBook()
	cash, deposits := new(big.Rat), new(big.Rat)
	held := map[string]bool{}
	for i, at := range points {
		for ; len(trades) > 0 && !trades[0].ExecuteTime.After(at); trades = trades[1:] {
			if err := apply(book, trades[0]); err != nil {
				return nil, err
			}
		}
		for ; len(movements) > 0 && !movements[0].CreateTime.After(at); movements = movements[1:] {
			m := movements[0]
			amount, ok := new(big.Rat).SetString(m.Amount)
			if !ok {
				return nil, fmt.Errorf("cash movement %d: amount %q: not a decimal", m.ID, m.Amount)
			}
			cash.Add(cash, amount)
			if m.Kind == portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_DEPOSIT.String() ||
				m.Kind == portfoliov1.CashMovementKind_CASH_MOVEMENT_KIND_WITHDRAWAL.String() {
				deposits.Add(deposits, amount)
			}
		}
		states[i] = state{cash: new(big.Rat).Set(cash), deposits: new(big.Rat).Set(deposits), positions: heldPositions(book)}
		for _, pos := range states[i].positions {
			held[pos.Symbol] = true
		}
	}
	if len(held) > maxValueSymbols {
		return nil, apierr.Newf(apierr.FailedPrecondition, map[string]string{"portfolio_id": strconv.FormatInt(pid, 10),
			"symbols": strconv.Itoa(len(held)), "max_symbols": strconv.Itoa(maxValueSymbols)},
			"portfolio %d holds %d symbols over these %d points, more than the %d one page values: ask for fewer points (page_size) or a shorter range",
			pid, len(held), len(points), maxValueSymbols)
	}
	closes, err := s.closesAt(ctx, slices.Sorted(maps.Keys(held)), points)
	if err != nil {
		return nil, err
	}
	for i, at := range points {
		st := states[i]
		v := &portfoliov1.PortfolioValue{Time: timestamppb.New(at), Cash: decimal.Format(st.cash), NetDeposits: decimal.Format(st.deposits)}
		byCurrency := map[string]*big.Rat{}
		complete, foreign := true, false
		for _, pos := range st.positions {
			c := closes[pos.Symbol]
			if c == nil || c.prices[i] == nil {
				complete = false
				break
			}
			value, _ := toLedger(pos).Value(c.prices[i])
			sum := byCurrency[c.currency]
			if sum == nil {
				sum = new(big.Rat)
				byCurrency[c.currency] = sum
			}
			sum.Add(sum, value)
			foreign = foreign || c.currency != p.Currency
		}
		if complete {
			for _, cur := range slices.Sorted(maps.Keys(byCurrency)) {
				v.PositionsValues = append(v.PositionsValues, &portfoliov1.CurrencyValue{Currency: cur, PositionsValue: decimal.Format(byCurrency[cur])})
			}
			if !foreign {
				total := new(big.Rat)
				if sum := byCurrency[p.Currency]; sum != nil {
					total = sum
				}
				v.PositionsValue = decimal.Format(total)
				v.TotalValue = decimal.Format(decimal.Add(st.cash, total))
			}
		}
		resp.Values = append(resp.Values, v)
	}
	return resp, nil
}

// closes are one symbol's prices at each point of a page (nil before its first bar) and
// its currency.
type closes struct {
	currency string
	prices   []*big.Rat
}

// bar is a price at a time.
type bar struct {
	time  time.Time
	close string
}

// closesAt returns, for each symbol, its last daily close at or before each point: its last
// bar at or before the first point (GetLatestPrices with as_of), then the daily bars up to
// the last point, read by ListBars INTERVAL_DAY in pages, one call sequence per symbol. A
// delisted stock has no bars left but its final price, which counts from its bar's time.
func (s *Server) closesAt(ctx context.Context, symbols []string, points []time.Time) (map[string]*closes, error) {
	out := map[string]*closes{}
	if len(symbols) == 0 {
		return out, nil
	}
	first, last := points[0], points[len(points)-1]
	before, err := s.pricesAt(ctx, symbols, timestamppb.New(first))
	if err != nil {
		return nil, err
	}
	upTo, err := s.pricesAt(ctx, symbols, timestamppb.New(last))
	if err != nil {
		return nil, err
	}
	for _, sym := range symbols {
		var bars []bar
		if p := before[sym]; p != nil {
			bars = append(bars, bar{p.GetTime().AsTime(), p.GetClose()})
		}
		final := upTo[sym]
		if final != nil && final.GetDelistTime() != nil {
			bars = append(bars, bar{final.GetTime().AsTime(), final.GetClose()})
		} else if final != nil {
			// Bars of the points after the first: daily bars start at midnight, the points too.
			req := &stockv1.ListBarsRequest{Symbol: sym, Interval: stockv1.Interval_INTERVAL_DAY, PageSize: barsPageSize,
				StartTime: timestamppb.New(first), EndTime: timestamppb.New(last.Add(time.Microsecond))}
			for {
				resp, err := s.stock.ListBars(ctx, req)
				if status.Code(err) == codes.NotFound {
					break // deleted since: its bars went with it, its final price is not in this page's range
				}
				if err != nil {
					return nil, stockUnavailable(err, "bars of "+sym)
				}
				for _, b := range resp.GetBars() {
					bars = append(bars, bar{b.GetStartTime().AsTime(), b.GetClose()})
				}
				if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
					break
				}
			}
		}
		c := &closes{prices: make([]*big.Rat, len(points))}
		if final != nil {
			c.currency = final.GetCurrency()
		}
		var price *big.Rat
		for i, at := range points {
			for ; len(bars) > 0 && !bars[0].time.After(at); bars = bars[1:] {
				if price, err = decimal.Parse(bars[0].close); err != nil {
					return nil, fmt.Errorf("close of %s at %s from the stock service: %w", sym, bars[0].time, err)
				}
			}
			c.prices[i] = price
		}
		out[sym] = c
	}
	return out, nil
}
