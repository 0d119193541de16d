package api

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

// explainPlan runs an EXPLAIN (FORMAT JSON) statement and returns its plan's root node.
func explainPlan(t *testing.T, pool *pgxpool.Pool, explain string, args ...any) map[string]any {
	t.Helper()
	var out []byte
	if err := pool.QueryRow(t.Context(), explain, args...).Scan(&out); err != nil {
		t.Fatal(err)
	}
	var plan []map[string]any
	if err := json.Unmarshal(out, &plan); err != nil {
		t.Fatal(err)
	}
	return plan[0]["Plan"].(map[string]any)
}

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
						root := explainPlan(t, pool, sql, q.NamedArgs(nil))
						nodes := planNodes(root)
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

// TestListBars_plan checks that ListBars's statement, first page and after a token, finds a
// symbol's daily bars through the (symbol, ts) primary key index of the partitions, on a
// table of 200 symbols × 3 years of daily bars: no sequential scan.
func TestListBars_plan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.stocks (symbol, name) SELECT 'S' || i, 'Name ' || i FROM generate_series(1, 200) AS i;
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || i, d, 100, 101, 99, 100 + i % 7, 1000
		FROM generate_series(1, 200) AS i, generate_series('2022-01-01'::timestamptz, '2024-12-31', '1 day') AS d;
		ANALYZE stock.stocks, stock.prices`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	bars := newLists("k").bars
	first, err := bars.Build(query.Request{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	rows := []store.Bar{{Start: time.Date(2023, 1, 2, 0, 0, 0, 0, time.UTC)}, {Start: time.Date(2023, 1, 9, 0, 0, 0, 0, time.UTC)}, {}}
	_, token, err := bars.Page(first, rows)
	if err != nil {
		t.Fatal(err)
	}
	next, err := bars.Build(query.Request{PageSize: 2, PageToken: token})
	if err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]*query.Query{"first page": first, "after a token": next} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			from := store.BarsFrom(time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), q)
			if want := time.Date(2023, 1, 9, 0, 0, 0, 0, time.UTC); name == "after a token" && !from.Equal(want) {
				t.Errorf("BarsFrom after a token = %v, want the token's last bar start %v", from, want)
			}
			args := q.NamedArgs(pgx.NamedArgs{"symbol": "S42", "unit": "week", "from": from, "end": time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
			root := explainPlan(t, pool, "EXPLAIN (FORMAT JSON) "+store.BarsSQL(q), args)
			scans := scanNodes(root)
			t.Logf("plan: %s; scans: %s", strings.Join(planNodes(root), " > "), strings.Join(scans, ", "))
			if slices.Contains(planNodes(root), "Seq Scan") || len(scans) == 0 {
				t.Errorf("plan: %s, want index scans of stock.prices's partitions", strings.Join(planNodes(root), " > "))
			}
			for _, s := range scans {
				if !strings.HasPrefix(s, "prices_2023_pkey") {
					t.Errorf("scan by %s, want only the 2023 partition's (symbol, ts) primary key", s)
				}
			}
		})
	}
}

// scanNodes lists the indexes that the index scans of a plan use.
func scanNodes(node map[string]any) []string {
	var names []string
	if name, ok := node["Index Name"].(string); ok {
		names = append(names, name)
	}
	children, _ := node["Plans"].([]any)
	for _, c := range children {
		names = append(names, scanNodes(c.(map[string]any))...)
	}
	return names
}

// TestListRecommendationHistory_plan checks that the history's list statements walk an index
// in the requested order, without a sort or a sequential scan, on 100 symbols × 10 sources ×
// 150 days of predictions (and an analyst's): one symbol's history by time through (symbol, predict_time,
// source), one source's through (source, predict_time, symbol), all of it through the
// (predict_time, symbol, source) key; first page and after a token. The source filter names a
// rare source (5 symbols' analyst): for one of the 10 models, a tenth of the rows, walking the
// key and skipping the others is as good, and the planner takes that.
func TestListRecommendationHistory_plan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.recommendation_history (symbol, source, model_version, action, confidence, predict_time)
		SELECT 'S' || i, 'm' || j, 'v1', (ARRAY['ACTION_BUY','ACTION_HOLD','ACTION_SELL'])[1 + (i + j + d) % 3], 0.5,
		       '2025-01-01'::timestamptz + d * interval '1 day'
		FROM generate_series(1, 100) AS i, generate_series(1, 10) AS j, generate_series(0, 149) AS d;
		INSERT INTO stock.recommendation_history (symbol, source, action, confidence, predict_time)
		SELECT 'S' || i, 'analyst', 'ACTION_HOLD', 0.5, '2025-01-01'::timestamptz + d * interval '1 day'
		FROM generate_series(1, 5) AS i, generate_series(0, 149) AS d;
		ANALYZE stock.recommendation_history`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	history := newLists("k").history
	last := store.PastRecommendation{Symbol: "S42", Source: "m3", PredictTime: time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)}
	tests := []struct {
		filter, order, index string
	}{
		{`symbol = "S42"`, "", "recommendation_history_symbol_idx"},
		{`symbol = "S42"`, "predict_time", "recommendation_history_symbol_idx"},
		{`symbol = "S42" AND predict_time >= "2025-03-01T00:00:00Z"`, "", "recommendation_history_symbol_idx"},
		{`source = "analyst"`, "", "recommendation_history_source_idx"},
		{"", "", "recommendation_history_prediction_key"},
		{"", "symbol", "recommendation_history_symbol_idx"},
		{"", "source desc", "recommendation_history_source_idx"},
	}
	for _, tt := range tests {
		for _, paged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/paged=%v", tt.filter, tt.order, paged), func(t *testing.T) {
				t.Parallel()
				req := query.Request{Filter: tt.filter, OrderBy: tt.order, PageSize: 1}
				q, err := history.Build(req)
				if err != nil {
					t.Fatal(err)
				}
				if paged {
					_, token, err := history.Page(q, []store.PastRecommendation{last, last})
					if err != nil {
						t.Fatal(err)
					}
					req.PageToken = token
					if q, err = history.Build(req); err != nil {
						t.Fatal(err)
					}
				}
				sql := q.SQL("EXPLAIN (FORMAT JSON) SELECT * FROM stock.recommendation_history")
				root := explainPlan(t, pool, sql, q.NamedArgs(nil))
				nodes, scans := planNodes(root), scanNodes(root)
				if slices.Contains(nodes, "Seq Scan") || slices.Contains(nodes, "Sort") || slices.Contains(nodes, "Incremental Sort") ||
					!slices.Equal(scans, []string{tt.index}) {
					t.Errorf("plan of %q: %s by %v, want a walk of %s without a sort\n%v", sql, strings.Join(nodes, " > "), scans, tt.index, root)
				}
			})
		}
	}
}

