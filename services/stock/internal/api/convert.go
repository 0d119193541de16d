package api

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

func toStock(st store.Stock) *stockv1.Stock {
	return &stockv1.Stock{
		Symbol:     st.Symbol,
		Name:       st.Name,
		Sector:     st.Sector,
		Industry:   st.Industry,
		Exchange:   st.Exchange,
		Currency:   st.Currency,
		MarketCap:  st.MarketCap,
		CreateTime: timestamppb.New(st.CreateTime),
		UpdateTime: timestamppb.New(st.UpdateTime),
	}
}

func fromStock(st *stockv1.Stock) store.Stock {
	currency := st.GetCurrency()
	if currency == "" {
		currency = "USD"
	}
	return store.Stock{
		Symbol:    st.GetSymbol(),
		Name:      st.GetName(),
		Sector:    st.GetSector(),
		Industry:  st.GetIndustry(),
		Exchange:  st.GetExchange(),
		Currency:  currency,
		MarketCap: st.GetMarketCap(),
	}
}

func toPrice(p *store.Price) *stockv1.Price {
	out := &stockv1.Price{
		Symbol: p.Symbol,
		Time:   timestamppb.New(p.Time),
		Open:   decimal.Trim(p.Open),
		High:   decimal.Trim(p.High),
		Low:    decimal.Trim(p.Low),
		Close:  decimal.Trim(p.Close),
		Volume: p.Volume,
		// Currency and DelistTime: GetLatestPrices's rows only.
		Currency: p.Currency,
	}
	if p.DelistTime != nil {
		out.DelistTime = timestamppb.New(*p.DelistTime)
	}
	return out
}

func toRecommendation(r store.Recommendation) *stockv1.Recommendation {
	return &stockv1.Recommendation{
		Symbol:       r.Symbol,
		Source:       r.Source,
		Action:       stockv1.Action(stockv1.Action_value[r.Action]),
		TargetPrice:  decimal.Trim(r.TargetPrice),
		Confidence:   r.Confidence,
		Rationale:    r.Rationale,
		CreateTime:   timestamppb.New(r.CreateTime),
		UpdateTime:   timestamppb.New(r.UpdateTime),
		ModelVersion: r.ModelVersion,
		PredictTime:  timestamppb.New(r.PredictTime),
	}
}

func toPastRecommendation(r store.PastRecommendation) *stockv1.PastRecommendation {
	return &stockv1.PastRecommendation{
		Symbol:       r.Symbol,
		Source:       r.Source,
		ModelVersion: r.ModelVersion,
		Action:       stockv1.Action(stockv1.Action_value[r.Action]),
		TargetPrice:  decimal.Trim(r.TargetPrice),
		Confidence:   r.Confidence,
		Rationale:    r.Rationale,
		PredictTime:  timestamppb.New(r.PredictTime),
		RecordTime:   timestamppb.New(r.RecordTime),
	}
}

// fromRecommendation converts a validated recommendation.
func fromRecommendation(r *stockv1.Recommendation) store.Recommendation {
	return store.Recommendation{
		Symbol:      r.GetSymbol(),
		Source:      r.GetSource(),
		Action:      r.GetAction().String(),
		TargetPrice: r.GetTargetPrice(), // validated; "" stores NULL
		Confidence:  r.GetConfidence(),
		Rationale:   r.GetRationale(),
		// Validated; unset stays the zero time, which the store reads as the write's time.
		ModelVersion: r.GetModelVersion(),
		PredictTime:  predictTime(r.GetPredictTime()),
	}
}

// predictTime returns a validated predict_time, or the zero time if it is unset.
func predictTime(ts *timestamppb.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	return ts.AsTime()
}

// validDecimal reports whether s is a non-negative decimal numeric(20, 6) stores without
// rounding ("187.25"; see decimal.Valid), or empty (NULL where a column allows it).
func validDecimal(s string) bool {
	return s == "" || (s[0] != '-' && decimal.Valid(s))
}

// timeRange returns a request's [start, end) with unset ends made concrete.
func timeRange(start, end *timestamppb.Timestamp) (time.Time, time.Time) {
	lo, hi := store.MinTime, store.MaxTime
	if start != nil {
		lo = start.AsTime()
	}
	if end != nil {
		hi = end.AsTime()
	}
	return lo, hi
}
