package api

import (
	"cmp"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
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
		Open:   trimDecimal(p.Open),
		High:   trimDecimal(p.High),
		Low:    trimDecimal(p.Low),
		Close:  trimDecimal(p.Close),
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
		Symbol:      r.Symbol,
		Source:      r.Source,
		Action:      stockv1.Action(stockv1.Action_value[r.Action]),
		TargetPrice: trimDecimal(r.TargetPrice),
		Confidence:  r.Confidence,
		Rationale:   r.Rationale,
		CreateTime:  timestamppb.New(r.CreateTime),
		UpdateTime:  timestamppb.New(r.UpdateTime),
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
	}
}

// Decimal limits of the numeric(20, 6) columns.
const (
	maxIntDigits  = 14
	maxFracDigits = 6
)

// validDecimal reports whether s is a non-negative decimal of at most 14 integer and 6
// fraction digits ("187.25"), as numeric(20, 6) stores without rounding. The empty string
// is valid (NULL where a column allows it). No regexp: ingest checks four per row.
func validDecimal(s string) bool {
	if s == "" {
		return true
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if len(intPart) == 0 || len(intPart) > maxIntDigits || len(frac) > maxFracDigits || (hasDot && frac == "") {
		return false
	}
	return allDigits(intPart) && allDigits(frac)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareDecimal compares two non-empty valid decimals of validDecimal.
func compareDecimal(a, b string) int {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	ai, bi = strings.TrimLeft(ai, "0"), strings.TrimLeft(bi, "0")
	if len(ai) != len(bi) {
		return cmp.Compare(len(ai), len(bi))
	}
	if c := strings.Compare(ai, bi); c != 0 {
		return c
	}
	// Fraction digits compare as text: "5" > "25" as 0.5 > 0.25, once trailing zeros are gone.
	return strings.Compare(strings.TrimRight(af, "0"), strings.TrimRight(bf, "0"))
}

// trimDecimal drops trailing fraction zeros of PostgreSQL's numeric text: a numeric(20, 6)
// column prints "187.250000" for 187.25.
func trimDecimal(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
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
