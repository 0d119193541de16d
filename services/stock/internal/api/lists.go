package api

import (
	"fmt"

	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// lists holds the whitelist of every list method: the only fields filter and order_by may
// name, and the columns they map to. Each sort column has an index ending in the key.
type lists struct {
	stocks, recommendations, prices query.Schema
}

func newLists(tokenKey string) lists {
	return lists{
		stocks: query.Schema{
			Fields: []query.Field{
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true},
				{Name: "name", Column: "name", Type: query.String, Sortable: true},
				{Name: "sector", Column: "sector", Type: query.String, Sortable: true},
				{Name: "industry", Column: "industry", Type: query.String, Sortable: true},
				{Name: "exchange", Column: "exchange", Type: query.String, Sortable: true},
				{Name: "currency", Column: "currency", Type: query.String, Sortable: true},
				{Name: "market_cap", Column: "market_cap", Type: query.Int, Sortable: true},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true},
			},
			Key:      []string{"symbol"},
			TokenKey: tokenKey,
		},
		recommendations: query.Schema{
			Fields: []query.Field{
				{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true},
				{Name: "source", Column: "source", Type: query.String, Sortable: true},
				{Name: "action", Column: "action", Type: query.Enum, Enum: stockv1.Action(0).Type(), Sortable: true},
				{Name: "confidence", Column: "confidence", Type: query.Float, Sortable: true},
				{Name: "create_time", Column: "create_time", Type: query.Timestamp, Sortable: true},
				{Name: "update_time", Column: "update_time", Type: query.Timestamp, Sortable: true},
			},
			Key:      []string{"symbol", "source"},
			TokenKey: tokenKey,
		},
		// Prices have no filter: the request names the symbol and range, and pages walk time.
		prices: query.Schema{
			Fields:   []query.Field{{Name: "time", Column: "ts", Type: query.Timestamp, Sortable: true}},
			Key:      []string{"time"},
			TokenKey: tokenKey,
		},
	}
}

func stockValue(st store.Stock, field string) any {
	switch field {
	case "symbol":
		return st.Symbol
	case "name":
		return st.Name
	case "sector":
		return st.Sector
	case "industry":
		return st.Industry
	case "exchange":
		return st.Exchange
	case "currency":
		return st.Currency
	case "market_cap":
		return st.MarketCap
	case "create_time":
		return st.CreateTime
	case "update_time":
		return st.UpdateTime
	}
	panic(fmt.Sprintf("stock field %q is sortable but has no value", field))
}

func recommendationValue(r store.Recommendation, field string) any {
	switch field {
	case "symbol":
		return r.Symbol
	case "source":
		return r.Source
	case "action":
		return r.Action
	case "confidence":
		return r.Confidence
	case "create_time":
		return r.CreateTime
	case "update_time":
		return r.UpdateTime
	}
	panic(fmt.Sprintf("recommendation field %q is sortable but has no value", field))
}

func priceValue(p store.Price, _ string) any { return p.Time }
