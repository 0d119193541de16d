package api

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// Request limits: big enough for bulk loads, small enough to bound one statement.
const (
	maxBatchGet     = 1000
	maxUpsert       = 10000
	maxIngestBatch  = 10000
	maxStreamBatch  = 10000
	maxTextLen      = 200
	maxRationaleLen = 2000
	maxWatchSymbols = 1000
	maxVersionLen   = 100
	// predictSkew is how far in the future a predict_time may be: clocks differ.
	predictSkew = 5 * time.Minute
)

// Validate checks a request before its handler runs (the server's validation interceptor
// calls it). Lists leave filter, order_by and page_token to pkg/query; IngestPrices, a client
// stream, checks its messages while copying them, where each row is touched anyway.
// A request without a case is refused (validate.NoRule): every RPC has one, says
// TestValidate_everyMethod (auth_test.go).
func Validate(req any) error {
	var v validate.Violations
	switch r := req.(type) {
	case *stockv1.GetStockRequest:
		checkSymbol(&v, "symbol", r.GetSymbol())
	case *stockv1.DeleteStockRequest:
		checkSymbol(&v, "symbol", r.GetSymbol())
	case *stockv1.BatchGetStocksRequest:
		checkSymbols(&v, r.GetSymbols())
	case *stockv1.GetLatestPricesRequest:
		checkSymbols(&v, r.GetSymbols())
	case *stockv1.UpsertStocksRequest:
		checkStocks(&v, r.GetStocks())
	case *stockv1.ListPricesRequest:
		checkSymbol(&v, "symbol", r.GetSymbol())
		checkRange(&v, r.GetStartTime(), r.GetEndTime())
	case *stockv1.ListBarsRequest:
		checkSymbol(&v, "symbol", r.GetSymbol())
		_, ok := barUnits[r.GetInterval()]
		v.Check(ok, "interval", "must be INTERVAL_DAY, INTERVAL_WEEK or INTERVAL_MONTH, got %s", r.GetInterval())
		checkRange(&v, r.GetStartTime(), r.GetEndTime())
	case *stockv1.StreamPricesRequest:
		checkSymbol(&v, "symbol", r.GetSymbol())
		checkRange(&v, r.GetStartTime(), r.GetEndTime())
		v.Check(r.GetBatchSize() >= 0 && r.GetBatchSize() <= maxStreamBatch, "batch_size", "must be 0 to %d, got %d", maxStreamBatch, r.GetBatchSize())
	case *stockv1.ExportPricesRequest:
		// The filter: pkg/query's, as ListStocks'; the token's contents: the handler's.
		checkRange(&v, r.GetStartTime(), r.GetEndTime())
		v.Check(r.GetBatchSize() >= 0 && r.GetBatchSize() <= maxExportBatch, "batch_size", "must be 0 to %d, got %d", maxExportBatch, r.GetBatchSize())
		_, known := stockv1.ExportFormat_name[int32(r.GetFormat())]
		v.Check(known, "format", "must be EXPORT_FORMAT_PROTO or EXPORT_FORMAT_ARROW, got %d", r.GetFormat())
		checkText(&v, "recommendation_source", r.GetRecommendationSource(), false, maxTextLen, validate.SingleLine)
		v.Check(len(r.GetResumeToken()) <= maxExportToken, "resume_token", "must be at most %d bytes, got %d", maxExportToken, len(r.GetResumeToken()))
	case *stockv1.UpsertRecommendationsRequest:
		checkRecommendations(&v, r.GetRecommendations())
	case *stockv1.ListStocksRequest, *stockv1.ListRecommendationsRequest, *stockv1.ListRecommendationHistoryRequest:
		// filter, order_by, page_size and page_token: pkg/query's.
	case *stockv1.WatchLatestPricesRequest:
		checkWatchSymbols(&v, r.GetSymbols())
	case *stockv1.WatchStockEventsRequest:
		// Which types and cursors are the service's: pkg/events's (Serve), with their reasons.
		v.Check(len(r.GetTypes()) <= events.MaxTypes, "types", "must hold at most %d types, got %d", events.MaxTypes, len(r.GetTypes()))
		v.Check(len(r.GetCursor()) <= events.MaxCursorLen, "cursor", "must be at most %d bytes, got %d", events.MaxCursorLen, len(r.GetCursor()))
	case *stockv1.IngestPricesRequest:
		// A client stream's messages: the handler checks each row as it copies it.
	default:
		return validate.NoRule(req)
	}
	return v.Err()
}

func checkSymbol(v *validate.Violations, field, s string) { v.Symbol(field, s) }

func checkSymbols(v *validate.Violations, symbols []string) {
	if !v.Check(len(symbols) > 0 && len(symbols) <= maxBatchGet, "symbols", "must hold 1 to %d symbols, got %d", maxBatchGet, len(symbols)) {
		return
	}
	for i, s := range symbols {
		checkSymbol(v, fmt.Sprintf("symbols[%d]", i), s)
	}
}