// TestListIngestionRuns_plan: ListIngestionRuns' own statement (store.ListIngestionRunsSQL),
// newest first over all runs or one job's, first page and after a token, walks an index
// without a sort: the primary key backwards, or (job_id, run_id) for a job whose runs are
// few among many. For a job with a fiftieth of the runs either index is cheap (a page is
// found within ~50 pages' worth of the key's walk): any index without a sort will do.
func TestListIngestionRuns_plan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.ingestion_runs (job_id, trigger, state, scheduled_time, start_time)
		SELECT 'job-' || j, 'schedule', (ARRAY['succeeded','failed','succeeded','cancelled'])[1 + (j + d) % 4],
		       '2020-01-01'::timestamptz + d * interval '1 hour', '2020-01-01'::timestamptz + d * interval '1 hour'
		FROM generate_series(1, 2000) AS d, generate_series(1, 50) AS j;
		-- A daily job among the hourly ones: its runs are a few among many.
		INSERT INTO stock.ingestion_runs (job_id, trigger, state, scheduled_time, start_time)
		SELECT 'daily', 'schedule', 'succeeded', '2020-01-01'::timestamptz + d * interval '1 day', '2020-01-01'::timestamptz + d * interval '1 day'
		FROM generate_series(1, 80) AS d;
		ANALYZE stock.ingestion_runs`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	runs := newLists("k").runs
	tests := []struct {
		job, filter, index string
	}{
		{"", "", "ingestion_runs_pkey"},
		{"", "state = INGESTION_RUN_STATE_FAILED", "ingestion_runs_pkey"},
		{"job-7", "", ""},
		{"daily", "", "ingestion_runs_job_idx"},
		{"daily", `start_time >= "2020-02-01T00:00:00Z"`, "ingestion_runs_job_idx"},
	}
	for _, tt := range tests {
		for _, paged := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/%s/paged=%v", tt.job, tt.filter, paged), func(t *testing.T) {
				t.Parallel()
				req := query.Request{Filter: tt.filter, PageSize: 50, Extra: tt.job}
				q, err := runs.Build(req)
				if err != nil {
					t.Fatal(err)
				}
				if paged {
					page := make([]store.IngestionRun, 51) // a full page and one more: a token after run 60000
					page[49].RunID = 60000
					_, token, err := runs.Page(q, page)
					if err != nil {
						t.Fatal(err)
					}
					req.PageToken = token
					if q, err = runs.Build(req); err != nil {
						t.Fatal(err)
					}
				}
				args := pgx.NamedArgs{"job_id": tt.job}
				if tt.job == "" {
					args = nil
				}
				sql := "EXPLAIN (FORMAT JSON) " + store.ListIngestionRunsSQL(q, tt.job)
				root := explainPlan(t, pool, sql, q.NamedArgs(args))
				nodes, scans := planNodes(root), scanNodes(root)
				// The daily job's 80 runs are fetched through its index and sorted: cheaper than
				// the walk in order, as TestList_plans allows for one symbol's recommendations.
				sorted := slices.Contains(nodes, "Sort") && tt.job != "daily"
				if slices.Contains(nodes, "Seq Scan") || sorted || len(scans) != 1 || (tt.index != "" && scans[0] != tt.index) {
					t.Errorf("plan of %q: %s by %v, want a walk of %q without a sort", sql, strings.Join(nodes, " > "), scans, tt.index)
				}
			})
		}
	}
}

// TestGetLatestPrices_asOfPlan checks that GetLatestPrices with as_of finds each symbol's bar
// by a backward probe of the (symbol, ts) primary key under a LIMIT 1, in the partitions not
// later than as_of only (PostgreSQL merges them: a default partition rules out an ordered
// Append), and the stock and its final price by their keys, on 20,000 stocks, 200 of them
// with 3 years of daily bars: no sequential scan, no sort.
func TestGetLatestPrices_asOfPlan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.stocks (symbol, name) SELECT 'S' || i, 'Name ' || i FROM generate_series(1, 20000) AS i;
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || i, d, 100, 101, 99, 100 + i % 7, 1000
		FROM generate_series(1, 200) AS i, generate_series('2022-01-01'::timestamptz, '2024-12-31', '1 day') AS d;
		INSERT INTO stock.latest_prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || i, '2024-12-31', 100, 101, 99, 100, 1000 FROM generate_series(1, 20000) AS i;
		ANALYZE stock.stocks, stock.prices, stock.latest_prices`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	asOf := time.Date(2023, 6, 15, 0, 0, 0, 0, time.UTC)
	root := explainPlan(t, pool, "EXPLAIN (FORMAT JSON) "+store.PricesAsOfSQL(), []string{"S1", "S42", "S199"}, asOf)
	nodes, scans := planNodes(root), scanNodes(root)
	t.Logf("plan: %s; scans: %s", strings.Join(nodes, " > "), strings.Join(scans, ", "))
	if slices.Contains(nodes, "Seq Scan") || slices.Contains(nodes, "Sort") || !slices.Contains(nodes, "Limit") {
		t.Errorf("plan: %s, want index probes under a Limit, without a sequential scan or a sort", strings.Join(nodes, " > "))
	}
	var prices int
	for _, s := range scans {
		switch {
		case s == "stocks_pkey" || s == "latest_prices_pkey":
		case strings.HasPrefix(s, "prices_20") && s <= "prices_2023_pkey" || s == "prices_default_pkey":
			prices++
		default:
			t.Errorf("scan by %s, want the (symbol, ts) keys of the partitions up to 2023 (and the stocks' and final prices' keys)", s)
		}
	}
	if prices == 0 || !slices.Contains(scans, "stocks_pkey") || !slices.Contains(scans, "latest_prices_pkey") {
		t.Errorf("scans %v, want the partitions', stocks_pkey and latest_prices_pkey", scans)
	}
}

