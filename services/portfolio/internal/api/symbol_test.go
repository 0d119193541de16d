package api_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
)

// TestExecuteTrade_symbolRule: portfolio took "1$%" for a ticker symbol (any upper-case
// text of up to 10 bytes without blanks) and left the stock service to refuse it, so with
// stock unreachable a malformed symbol was UNAVAILABLE. It now refuses what stock refuses,
// by the same rule, before any call: INVALID_ARGUMENT on the field "symbol", whether or not
// stock answers. The stock service here is an address nobody listens on, so a symbol the
// rule lets through gets UNAVAILABLE.
func TestExecuteTrade_symbolRule(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := l.Addr().String()
	l.Close()
	e := serve(t, nobody, api.New, nil)
	pid := e.newPortfolio(t, "symbols@example.com", "1000")

	for i, tt := range []struct {
		symbol string
		want   codes.Code
	}{
		{"1$%", codes.InvalidArgument}, {"-A", codes.InvalidArgument}, {"A$", codes.InvalidArgument},
		{"ABCDEFGHIJK", codes.InvalidArgument}, {"É", codes.InvalidArgument}, {"AAPL\x00", codes.InvalidArgument},
		{"BRK.B", codes.Unavailable}, {"BF-B", codes.Unavailable},
	} {
		_, err := e.client.ExecuteTrade(t.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: tt.symbol,
			Side: buy, Quantity: "1", RequestId: fmt.Sprintf("symbol-%d", i)})
		if got := status.Code(err); got != tt.want {
			t.Errorf("ExecuteTrade(%q) = %v, want %v", tt.symbol, err, tt.want)
			continue
		}
		if tt.want != codes.InvalidArgument {
			continue
		}
		var violations []string
		for _, d := range status.Convert(err).Details() {
			if br, ok := d.(*errdetails.BadRequest); ok {
				for _, v := range br.GetFieldViolations() {
					violations = append(violations, v.GetField()+": "+v.GetDescription())
				}
			}
		}
		if len(violations) != 1 || !strings.HasPrefix(violations[0], "symbol: "+validate.SymbolRule) {
			t.Errorf("ExecuteTrade(%q) violations = %q, want one of symbol, stating the symbol rule", tt.symbol, violations)
		}
	}
	e.wantNothingWritten(t)
}
