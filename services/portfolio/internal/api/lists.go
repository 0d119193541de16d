package api

import (
	"time"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
)

// lists holds the whitelist of every list method, with where a row holds each field's value;
// each sort column has an index ending in id.
type lists struct {
	portfolios query.Schema[store.Portfolio]
	trades     query.Schema[store.Trade]
	movements  query.Schema[store.CashMovement]
	// values pages ListPortfolioValues's points, computed rather than read: its token holds the
	// last point sent.
	values query.Schema[time.Time]
}

func newLists(tokenKey string) lists {
	type (
		pf = store.Portfolio
		tr = store.Trade
		mv = store.CashMovement
	)
	return lists{
		portfolios: query.Schema[pf]{
			Fields: []query.Field[pf]{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true, Value: func(p pf) any { return p.ID }},
				{Name: "user_id", Column: "user_id", Type: query.Int, Sortable: true, Value: func(p pf) any { return p.UserID }},
				{Name: "name", Column: "name", Type: query.String, Sortable: true, Value: func(p pf) any { return p.Name }},
				{Name: "currency", Column: "currency", Type: query.String, Sortable: true, Value: func(p pf) any { return p.Currency }},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true, Value: func(p pf) any { return p.CreateTime }},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true, Value: func(p pf) any { return p.UpdateTime }},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		trades: query.Schema[tr]{
			Fields: []query.Field[tr]{
				{Name: "id", Column: "id", Type: query.Int, Sortable: true, Value: func(t tr) any { return t.ID }},
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true, Value: func(t tr) any { return t.Symbol }},
				{Name: "side", Column: "side", Type: query.Enum, Enum: portfoliov1.Side(0).Type(), Sortable: true, Value: func(t tr) any { return t.Side }},
				{Name: "execute_time", Column: "execute_time", Type: query.Timestamp, Sortable: true, Value: func(t tr) any { return t.ExecuteTime }},
			},
			Key: []string{"id"}, TokenKey: tokenKey,
		},
		values: query.Schema[time.Time]{
			Fields: []query.Field[time.Time]{{Name: "time", Column: "time", Type: query.Timestamp, Sortable: true,
				Value: func(t time.Time) any { return t }}},
			Key: []string{"time"}, TokenKey: tokenKey,
		},
		movements: query.Schema[mv]{
			Fields: []query.Field[mv]{{Name: "id", Column: "id", Type: query.Int, Sortable: true, Value: func(m mv) any { return m.ID }}},
			Key:    []string{"id"}, TokenKey: tokenKey,
		},
	}
}
