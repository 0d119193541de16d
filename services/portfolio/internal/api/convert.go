package api

import (
	"crypto/sha256"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

func toUser(u store.User) *portfoliov1.User {
	return &portfoliov1.User{Id: u.ID, Email: u.Email, DisplayName: u.DisplayName, CreateTime: timestamppb.New(u.CreateTime)}
}

func toPortfolio(p store.Portfolio) *portfoliov1.Portfolio {
	return &portfoliov1.Portfolio{
		Id: p.ID, UserId: p.UserID, Name: p.Name, Currency: p.Currency, Cash: decimal.Trim(p.Cash),
		CreateTime: timestamppb.New(p.CreateTime), UpdateTime: timestamppb.New(p.UpdateTime),
	}
}

func toTrade(t store.Trade) *portfoliov1.Trade {
	out := &portfoliov1.Trade{
		Id: t.ID, PortfolioId: t.PortfolioID, Symbol: t.Symbol,
		Side:     portfoliov1.Side(portfoliov1.Side_value[t.Side]),
		Quantity: decimal.Trim(t.Quantity), Price: decimal.Trim(t.Price), Amount: decimal.Trim(t.Amount),
		RequestId: t.RequestID, ExecuteTime: timestamppb.New(t.ExecuteTime),
	}
	if t.PriceTime != nil {
		out.PriceTime = timestamppb.New(*t.PriceTime)
	}
	return out
}

func toMovement(m store.CashMovement) *portfoliov1.CashMovement {
	out := &portfoliov1.CashMovement{
		Id: m.ID, PortfolioId: m.PortfolioID,
		Kind:      portfoliov1.CashMovementKind(portfoliov1.CashMovementKind_value[m.Kind]),
		Amount:    decimal.Trim(m.Amount),
		RequestId: m.RequestID, CreateTime: timestamppb.New(m.CreateTime),
	}
	if m.TradeID != nil {
		out.TradeId = *m.TradeID
	}
	return out
}

// requestHash fingerprints what a request asked for, so a request_id reused for another
// request is told apart from a retry of the same one.
func requestHash(parts ...string) []byte {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return h[:]
}
