package query_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/typepb"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/query"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// rec is a row of the test table: recommendations with every field type, and sort columns
// full of duplicates.
type rec struct {
	Symbol     string    `db:"symbol"`
	Source     string    `db:"source"`
	Action     string    `db:"action"`
	Confidence float64   `db:"confidence"`
	Votes      int64     `db:"votes"`
	CreateTime time.Time `db:"create_time"`
	Active     bool      `db:"active"`
}

var recs = query.Schema[rec]{
	Fields: []query.Field[rec]{
		{Name: "symbol", Column: "r.symbol", Type: query.String, Sortable: true, Value: func(r rec) any { return r.Symbol }},
		{Name: "source", Column: "r.source", Type: query.String, Sortable: true, Value: func(r rec) any { return r.Source }},
		{Name: "action", Column: "r.action", Type: query.Enum, Enum: typepb.Field_Cardinality(0).Type(), Sortable: true, Value: func(r rec) any { return r.Action }},
		{Name: "confidence", Column: "r.confidence", Type: query.Float, Sortable: true, Value: func(r rec) any { return r.Confidence }},
		{Name: "votes", Column: "r.votes", Type: query.Int, Sortable: true, Value: func(r rec) any { return r.Votes }},
		{Name: "create_time", Column: "r.create_time", Type: query.Timestamp, Sortable: true, Value: func(r rec) any { return r.CreateTime }},
		{Name: "active", Column: "r.active", Type: query.Bool, Sortable: true, Value: func(r rec) any { return r.Active }},
	},
	Key: []string{"symbol", "source"},
}

// fillRecs creates table recs with 480 rows whose sort columns repeat a handful of values.
func fillRecs(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	const ddl = `
		CREATE TABLE recs (
			symbol      text             NOT NULL,
			source      text             NOT NULL,
			action      text             NOT NULL,
			confidence  double precision NOT NULL,
			votes       bigint           NOT NULL,
			create_time timestamptz      NOT NULL,
			active      boolean          NOT NULL,
			PRIMARY KEY (symbol, source)
		)`
	if _, err := pool.Exec(t.Context(), ddl); err != nil {
		t.Fatalf("create table: %v", err)
	}
	actions := []string{"CARDINALITY_UNKNOWN", "CARDINALITY_OPTIONAL", "CARDINALITY_REQUIRED", "CARDINALITY_REPEATED"}
	base := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC) // microseconds: all timestamptz keeps
	var rows [][]any
	for i := range 480 {
		rows = append(rows, []any{
			fmt.Sprintf("S%02d", i%40), fmt.Sprintf("src%02d", i/40),
			actions[i*7%4], float64(i%5) / 10, int64(i * 31 % 13),
			base.Add(time.Duration(i%6) * 24 * time.Hour), i%3 == 0,
		})
	}
	cols := []string{"symbol", "source", "action", "confidence", "votes", "create_time", "active"}
	if _, err := pool.CopyFrom(t.Context(), pgx.Identifier{"recs"}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy rows: %v", err)
	}
}

// fetch runs a query over recs, with a condition of the caller's own over a parameter of its
// own; without limit, it reads every row the page's conditions let through.
func fetch(t *testing.T, pool *pgxpool.Pool, q *query.Query, limit bool) []rec {
	t.Helper()
	sql := q.SQL("SELECT symbol, source, action, confidence, votes, create_time, active FROM recs r", "r.symbol <> @other")
	if !limit {
		sql = strings.TrimSuffix(sql, fmt.Sprintf(" LIMIT %d", q.Limit))
	}
	rows, _ := pool.Query(t.Context(), sql, q.NamedArgs(pgx.NamedArgs{"other": "none"}))
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[rec])
	if err != nil {
		t.Fatalf("query %q %v: %v", sql, q.Args, err)
	}
	return got
}

