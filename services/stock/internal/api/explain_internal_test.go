package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

// planNodes lists the node types of an EXPLAIN (FORMAT JSON) plan.
func planNodes(node map[string]any) []string {
	types := []string{node["Node Type"].(string)}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		types = append(types, planNodes(c.(map[string]any))...)
	}
	return types
}

// TestList_plans checks that every order the list methods accept, with and without a hot
// filter, is served by an index walk: no sequential scan, and no sort unless the filter
// picks a handful of rows through an index (one symbol's recommendations).
func TestList_plans(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.stocks (symbol, name, sector, industry, exchange, market_cap)
		SELECT 'S' || i, 'Name ' || (i * 7919 % 20000), (ARRAY['Technology','Energy','Financials','Utilities'])[1 + i % 4],
		       'Industry ' || i % 40, (ARRAY['NYSE','NASDAQ'])[1 + i % 2], (i * 104729 % 1000) * 1000000
		FROM generate_series(1, 20000) AS i;
		INSERT INTO stock.recommendations (symbol, source, action, confidence)
		SELECT 'S' || i, src, (ARRAY['ACTION_BUY','ACTION_HOLD','ACTION_SELL'])[1 + (i + length(src)) % 3], (i % 100) / 100.0
		FROM generate_series(1, 20000) AS i, unnest(ARRAY['model', 'Zacks']) AS src;
		ANALYZE stock.stocks, stock.recommendations`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	lists := newLists("k")
	tests := []struct {
		name    string
		build   func(query.Request) (*query.Query, error)
		fields  []string
		table   string
		filters []string
	}{
		{"stocks", lists.stocks.Build, fieldNames(lists.stocks), "stock.stocks", []string{"", `sector = "Technology"`}},
		{
			"recommendations", lists.recommendations.Build, fieldNames(lists.recommendations), "stock.recommendations",
			[]string{"", "action = ACTION_BUY", `symbol = "S42"`},
		},
	}
	const selective = `symbol = "S42"`
	for _, tt := range tests {
		for _, f := range tt.fields {
			for _, dir := range []string{"", " desc"} {
				for _, filter := range tt.filters {
					t.Run(fmt.Sprintf("%s/%s%s/%s", tt.name, f, dir, filter), func(t *testing.T) {
						t.Parallel()
						q, err := tt.build(query.Request{OrderBy: f + dir, Filter: filter})
						if err != nil {
							t.Fatal(err)
						}
						sql := q.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM " + tt.table)
						var out []byte
						if err := pool.QueryRow(t.Context(), sql, q.NamedArgs(nil)).Scan(&out); err != nil {
							t.Fatal(err)
						}
						var plan []map[string]any
						if err := json.Unmarshal(out, &plan); err != nil {
							t.Fatal(err)
						}
						nodes := planNodes(plan[0]["Plan"].(map[string]any))
						if slices.Contains(nodes, "Seq Scan") || (slices.Contains(nodes, "Sort") && filter != selective) {
							t.Errorf("plan of %q: %s, want an index walk without a sort", sql, strings.Join(nodes, " > "))
						}
					})
				}
			}
		}
	}
}

// fieldNames returns the API names of a schema's fields.
func fieldNames[T any](s query.Schema[T]) []string {
	var names []string
	for _, f := range s.Fields {
		names = append(names, f.Name)
	}
	return names
}
