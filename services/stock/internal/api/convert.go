package api

import (
	"math/big"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
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
	return &stockv1.Price{
		Symbol: p.Symbol,
		Time:   timestamppb.New(p.Time),
		Open:   trimDecimal(p.Open),
		High:   trimDecimal(p.High),
		Low:    trimDecimal(p.Low),
		Close:  trimDecimal(p.Close),
		Volume: p.Volume,
	}
}

func toRecommendation(r store.Recommendation) *stockv1.Recommendation {
	return &stockv1.Recommendation{
		Symbol:      r.Symbol,
		Source:      r.Source,
		Action:      stockv1.Action(stockv1.Action_value[r.Action]),
		TargetPrice: formatNumeric(r.TargetPrice),
		Confidence:  r.Confidence,
		Rationale:   r.Rationale,
		CreateTime:  timestamppb.New(r.CreateTime),
		UpdateTime:  timestamppb.New(r.UpdateTime),
	}
}

// fromRecommendation converts a validated recommendation.
func fromRecommendation(r *stockv1.Recommendation) store.Recommendation {
	target, _ := parseDecimal(r.GetTargetPrice()) // validated; "" gives NULL
	return store.Recommendation{
		Symbol:      r.GetSymbol(),
		Source:      r.GetSource(),
		Action:      r.GetAction().String(),
		TargetPrice: target,
		Confidence:  r.GetConfidence(),
		Rationale:   r.GetRationale(),
	}
}

// Decimal limits of the numeric(20, 6) columns.
const (
	maxIntDigits  = 14
	maxFracDigits = 6
)

// parseDecimal parses a non-negative decimal of at most 14 integer and 6 fraction digits
// ("187.25") without going through big.Float or a regexp: ingest parses four per row.
// The empty string is a valid NULL.
func parseDecimal(s string) (pgtype.Numeric, bool) {
	if s == "" {
		return pgtype.Numeric{}, true
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if len(intPart) == 0 || len(intPart) > maxIntDigits || len(frac) > maxFracDigits || (hasDot && frac == "") {
		return pgtype.Numeric{}, false
	}
	var m int64
	for _, part := range [2]string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if c < '0' || c > '9' {
				return pgtype.Numeric{}, false
			}
			m = m*10 + int64(c-'0')
		}
	}
	n := pgtype.Numeric{Exp: -int32(len(frac)), Valid: true}
	if len(intPart)+len(frac) <= 18 {
		n.Int = big.NewInt(m)
	} else { // up to 20 digits: past int64, so let big.Int parse them (they are all digits)
		n.Int, _ = new(big.Int).SetString(intPart+frac, 10)
	}
	return n, true
}

// compareDecimal compares two valid numerics of parseDecimal, whose exponents may differ.
func compareDecimal(a, b pgtype.Numeric) int {
	x, y := new(big.Int).Set(a.Int), new(big.Int).Set(b.Int)
	ten := big.NewInt(10)
	for e := a.Exp; e > b.Exp; e-- {
		x.Mul(x, ten)
	}
	for e := b.Exp; e > a.Exp; e-- {
		y.Mul(y, ten)
	}
	return x.Cmp(y)
}

// formatNumeric renders a numeric exactly, without trailing fraction zeros; NULL is "".
func formatNumeric(n pgtype.Numeric) string {
	if !n.Valid {
		return ""
	}
	v, err := n.Value()
	if err != nil {
		return ""
	}
	s, _ := v.(string)
	return trimDecimal(s)
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