// TestSchema_Build_postgres pages through a real table under many orders and filters and
// checks that the pages, joined, are exactly the rows of one ORDER BY query.
func TestSchema_Build_postgres(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	fillRecs(t, pool)

	orders := []string{
		"", "symbol desc", "source, symbol desc", "confidence desc", "action, confidence desc",
		"create_time desc, votes", "votes desc, source desc, symbol", "active, create_time",
		"confidence, votes desc, create_time, action desc",
	}
	filters := []string{
		"",
		`confidence >= 0.3`,
		`action = CARDINALITY_REQUIRED OR votes < 4`,
		`NOT active = true AND symbol = "S1*"`,
		`create_time > "2024-05-08T07:08:09.123456Z" AND action != "CARDINALITY_UNKNOWN"`,
	}
	pageSizes := []int32{1, 7, 50, 0}
	for i, orderBy := range orders {
		for j, filter := range filters {
			pageSize := pageSizes[(i+j)%len(pageSizes)]
			t.Run(fmt.Sprintf("order_%d_filter_%d_size_%d", i, j, pageSize), func(t *testing.T) {
				t.Parallel()
				req := query.Request{Filter: filter, OrderBy: orderBy, PageSize: pageSize}
				whole := fetch(t, pool, build(t, &recs, req), false)
				if len(whole) == 0 {
					t.Fatalf("filter %q matches no rows; the test data should hit it", filter)
				}
				var paged []rec
				for pages := 0; ; pages++ {
					if pages > len(whole) {
						t.Fatalf("more pages than rows (%d): paging does not advance", len(whole))
					}
					q := build(t, &recs, req)
					page, next, err := recs.Page(q, fetch(t, pool, q, true))
					if err != nil {
						t.Fatalf("Page: %v", err)
					}
					paged = append(paged, page...)
					if next == "" {
						break
					}
					req.PageToken = next
				}
				if diff := cmp.Diff(whole, paged); diff != "" {
					t.Errorf("filter %q, order_by %q, page_size %d: pages differ from one query (-want +got):\n%s",
						filter, orderBy, pageSize, diff)
				}
			})
		}
	}
}

// question is a row of the questions test table, which pages through the questions schema.
type question struct {
	ID    int64    `db:"id"`
	Title string   `db:"title"`
	Level int64    `db:"level"`
	Tags  []string `db:"tags"`
	Body  string   `db:"body"`
}

// questionBodies are the bodies of the questions table, row i having questionBodies[i%6].
// Their words are picked to tell stemming, phrases and plain word matches apart.
var questionBodies = []string{
	"How does an outer join keep unmatched rows?",
	"Joining tables: the outer loop drives the join.",
	"When is an index scan faster than a sequential scan?",
	"Indexes on joined columns speed up inner joins.",
	"Vacuum reclaims space left by dead tuples.",
	"Replication lag grows under heavy write load.",
}

// questionTags are the tags of row i: each tag of questionTags where i%(its index+2) == 0, so
// some rows have none. "c*" checks that has on a list compares elements literally.
var questionTags = []string{"sql", "go", "postgres", "c*"}

// fillQuestions creates table questions, as ListQuestions' migration would, with n rows.
func fillQuestions(t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	const ddl = `
		CREATE TABLE questions (
			id     bigint   PRIMARY KEY,
			title  text     NOT NULL,
			level  bigint   NOT NULL,
			tags   text[]   NOT NULL DEFAULT '{}',
			body   text     NOT NULL,
			search tsvector NOT NULL GENERATED ALWAYS AS (to_tsvector('english', body)) STORED
		);
		CREATE INDEX questions_tags ON questions USING gin (tags);
		CREATE INDEX questions_search ON questions USING gin (search);`
	if _, err := pool.Exec(t.Context(), ddl); err != nil {
		t.Fatalf("create table: %v", err)
	}
	var rows [][]any
	for i := range n {
		tags := []string{}
		for j, tag := range questionTags {
			if i%(j+2) == 0 {
				tags = append(tags, tag)
			}
		}
		rows = append(rows, []any{int64(i), fmt.Sprintf("Q%02d", i%25), int64(i % 4), tags, questionBodies[i%6]})
	}
	cols := []string{"id", "title", "level", "tags", "body"}
	if _, err := pool.CopyFrom(t.Context(), pgx.Identifier{"questions"}, cols, pgx.CopyFromRows(rows)); err != nil {
		t.Fatalf("copy rows: %v", err)
	}
	if _, err := pool.Exec(t.Context(), "ANALYZE questions"); err != nil {
		t.Fatalf("analyze: %v", err)
	}
}

