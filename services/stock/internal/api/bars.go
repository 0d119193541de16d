package api

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// barUnits maps each interval ListBars accepts to its date_trunc field (store.BarUnits).
var barUnits = map[stockv1.Interval]string{
	stockv1.Interval_INTERVAL_DAY:   "day",
	stockv1.Interval_INTERVAL_WEEK:  "week",
	stockv1.Interval_INTERVAL_MONTH: "month",
}

// ListBars returns a page of one symbol's daily bars resampled to an interval, oldest first,
// each with its simple return against the bar before it (empty for the range's first bar).
// The resampling and the returns are one SQL statement in exact numeric (store.ListBars).
func (s *Server) ListBars(ctx context.Context, req *stockv1.ListBarsRequest) (*stockv1.ListBarsResponse, error) {
	sym, unit := req.GetSymbol(), barUnits[req.GetInterval()]
	start, end := timeRange(req.GetStartTime(), req.GetEndTime())
	page := query.Request{
		PageToken: req.GetPageToken(), PageSize: req.GetPageSize(),
		// A token only continues the symbol, interval and range it was made for.
		Extra: fmt.Sprintf("%s|%s|%d|%d", sym, unit, start.UnixMicro(), end.UnixMicro()),
	}
	read := func(ctx context.Context, q *query.Query) ([]store.Bar, error) {
		rows, err := s.store.ListBars(ctx, sym, unit, start, end, q)
		if err == nil && len(rows) == 0 {
			err = s.stockExists(ctx, sym)
		}
		return rows, err
	}
	bars, next, err := query.List(ctx, s.retry, &s.lists.bars, page, read, toBar)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListBarsResponse{Bars: bars, NextPageToken: next}, nil
}

func toBar(b store.Bar) *stockv1.Bar {
	return &stockv1.Bar{
		StartTime:    timestamppb.New(b.Start),
		Open:         decimal.Trim(b.Open),
		High:         decimal.Trim(b.High),
		Low:          decimal.Trim(b.Low),
		Close:        decimal.Trim(b.Close),
		Volume:       b.Volume,
		BarCount:     b.BarCount,
		SimpleReturn: b.Return,
	}
}