// planScans lists a plan's scans as "node type on relation [using index]", a bitmap heap
// scan with the index of its bitmap index scan.
func planScans(node map[string]any) []string {
	var scans []string
	children, _ := node["Plans"].([]any)
	if rel, ok := node["Relation Name"].(string); ok {
		s := node["Node Type"].(string) + " on " + rel
		idx, ok := node["Index Name"].(string)
		if !ok && node["Node Type"] == "Bitmap Heap Scan" && len(children) == 1 {
			idx, ok = children[0].(map[string]any)["Index Name"].(string)
		}
		if ok {
			s += " using " + idx
		}
		scans = append(scans, s)
		if node["Node Type"] == "Bitmap Heap Scan" {
			return scans
		}
	}
	for _, c := range children {
		scans = append(scans, planScans(c.(map[string]any))...)
	}
	return scans
}

// TestScoreboard_plan checks that GetRecommendationScoreboard's statement reads prices only
// through the (symbol, ts) primary keys of stock.prices's partitions, and a filtered history
// through its source or symbol index, on 100 symbols × 2 years of daily bars and 10
// models × 100 symbols × 60 days of predictions: against the market (which walks the stocks)
// and a benchmark.
func TestScoreboard_plan(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t, migrations.Set)
	const seed = `
		INSERT INTO stock.stocks (symbol, name) SELECT 'S' || i, 'Name ' || i FROM generate_series(1, 100) AS i;
		INSERT INTO stock.prices (symbol, ts, open, high, low, close, volume)
		SELECT 'S' || i, d, 100, 101, 99, 100 + (i * 7 + extract(doy FROM d)::int) % 13, 1000
		FROM generate_series(1, 100) AS i, generate_series('2024-01-01'::timestamptz, '2025-12-31', '1 day') AS d;
		INSERT INTO stock.recommendation_history (symbol, source, model_version, action, confidence, predict_time)
		SELECT 'S' || i, 'm' || j, 'v1', (ARRAY['ACTION_BUY','ACTION_HOLD','ACTION_SELL'])[1 + (i + j + d) % 3], 0.5,
		       '2025-01-01'::timestamptz + d * interval '1 day'
		FROM generate_series(1, 100) AS i, generate_series(1, 10) AS j, generate_series(0, 59) AS d;
		ANALYZE stock.stocks, stock.prices, stock.recommendation_history`
	if _, err := pool.Exec(t.Context(), seed); err != nil {
		t.Fatal(err)
	}
	l := newLists("k")
	tests := []struct {
		filter, benchmark, history string
	}{
		{`source = "m3"`, "", "recommendation_history_source_idx"},
		{`source = "m3" AND predict_time >= "2025-02-01T00:00:00Z"`, "S1", "recommendation_history_source_idx"},
		{`symbol = "S42"`, "", "recommendation_history_symbol"}, // symbol_idx or symbol_source_idx (0006): both lead with symbol
	}
	for _, tt := range tests {
		t.Run(tt.filter+"/"+tt.benchmark, func(t *testing.T) {
			t.Parallel()
			q, err := l.scoreboard.Build(query.Request{Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			root := explainPlan(t, pool, "EXPLAIN (FORMAT JSON) "+store.ScoreboardSQL(q), store.ScoreboardArgs(q, DefaultHorizons, tt.benchmark))
			scans := planScans(root)
			var history, prices []string
			for _, s := range scans {
				switch {
				case strings.Contains(s, " on recommendation_history"):
					history = append(history, s)
				case strings.Contains(s, " on prices_2024"), strings.Contains(s, " on prices_2025"):
					prices = append(prices, s)
					if !strings.HasPrefix(s, "Index Scan") || !strings.HasSuffix(s, "_pkey") {
						t.Errorf("prices read by %q, want index scans of the partitions' (symbol, ts) primary keys", s)
					}
				case strings.Contains(s, " on prices_"):
					// An empty partition: the planner may cost a sequential scan of it at 0 (and run-time
					// pruning skips it: no bar there).
				case strings.HasSuffix(s, " on stocks"), strings.HasSuffix(s, " on stocks using stocks_pkey"):
					// The market walks every stock (two primary key probes of prices each); the
					// benchmark's existence is one lookup (on 100 stocks, a sequential scan is as good).
				default:
					t.Errorf("unexpected scan %q", s)
				}
			}
			slices.Sort(prices)
			t.Logf("history: %v; the populated partitions' scans: %v", history, slices.Compact(prices))
			if len(history) != 1 || !strings.Contains(history[0], "using "+tt.history) {
				t.Errorf("history read by %v, want one scan using %s", history, tt.history)
			}
		})
	}
}
