package api

import (
	"math/big"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
)

func TestCheckQuote(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	rat := func(s string) *big.Rat {
		r, _ := new(big.Rat).SetString(s)
		return r
	}
	fresh := quote{symbol: "AAPL", price: rat("100"), time: now.Add(-time.Hour), currency: "USD"}
	old := fresh
	old.time = now.Add(-30 * 24 * time.Hour)
	delistedAt := now.Add(-60 * 24 * time.Hour)
	delisted := old
	delisted.delisted = &delistedAt
	future := fresh
	future.time = now.Add(24 * time.Hour)
	unknown := fresh
	unknown.currency = ""
	const (
		buy  = portfoliov1.Side_SIDE_BUY
		sell = portfoliov1.Side_SIDE_SELL
	)
	tests := []struct {
		name     string
		q        quote
		side     portfoliov1.Side
		currency string
		limit    *big.Rat
		maxAge   time.Duration
		want     apierr.Reason // "": the trade may execute
	}{
		{"fresh price", fresh, buy, "USD", nil, 24 * time.Hour, ""},
		{"another currency", fresh, buy, "EUR", nil, 24 * time.Hour, apierr.CurrencyMismatch},
		{"another currency, sell", fresh, sell, "EUR", nil, 24 * time.Hour, apierr.CurrencyMismatch},
		{"currency not told", unknown, buy, "USD", nil, 24 * time.Hour, apierr.CurrencyMismatch},
		{"price too old", old, buy, "USD", nil, 24 * time.Hour, apierr.PriceTooOld},
		{"price too old, sell", old, sell, "USD", nil, 24 * time.Hour, apierr.PriceTooOld},
		{"any age when max age is 0", old, buy, "USD", nil, 0, ""},
		{"a bar timed ahead of the clock", future, buy, "USD", nil, 24 * time.Hour, ""},
		{"delisted, buy", delisted, buy, "USD", nil, 24 * time.Hour, apierr.StockDelisted},
		{"delisted, sell at the final price whatever its age", delisted, sell, "USD", nil, 24 * time.Hour, ""},
		{"delisted, sell in another currency", delisted, sell, "EUR", nil, 24 * time.Hour, apierr.CurrencyMismatch},
		{"buy limit met", fresh, buy, "USD", rat("100"), 24 * time.Hour, ""},
		{"buy limit not met", fresh, buy, "USD", rat("99.99"), 24 * time.Hour, apierr.LimitNotMet},
		{"sell limit met", fresh, sell, "USD", rat("100"), 24 * time.Hour, ""},
		{"sell limit not met", fresh, sell, "USD", rat("100.01"), 24 * time.Hour, apierr.LimitNotMet},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkQuote(tt.q, tt.side, tt.currency, tt.limit, now, tt.maxAge)
			got := apierr.Reason("")
			if err != nil {
				got = apierr.Reason(apierr.Info(status.Convert(err)).GetReason())
				if got == "" {
					t.Fatalf("checkQuote = %v, an error without a reason", err)
				}
			}
			if got != tt.want {
				t.Errorf("checkQuote = %v (reason %q), want reason %q", err, got, tt.want)
			}
		})
	}
}