// fetchQuestions runs a query over questions.
func fetchQuestions(t *testing.T, pool *pgxpool.Pool, q *query.Query, limit bool) []question {
	t.Helper()
	sql := q.SQL("SELECT id, title, level, tags, body FROM questions q")
	if !limit {
		sql = strings.TrimSuffix(sql, fmt.Sprintf(" LIMIT %d", q.Limit))
	}
	rows, _ := pool.Query(t.Context(), sql, q.NamedArgs(nil))
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[question])
	if err != nil {
		t.Fatalf("query %q %v: %v", sql, q.Args, err)
	}
	return got
}

// TestSchema_Build_postgresHas filters a real table by list and full-text fields, checks the
// rows against what the filter means, and pages through them under several orders.
func TestSchema_Build_postgresHas(t *testing.T) {
	t.Parallel()
	const n = 240
	pool := pgtest.NewDB(t)
	fillQuestions(t, pool, n)

	tagged := func(i int, tag string) bool {
		j := slices.Index(questionTags, tag)
		return i%(j+2) == 0
	}
	body := func(i int, bodies ...int) bool { return slices.Contains(bodies, i%6) }
	tests := []struct {
		name   string
		filter string
		want   func(i int) bool // whether row i matches
	}{
		{"tag", `tags:"sql"`, func(i int) bool { return tagged(i, "sql") }},
		{"tag_bare_word", `tags:postgres`, func(i int) bool { return tagged(i, "postgres") }},
		{"tag_star_is_literal", `tags:"c*"`, func(i int) bool { return tagged(i, "c*") }},
		{"tag_absent", `tags:"rust"`, func(int) bool { return false }},
		{"not_tag", `-tags:"go"`, func(i int) bool { return !tagged(i, "go") }},
		{"two_tags", `tags:"sql" tags:"go"`, func(i int) bool { return tagged(i, "sql") && tagged(i, "go") }},
		{"words", `text:"outer join"`, func(i int) bool { return body(i, 0, 1) }},
		{"phrase", `text:'"outer join"'`, func(i int) bool { return body(i, 0) }},
		{"stemmed", `text:"indexes"`, func(i int) bool { return body(i, 2, 3) }},
		{"or_words", `text:"vacuum or replication"`, func(i int) bool { return body(i, 4, 5) }},
		{"minus_word", `text:"joins -inner"`, func(i int) bool { return body(i, 0, 1) }},
		{"not_text", `NOT text:"join"`, func(i int) bool { return body(i, 2, 4, 5) }},
		{"stop_words_only", `text:"the"`, func(int) bool { return false }},
		{
			"mixed", `(tags:"go" OR tags:"postgres") AND NOT text:"index" AND level >= 2`,
			func(i int) bool {
				return (tagged(i, "go") || tagged(i, "postgres")) && !body(i, 2, 3) && i%4 >= 2
			},
		},
	}
	orders := []string{"", "title desc", "level, title", "level desc"}
	pageSizes := []int32{1, 7, 50}
	for k, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var wantIDs []int64
			for i := range n {
				if tt.want(i) {
					wantIDs = append(wantIDs, int64(i))
				}
			}
			orderBy, pageSize := orders[k%len(orders)], pageSizes[k%len(pageSizes)]
			req := query.Request{Filter: tt.filter, OrderBy: orderBy, PageSize: pageSize}
			whole := fetchQuestions(t, pool, build(t, &questions, req), false)
			var gotIDs []int64
			for _, r := range whole {
				gotIDs = append(gotIDs, r.ID)
			}
			slices.Sort(gotIDs)
			if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
				t.Fatalf("filter %q: row ids mismatch (-want +got):\n%s", tt.filter, diff)
			}
			var paged []question
			for pages := 0; ; pages++ {
				if pages > len(whole) {
					t.Fatalf("more pages than rows (%d): paging does not advance", len(whole))
				}
				q := build(t, &questions, req)
				page, next, err := questions.Page(q, fetchQuestions(t, pool, q, true))
				if err != nil {
					t.Fatalf("Page: %v", err)
				}
				paged = append(paged, page...)
				if next == "" {
					break
				}
				req.PageToken = next
			}
			if diff := cmp.Diff(whole, paged, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("filter %q, order_by %q, page_size %d: pages differ from one query (-want +got):\n%s",
					tt.filter, orderBy, pageSize, diff)
			}
		})
	}
}

