package store_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/store"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// planNodes lists the node types of an EXPLAIN (FORMAT JSON) plan, and the indexes its scans use.
func planNodes(node map[string]any) (types, indexes []string) {
	types = []string{node["Node Type"].(string)}
	if name, ok := node["Index Name"].(string); ok {
		indexes = append(indexes, name)
	}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		t, i := planNodes(c.(map[string]any))
		types, indexes = append(types, t...), append(indexes, i...)
	}
	return types, indexes
}

// TestLedger_plans checks that the analytics' ledger reads (GetPortfolio and GetPortfolioPnl
// with as_of, ListPortfolioValues) walk one portfolio's rows up to a time through an index on
// (portfolio_id, time, id), on 2,000 portfolios × 50 trades and 60 movements: the trades
// through trades_portfolio_time_idx, the cash movements (the list and the sum of the cash)
// through cash_movements_portfolio_time_idx, index-only and in order; no sequential scan.
func TestLedger_plans(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO portfolio.users (email) SELECT 'u' || i || '@example.com' FROM generate_series(1, 2000) AS i;
		INSERT INTO portfolio.portfolios (user_id, name) SELECT id, 'main' FROM portfolio.users;
		INSERT INTO portfolio.trades (portfolio_id, symbol, side, quantity, price, amount, request_id, request_hash, execute_time)
		SELECT p, 'S' || (j % 7), 'SIDE_BUY', 1, 100, 100, 't' || j, '\x00', '2025-01-01'::timestamptz + j * interval '1 day'
		FROM generate_series(1, 2000) AS p, generate_series(1, 50) AS j;
		INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, request_id, request_hash, create_time)
		SELECT p, 'CASH_MOVEMENT_KIND_DEPOSIT', 100, 'm' || j, '\x00', '2025-01-01'::timestamptz + j * interval '1 day'
		FROM generate_series(1, 2000) AS p, generate_series(1, 60) AS j;
`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	// As autovacuum leaves a table that only grows: analyzed, and all-visible for index-only scans.
	if _, err := pool.Exec(t.Context(), `VACUUM ANALYZE portfolio.users, portfolio.portfolios, portfolio.trades, portfolio.cash_movements`); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"TradesUpTo":    "trades_portfolio_time_idx",
		"MovementsUpTo": "cash_movements_portfolio_time_idx",
		"CashAt":        "cash_movements_portfolio_time_idx",
	}
	asOf := time.Date(2025, 2, 1, 0, 0, 0, 0, time.UTC)
	for name, sql := range store.LedgerSQL() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// Without bitmap scans: whether VACUUM could mark the new rows all-visible depends on
			// the snapshots other tests hold open in the shared cluster (exports hold theirs for
			// minutes), and where it could not, a bitmap scan and a sort cost less than an
			// index-only walk that must visit the heap. The walk itself is what this checks.
			var out []byte
			err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
				if _, err := tx.Exec(t.Context(), "SET LOCAL enable_bitmapscan = off"); err != nil {
					return err
				}
				return tx.QueryRow(t.Context(), "EXPLAIN (FORMAT JSON) "+sql, int64(42), asOf).Scan(&out)
			})
			if err != nil {
				t.Fatal(err)
			}
			var plan []map[string]any
			if err := json.Unmarshal(out, &plan); err != nil {
				t.Fatal(err)
			}
			nodes, indexes := planNodes(plan[0]["Plan"].(map[string]any))
			t.Logf("plan: %s by %v", strings.Join(nodes, " > "), indexes)
			if slices.Contains(nodes, "Seq Scan") || !slices.Equal(indexes, []string{want[name]}) {
				t.Errorf("plan of %s: %s by %v, want a scan of %s", name, strings.Join(nodes, " > "), indexes, want[name])
			}
			// The cash movements are covered by their index: an ordered index-only walk. The
			// trades' rows are fetched from the heap, and for one portfolio's few dozen the
			// planner may take them by a bitmap of the same index and sort them: a sort of
			// that portfolio's rows up to as_of, never of the table.
			if name != "TradesUpTo" && (!slices.Contains(nodes, "Index Only Scan") || slices.Contains(nodes, "Sort")) {
				t.Errorf("plan of %s: %s, want an index-only walk of %s without a sort", name, strings.Join(nodes, " > "), want[name])
			}
		})
	}
}
