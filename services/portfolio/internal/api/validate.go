package api

import (
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

const (
	maxEmailLen = 254
	maxNameLen  = 200
)

// Validate checks a request before its handler runs (the server's validation interceptor
// calls it). Lists leave filter, order_by and page_token to pkg/query.
// A request without a case is refused (validate.NoRule): every RPC has one, says
// TestValidate_everyMethod (auth_test.go).
func Validate(req any) error {
	var v validate.Violations
	switch r := req.(type) {
	case *portfoliov1.CreateUserRequest:
		e := r.GetEmail()
		if v.Text("email", e, validate.SingleLine) {
			v.Check(len(e) <= maxEmailLen && strings.Count(e, "@") == 1 && !strings.HasPrefix(e, "@") && !strings.HasSuffix(e, "@") &&
				!strings.ContainsAny(e, " \t\r\n"), "email", "must be an email address like ada@example.com, got %q", e)
		}
		v.Check(len(r.GetDisplayName()) <= maxNameLen, "display_name", "must be at most %d bytes", maxNameLen)
		v.Text("display_name", r.GetDisplayName(), validate.SingleLine)
	case *portfoliov1.GetUserRequest:
		checkID(&v, "user_id", r.GetUserId())
	case *portfoliov1.CreatePortfolioRequest:
		v.Check(r.GetUserId() >= 0, "user_id", "must be positive, or 0 for the caller's own user, got %d", r.GetUserId())
		n := r.GetName()
		v.Check(n != "" && len(n) <= maxNameLen, "name", "must be 1 to %d bytes", maxNameLen)
		v.Text("name", n, validate.SingleLine)
		if c := r.GetCurrency(); c != "" {
			v.Check(len(c) == 3 && strings.ToUpper(c) == c && strings.Trim(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "",
				"currency", "must be an ISO 4217 code like \"USD\", got %q", c)
		}
		v.RequestID("request_id", r.GetRequestId(), false)
	case *portfoliov1.GetPortfolioRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		checkTime(&v, "as_of", r.GetAsOf(), false)
	case *portfoliov1.GetPortfolioPnlRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		checkTime(&v, "as_of", r.GetAsOf(), false)
	case *portfoliov1.ListPortfolioValuesRequest:
		// page_size and page_token: pkg/query's.
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		start, end := r.GetStartTime(), r.GetEndTime()
		if checkTime(&v, "start_time", start, true) && checkTime(&v, "end_time", end, true) {
			v.Check(start.AsTime().Before(end.AsTime()), "end_time", "must be after start_time")
		}
		v.Check(valueIntervals[r.GetInterval()], "interval", "must be INTERVAL_DAY, INTERVAL_WEEK or INTERVAL_MONTH, got %s", r.GetInterval())
	case *portfoliov1.DepositRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		checkPositive(&v, "amount", r.GetAmount())
		v.RequestID("request_id", r.GetRequestId(), true)
	case *portfoliov1.WithdrawRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		checkPositive(&v, "amount", r.GetAmount())
		v.RequestID("request_id", r.GetRequestId(), true)
	case *portfoliov1.ExecuteTradeRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
		v.Symbol("symbol", r.GetSymbol())
		v.Check(r.GetSide() == portfoliov1.Side_SIDE_BUY || r.GetSide() == portfoliov1.Side_SIDE_SELL,
			"side", "must be SIDE_BUY or SIDE_SELL")
		checkPositive(&v, "quantity", r.GetQuantity())
		if r.GetLimitPrice() != "" {
			checkPositive(&v, "limit_price", r.GetLimitPrice())
		}
		v.RequestID("request_id", r.GetRequestId(), true)
	case *portfoliov1.ListTradesRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
	case *portfoliov1.ListCashMovementsRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
	case *portfoliov1.WatchPortfolioRequest:
		checkID(&v, "portfolio_id", r.GetPortfolioId())
	case *portfoliov1.WatchPortfolioEventsRequest:
		// Which types and cursors are the service's: events.Serve's to say.
		v.Check(len(r.GetTypes()) <= events.MaxTypes, "types", "must be at most %d, got %d", events.MaxTypes, len(r.GetTypes()))
		v.Check(len(r.GetCursor()) <= events.MaxCursorLen, "cursor", "must be at most %d bytes, got %d", events.MaxCursorLen, len(r.GetCursor()))
	case *portfoliov1.ListPortfoliosRequest:
		// filter, order_by, page_size and page_token: pkg/query's.
	default:
		return validate.NoRule(req)
	}
	return v.Err()
}

func checkID(v *validate.Violations, field string, id int64) {
	v.Check(id > 0, field, "is required and must be positive, got %d", id)
}

// checkTime checks an optional (or, with required, a required) timestamp field, reporting
// whether it is set and valid.
func checkTime(v *validate.Violations, field string, t *timestamppb.Timestamp, required bool) bool {
	if t == nil {
		if required {
			v.Add(field, "is required")
		}
		return false
	}
	return v.Check(t.IsValid(), field, "is not a valid timestamp")
}

func checkPositive(v *validate.Violations, field, s string) {
	r, err := decimal.Parse(s)
	if err != nil {
		v.Add(field, "must be a decimal string like \"100.25\": %v", err)
		return
	}
	v.Check(r.Sign() > 0, field, "must be positive, got %q", s)
}
