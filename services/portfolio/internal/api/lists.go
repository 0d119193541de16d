package api

import (
	"fmt"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// lists holds the whitelist of every list method; each sort column has an index ending in id.
type lists struct {
	portfolios, trades, movements query.Schema
}

func newLists(tokenKey string) lists {
	return lists{
		portfolios: query.Schema{
			Fields: []query.Field{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true},
				{Name: "user_id", Column: "user_id", Type: query.Int, Sortable: true},
				{Name: "name", Column: "name", Type: query.String, Sortable: true},
				{Name: "currency", Column: "currency", Type: query.String, Sortable: true},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		trades: query.Schema{
			Fields: []query.Field{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true},
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true},
				{Name: "side", Column: "side", Type: query.Enum, Enum: portfoliov1.Side(0).Type(), Sortable: true},
				{Name: "execute_time", Column: "execute_time", Type: query.Timestamp, Sortable: true},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		movements: query.Schema{
			Fields: []query.Field{{Name: "id", Column: "id", Type: query.Int, Sortable: true}},
			Key:    []string{"id"}, TokenKey: tokenKey,
		},
	}
}

func portfolioValue(p store.Portfolio, field string) any {
	switch field {
	case "id":
		return p.ID
	case "user_id":
		return p.UserID
	case "name":
		return p.Name
	case "currency":
		return p.Currency
	case "create_time":
		return p.CreateTime
	case "update_time":
		return p.UpdateTime
	}
	panic(fmt.Sprintf("portfolio field %q is sortable but has no value", field))
}

func tradeValue(t store.Trade, field string) any {
	switch field {
	case "id":
		return t.ID
	case "symbol":
		return t.Symbol
	case "side":
		return t.Side
	case "execute_time":
		return t.ExecuteTime
	}
	panic(fmt.Sprintf("trade field %q is sortable but has no value", field))
}

func movementValue(m store.CashMovement, _ string) any { return m.ID }
