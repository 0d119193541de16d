package query_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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

var recs = query.Schema{
	Fields: []query.Field{
		{Name: "symbol", Column: "r.symbol", Type: query.String, Sortable: true},
		{Name: "source", Column: "r.source", Type: query.String, Sortable: true},
		{Name: "action", Column: "r.action", Type: query.Enum, Enum: typepb.Field_Cardinality(0).Type(), Sortable: true},
		{Name: "confidence", Column: "r.confidence", Type: query.Float, Sortable: true},
		{Name: "votes", Column: "r.votes", Type: query.Int, Sortable: true},
		{Name: "create_time", Column: "r.create_time", Type: query.Timestamp, Sortable: true},
		{Name: "active", Column: "r.active", Type: query.Bool, Sortable: true},
	},
	Key: []string{"symbol", "source"},
}

// value returns a rec's value of a schema field, for query.Page.
func (r rec) value(field string) any {
	return map[string]any{
		"symbol": r.Symbol, "source": r.Source, "action": r.Action, "confidence": r.Confidence,
		"votes": r.Votes, "create_time": r.CreateTime, "active": r.Active,
	}[field]
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

// fetch runs a query over recs; $1 is a parameter of the caller's own, before q's.
func fetch(t *testing.T, pool *pgxpool.Pool, q *query.Query, limit bool) []rec {
	t.Helper()
	sql := "SELECT symbol, source, action, confidence, votes, create_time, active FROM recs r WHERE r.symbol <> $1"
	if q.Where != "" {
		sql += " AND " + q.Where
	}
	sql += " ORDER BY " + q.OrderBy
	if limit {
		sql += fmt.Sprintf(" LIMIT %d", q.Limit)
	}
	rows, _ := pool.Query(t.Context(), sql, append([]any{"none"}, q.Args...)...)
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
				whole := fetch(t, pool, build(t, &recs, req, 2), false)
				if len(whole) == 0 {
					t.Fatalf("filter %q matches no rows; the test data should hit it", filter)
				}
				var paged []rec
				for pages := 0; ; pages++ {
					if pages > len(whole) {
						t.Fatalf("more pages than rows (%d): paging does not advance", len(whole))
					}
					q := build(t, &recs, req, 2)
					page, next, err := query.Page(q, fetch(t, pool, q, true), rec.value)
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