// TestSchema_Build_postgresHasIndexes checks that the SQL of has filters is what the GIN
// indexes of the package comment serve: "@p1 = ANY(tags)", say, would scan the whole table.
func TestSchema_Build_postgresHasIndexes(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	fillQuestions(t, pool, 240)
	tests := []struct {
		name      string
		filter    string
		wantIndex string
	}{
		{"tags", `tags:"sql"`, "questions_tags"},
		{"text", `text:"outer join"`, "questions_search"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := build(t, &questions, query.Request{Filter: tt.filter})
			tx, err := pool.Begin(t.Context())
			if err != nil {
				t.Fatalf("begin: %v", err)
			}
			defer tx.Rollback(t.Context()) //nolint:errcheck // read-only; nothing to keep
			// A small table is cheaper to scan whole; without that option, only an index
			// that serves the condition avoids the scan.
			if _, err := tx.Exec(t.Context(), "SET LOCAL enable_seqscan = off"); err != nil {
				t.Fatalf("set enable_seqscan: %v", err)
			}
			rows, _ := tx.Query(t.Context(), "EXPLAIN SELECT id FROM questions q WHERE "+q.Where, q.NamedArgs(nil))
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			if plan := strings.Join(lines, "\n"); !strings.Contains(plan, "Index Scan on "+tt.wantIndex) {
				t.Errorf("filter %q: plan does not use index %s:\n%s", tt.filter, tt.wantIndex, plan)
			}
		})
	}
}

// TestSchema_Build_postgresExecModes runs one page under every query exec mode of pgx, whose
// named arguments the page's parameters are, and checks that the statement text pgx prepares
// and caches depends on the request's shape, not on its values.
func TestSchema_Build_postgresExecModes(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	fillRecs(t, pool)
	req := query.Request{Filter: `confidence >= 0.3 AND action != CARDINALITY_UNKNOWN`, OrderBy: "create_time desc", PageSize: 7}
	first := build(t, &recs, req)
	_, req.PageToken, _ = recs.Page(first, fetch(t, pool, first, true))
	if req.PageToken == "" {
		t.Fatal("first page has no next page token; the test data should fill two pages")
	}
	q := build(t, &recs, req)
	want := fetch(t, pool, q, true)

	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			sql := q.SQL("SELECT symbol, source, action, confidence, votes, create_time, active FROM recs r", "r.symbol <> @other")
			rows, _ := pool.Query(t.Context(), sql, mode, q.NamedArgs(map[string]any{"other": "none"}))
			got, err := pgx.CollectRows(rows, pgx.RowToStructByName[rec])
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("one_statement_per_shape", func(t *testing.T) {
		t.Parallel()
		conn, err := pool.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		prepared := func() int {
			const q = `SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT symbol FROM recs r %'`
			var n int
			if err := conn.QueryRow(t.Context(), q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		run := func(filter string) {
			q := build(t, &recs, query.Request{Filter: filter})
			sql := q.SQL("SELECT symbol FROM recs r", "r.symbol <> @other")
			if _, err := conn.Exec(t.Context(), sql, pgx.QueryExecModeCacheStatement, q.NamedArgs(pgx.NamedArgs{"other": "x"})); err != nil {
				t.Fatal(err)
			}
		}
		before := prepared()
		run(`votes > 3 AND symbol = "S1*"`)
		run(`votes > 9 AND symbol = "S2*"`)
		if got := prepared() - before; got != 1 {
			t.Errorf("two requests of one shape prepared %d statements, want 1", got)
		}
		run(`votes > 9 OR symbol = "S2*"`)
		if got := prepared() - before; got != 2 {
			t.Errorf("a request of another shape: %d statements in all, want 2", got)
		}
	})
}