// checkWatchSymbols is checkSymbols for a watch, which names each symbol once.
func checkWatchSymbols(v *validate.Violations, symbols []string) {
	if !v.Check(len(symbols) > 0 && len(symbols) <= maxWatchSymbols, "symbols", "must hold 1 to %d symbols, got %d", maxWatchSymbols, len(symbols)) {
		return
	}
	seen := make(map[string]int, len(symbols))
	for i, s := range symbols {
		field := fmt.Sprintf("symbols[%d]", i)
		checkSymbol(v, field, s)
		if j, dup := seen[s]; dup {
			v.Add(field, "%q repeats symbols[%d]", s, j)
		}
		seen[s] = i
	}
}

func checkRange(v *validate.Violations, start, end *timestamppb.Timestamp) {
	for _, t := range []struct {
		field string
		ts    *timestamppb.Timestamp
	}{{"start_time", start}, {"end_time", end}} {
		if t.ts != nil {
			v.Check(t.ts.IsValid(), t.field, "is not a valid timestamp")
		}
	}
	if start != nil && end != nil && start.IsValid() && end.IsValid() {
		v.Check(start.AsTime().Before(end.AsTime()), "end_time", "must be after start_time")
	}
}

func checkText(v *validate.Violations, field, s string, required bool, maxLen int, kind validate.TextKind) {
	if required && s == "" {
		v.Add(field, "is required")
		return
	}
	if v.Check(len(s) <= maxLen, field, "must be at most %d bytes, got %d", maxLen, len(s)) {
		v.Text(field, s, kind)
	}
}

func checkStocks(v *validate.Violations, stocks []*stockv1.Stock) {
	if !v.Check(len(stocks) > 0 && len(stocks) <= maxUpsert, "stocks", "must hold 1 to %d stocks, got %d", maxUpsert, len(stocks)) {
		return
	}
	seen := make(map[string]int, len(stocks))
	for i, st := range stocks {
		f := func(name string) string { return fmt.Sprintf("stocks[%d].%s", i, name) }
		checkSymbol(v, f("symbol"), st.GetSymbol())
		if j, dup := seen[st.GetSymbol()]; dup {
			v.Add(f("symbol"), "%q repeats stocks[%d]", st.GetSymbol(), j)
		}
		seen[st.GetSymbol()] = i
		checkText(v, f("name"), st.GetName(), true, maxTextLen, validate.SingleLine)
		checkText(v, f("sector"), st.GetSector(), false, maxTextLen, validate.SingleLine)
		checkText(v, f("industry"), st.GetIndustry(), false, maxTextLen, validate.SingleLine)
		checkText(v, f("exchange"), st.GetExchange(), false, maxTextLen, validate.SingleLine)
		if c := st.GetCurrency(); c != "" {
			v.Check(len(c) == 3 && isUpper(c), f("currency"), "must be an ISO 4217 code like \"USD\", got %q", c)
		}
		v.Check(st.GetMarketCap() >= 0, f("market_cap"), "must not be negative")
	}
}

func isUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

const decimalRule = "must be a non-negative decimal with at most 14 integer and 6 fraction digits"

func checkRecommendations(v *validate.Violations, recs []*stockv1.Recommendation) {
	if !v.Check(len(recs) > 0 && len(recs) <= maxUpsert, "recommendations", "must hold 1 to %d recommendations, got %d", maxUpsert, len(recs)) {
		return
	}
	type key struct{ symbol, source string }
	seen := make(map[key]int, len(recs))
	for i, r := range recs {
		f := func(name string) string { return fmt.Sprintf("recommendations[%d].%s", i, name) }
		checkSymbol(v, f("symbol"), r.GetSymbol())
		checkText(v, f("source"), r.GetSource(), true, maxTextLen, validate.SingleLine)
		k := key{r.GetSymbol(), r.GetSource()}
		if j, dup := seen[k]; dup {
			v.Add(f("source"), "(%q, %q) repeats recommendations[%d]", k.symbol, k.source, j)
		}
		seen[k] = i
		_, known := stockv1.Action_name[int32(r.GetAction())]
		v.Check(known && r.GetAction() != stockv1.Action_ACTION_UNSPECIFIED, f("action"), "must be one of ACTION_STRONG_BUY, ACTION_BUY, ACTION_HOLD, ACTION_SELL, ACTION_STRONG_SELL")
		v.Check(validDecimal(r.GetTargetPrice()), f("target_price"), "%s, got %q", decimalRule, r.GetTargetPrice())
		c := r.GetConfidence()
		v.Check(!math.IsNaN(c) && c >= 0 && c <= 1, f("confidence"), "must be from 0 to 1, got %v", c)
		checkText(v, f("rationale"), r.GetRationale(), false, maxRationaleLen, validate.MultiLine)
		checkText(v, f("model_version"), r.GetModelVersion(), false, maxVersionLen, validate.SingleLine)
		if pt := r.GetPredictTime(); pt != nil {
			checkPredictTime(v, f("predict_time"), pt)
		}
	}
}

// checkPredictTime holds a prediction's time to 1970 up to a few minutes from now.
func checkPredictTime(v *validate.Violations, field string, ts *timestamppb.Timestamp) {
	if !v.Check(ts.IsValid(), field, "is not a valid timestamp") {
		return
	}
	t := ts.AsTime()
	v.Check(!t.Before(time.Unix(0, 0)), field, "must not be before 1970, got %s", t.Format(time.RFC3339))
	v.Check(!t.After(time.Now().Add(predictSkew)), field, "must not be more than %s in the future, got %s", predictSkew, t.Format(time.RFC3339Nano))
}
