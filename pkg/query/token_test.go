package query_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/typepb"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// build calls Build and fails the test on an error.
func build(t *testing.T, s builder, req query.Request) *query.Query {
	t.Helper()
	q, err := s.Build(req)
	if err != nil {
		t.Fatalf("Build(%+v) error = %v", req, err)
	}
	return q
}

// token calls NextPageToken and fails the test on an error.
func token(t *testing.T, q *query.Query, last ...any) string {
	t.Helper()
	tok, err := q.NextPageToken(last)
	if err != nil {
		t.Fatalf("NextPageToken(%v) error = %v", last, err)
	}
	return tok
}

func TestQuery_NextPageToken_roundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2024, 3, 4, 5, 6, 7, 891011000, time.FixedZone("CET", 3600))
	first := query.Request{Filter: `sector = "Tech"`, OrderBy: "market_cap desc, create_time", PageSize: 10}
	tok := token(t, build(t, &stocks, first), int64(5000), at, "AAPL")

	next := first
	next.PageToken = tok
	q := build(t, &stocks, next)
	wantWhere := "((s.sector = @p1) AND (s.market_cap <= @p2 AND ((s.market_cap < @p2) OR " +
		"(s.market_cap = @p2 AND s.create_time > @p3) OR " +
		"(s.market_cap = @p2 AND s.create_time = @p3 AND s.symbol > @p4))))"
	if q.Where != wantWhere {
		t.Errorf("Where = %q, want %q", q.Where, wantWhere)
	}
	if diff := cmp.Diff([]any{"Tech", int64(5000), at, "AAPL"}, q.Args); diff != "" {
		t.Errorf("Args mismatch (-want +got):\n%s", diff)
	}
}

func TestQuery_NextPageToken_restoresEveryType(t *testing.T) {
	t.Parallel()
	// The tokens here come from NextPageToken, given values of every Go type it takes; the
	// Values only satisfy the schema check.
	all := query.Schema[pair]{
		Fields: []query.Field[pair]{
			{Name: "s", Column: "s", Type: query.String, Sortable: true, Value: func(pair) any { return "" }},
			{Name: "i", Column: "i", Type: query.Int, Sortable: true, Value: func(p pair) any { return p.A }},
			{Name: "f", Column: "f", Type: query.Float, Sortable: true, Value: func(pair) any { return 0.0 }},
			{Name: "t", Column: "t", Type: query.Timestamp, Sortable: true, Value: func(pair) any { return time.Time{} }},
			{Name: "b", Column: "b", Type: query.Bool, Sortable: true, Value: func(pair) any { return false }},
			{Name: "e", Column: "e", Type: query.Enum, Enum: typepb.Field_Cardinality(0).Type(), Sortable: true, Value: func(pair) any { return typepb.Field_CARDINALITY_UNKNOWN }},
		},
		Key: []string{"s"},
	}
	at := time.Date(2024, 3, 4, 5, 6, 7, 8, time.UTC)
	tests := []struct {
		name string
		last []any
		want []any
	}{
		{
			"go_types",
			[]any{"x/y z", int64(-7), 0.1, at, true, "CARDINALITY_REPEATED"},
			[]any{"x/y z", int64(-7), 0.1, at, true, "CARDINALITY_REPEATED"},
		},
		{
			"convertible_types",
			[]any{"", int32(7), float32(0.5), timestamppb.New(at), false, typepb.Field_CARDINALITY_OPTIONAL},
			[]any{"", int64(7), 0.5, at, false, "CARDINALITY_OPTIONAL"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := query.Request{OrderBy: "i desc, f, t, b, e, s desc"}
			req.PageToken = token(t, build(t, &all, req), tt.last[1], tt.last[2], tt.last[3],
				tt.last[4], tt.last[5], tt.last[0])
			q := build(t, &all, req)
			want := append(slices.Clone(tt.want[1:]), tt.want[0])
			if diff := cmp.Diff(want, q.Args); diff != "" {
				t.Errorf("Args mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQuery_NextPageToken_errors(t *testing.T) {
	t.Parallel()
	q := build(t, &stocks, query.Request{OrderBy: "market_cap"})
	tests := []struct {
		name string
		last []any
	}{
		{"too_few", []any{int64(1)}},
		{"too_many", []any{int64(1), "A", "B"}},
		{"wrong_type", []any{"1", "A"}},
		{"nil", []any{nil, "A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tok, err := q.NextPageToken(tt.last); err == nil {
				t.Errorf("NextPageToken(%v) = %q, want an error", tt.last, tok)
			}
		})
	}
}

func TestSchema_Build_afterConditions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		schema    builder
		orderBy   string
		last      []any
		wantWhere string
	}{
		{"key_only", &stocks, "", []any{"AAPL"}, "(s.symbol > @p1)"},
		{"key_desc", &stocks, "symbol desc", []any{"AAPL"}, "(s.symbol < @p1)"},
		{
			"same_direction_is_row_comparison", &stocks, "market_cap", []any{int64(3), "AAPL"},
			"((s.market_cap, s.symbol) > (@p1, @p2))",
		},
		{
			"same_direction_desc", &recommendations, "symbol desc, source desc", []any{"A", "B"},
			"((r.symbol, r.source) < (@p1, @p2))",
		},
		{
			"key_follows_last_direction", &recommendations, "confidence desc", []any{0.5, "A", "B"},
			"((r.confidence, r.symbol, r.source) < (@p1, @p2, @p3))",
		},
		{
			"mixed_directions", &recommendations, "confidence desc, symbol", []any{0.5, "A", "B"},
			"(r.confidence <= @p1 AND ((r.confidence < @p1) OR (r.confidence = @p1 AND r.symbol > @p2) OR " +
				"(r.confidence = @p1 AND r.symbol = @p2 AND r.source > @p3)))",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := query.Request{OrderBy: tt.orderBy}
			req.PageToken = token(t, build(t, tt.schema, req), tt.last...)
			q := build(t, tt.schema, req)
			if q.Where != tt.wantWhere {
				t.Errorf("Where = %q, want %q", q.Where, tt.wantWhere)
			}
			if diff := cmp.Diff(tt.last, q.Args); diff != "" {
				t.Errorf("Args mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// flip returns tok with one byte of its decoded form changed; i < 0 counts from the end.
func flip(t *testing.T, tok string, i int) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatalf("decode token: %v", err)
	}
	if i < 0 {
		i += len(raw)
	}
	raw[i] ^= 0x01
	return base64.RawURLEncoding.EncodeToString(raw)
}

func TestSchema_Build_pageTokenErrors(t *testing.T) {
	t.Parallel()
	const (
		malformed = "page_token: malformed: pass next_page_token of a previous response unchanged"
		altered   = "page_token: malformed: altered, or not issued by this service"
		mismatch  = "page_token: does not match the filter and order_by of the request"
	)
	req := query.Request{Filter: `market_cap > 5`, OrderBy: "name desc", Extra: ""}
	tok := token(t, build(t, &stocks, req), "Apple", "AAPL")
	// Signed with the schema's key, as one forged with a known key would be: its values still
	// reach the query, and PostgreSQL refuses a NUL in text (22021).
	nul := token(t, build(t, &stocks, req), "Apple\x00", "AAPL")
	otherKey := stocks
	otherKey.TokenKey = "another key"
	prices := priceSchema()
	priceReq := query.Request{Extra: "AAPL 2024-01-01/2024-02-01"}
	priceTok := token(t, build(t, prices, priceReq), time.Now())

	tests := []struct {
		name    string
		schema  builder
		req     query.Request
		wantMsg string
	}{
		{"garbage", &stocks, query.Request{PageToken: "not a token!"}, malformed},
		{"too_short", &stocks, query.Request{PageToken: "YWJj"}, malformed},
		{"too_long", &stocks, query.Request{PageToken: strings.Repeat("A", 5000)}, malformed},
		{"nul_in_value", &stocks, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: nul}, malformed},
		{"truncated", &stocks, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: tok[:len(tok)-4]}, altered},
		{"flipped_first_byte", &stocks, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: flip(t, tok, 0)}, altered},
		{"flipped_value_byte", &stocks, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: flip(t, tok, 40)}, altered},
		{"flipped_tag_byte", &stocks, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: flip(t, tok, -1)}, altered},
		{"other_key", &otherKey, query.Request{Filter: req.Filter, OrderBy: req.OrderBy, PageToken: tok}, altered},
		{"other_filter", &stocks, query.Request{Filter: `market_cap > 6`, OrderBy: req.OrderBy, PageToken: tok}, mismatch},
		{"no_filter", &stocks, query.Request{OrderBy: req.OrderBy, PageToken: tok}, mismatch},
		{"other_order", &stocks, query.Request{Filter: req.Filter, OrderBy: "name", PageToken: tok}, mismatch},
		{"other_schema", &recommendations, query.Request{PageToken: tok}, mismatch},
		{
			"other_extra", prices, query.Request{Extra: "MSFT 2024-01-01/2024-02-01", PageToken: priceTok},
			"page_token: does not match the filter, order_by and other parameters of the request",
		},
		{"missing_extra", prices, query.Request{PageToken: priceTok}, mismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.schema.Build(tt.req)
			if diff := cmp.Diff([]string{tt.wantMsg}, violations(t, err)); diff != "" {
				t.Errorf("Build(%+v) violations mismatch (-want +got):\n%s", tt.req, diff)
			}
		})
	}
}

func TestSchema_Build_pageTokenSurvivesRewording(t *testing.T) {
	t.Parallel()
	first := query.Request{Filter: `sector = "Tech" AND market_cap > 5`}
	tok := token(t, build(t, &stocks, first), "AAPL")
	tests := []struct {
		name string
		req  query.Request
	}{
		{"same", query.Request{Filter: first.Filter}},
		{"implicit_and", query.Request{Filter: `sector="Tech"   market_cap>5`}},
		{"quotes_and_parens", query.Request{Filter: `(sector = 'Tech') AND (market_cap > 5)`}},
		{"explicit_default_order", query.Request{Filter: first.Filter, OrderBy: "symbol"}},
		{"explicit_asc", query.Request{Filter: first.Filter, OrderBy: " symbol asc "}},
		{"other_page_size", query.Request{Filter: first.Filter, PageSize: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.req.PageToken = tok
			if _, err := stocks.Build(tt.req); err != nil {
				t.Errorf("Build(%+v) error = %v, want nil", tt.req, err)
			}
		})
	}
}

func TestSchema_Build_pageTokenOfWildcardIsNotEquality(t *testing.T) {
	t.Parallel()
	tok := token(t, build(t, &stocks, query.Request{Filter: `name = "A*"`}), "AAPL")
	_, err := stocks.Build(query.Request{Filter: `name = "A%"`, PageToken: tok})
	want := []string{"page_token: does not match the filter and order_by of the request"}
	if diff := cmp.Diff(want, violations(t, err)); diff != "" {
		t.Errorf("violations mismatch (-want +got):\n%s", diff)
	}
}

func TestSchema_Build_pageTokenOfHasFilter(t *testing.T) {
	t.Parallel()
	first := query.Request{Filter: `tags:"sql" AND text:"outer join"`}
	tok := token(t, build(t, &questions, first), int64(7))
	const mismatch = "page_token: does not match the filter and order_by of the request"
	tests := []struct {
		name    string
		filter  string
		wantMsg string // "" when the token is accepted
	}{
		{"same", first.Filter, ""},
		{"reworded", `tags : sql   text:'outer join'`, ""},
		{"other_tag", `tags:"go" AND text:"outer join"`, mismatch},
		{"other_words", `tags:"sql" AND text:"outer joins"`, mismatch},
		{"values_swapped", `tags:"outer join" AND text:"sql"`, mismatch},
		{"negated_tag", `-tags:"sql" AND text:"outer join"`, mismatch},
		{"negated_text", `tags:"sql" AND NOT text:"outer join"`, mismatch},
		{"or", `tags:"sql" OR text:"outer join"`, mismatch},
		{"tag_only", `tags:"sql"`, mismatch},
		{"no_filter", "", mismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := questions.Build(query.Request{Filter: tt.filter, PageToken: tok})
			if tt.wantMsg == "" {
				if err != nil {
					t.Errorf("Build(%q) error = %v, want nil", tt.filter, err)
				}
				return
			}
			if diff := cmp.Diff([]string{tt.wantMsg}, violations(t, err)); diff != "" {
				t.Errorf("Build(%q) violations mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

// priceSchema is ListPrices' schema, over rows that are just a time.
func priceSchema() *query.Schema[time.Time] {
	return &query.Schema[time.Time]{
		Fields: []query.Field[time.Time]{{Name: "time", Column: "p.ts", Type: query.Timestamp, Value: func(t time.Time) any { return t }}},
		Key:    []string{"time"},
	}
}

// TestSchema_Build_listPrices shows a list without filter or order_by (ListPrices: one
// symbol's prices in a time range, keyed by time): the range is the caller's own SQL, bound
// into the page token through Extra.
func TestSchema_Build_listPrices(t *testing.T) {
	t.Parallel()
	prices := priceSchema()
	from, to := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	req := query.Request{PageSize: 2, Extra: "AAPL " + from.Format(time.RFC3339) + "/" + to.Format(time.RFC3339)}
	q := build(t, prices, req)
	if q.Where != "" || q.OrderBy != "p.ts ASC" || q.Limit != 3 {
		t.Errorf("first page = Where %q, OrderBy %q, Limit %d, want \"\", \"p.ts ASC\", 3", q.Where, q.OrderBy, q.Limit)
	}
	rows := []time.Time{from, from.Add(time.Hour), from.Add(2 * time.Hour)}
	page, next, err := prices.Page(q, rows)
	if err != nil || len(page) != 2 || next == "" {
		t.Fatalf("Page = %d rows, token %q, %v; want 2 rows and a token", len(page), next, err)
	}
	req.PageToken = next
	q = build(t, prices, req)
	if want := "(p.ts > @p1)"; q.Where != want {
		t.Errorf("second page Where = %q, want %q", q.Where, want)
	}
	if diff := cmp.Diff([]any{rows[1]}, q.Args); diff != "" {
		t.Errorf("second page Args mismatch (-want +got):\n%s", diff)
	}
}

func TestPage(t *testing.T) {
	t.Parallel()
	rows := []stock{{Symbol: "A", MarketCap: 3}, {Symbol: "B", MarketCap: 2}, {Symbol: "C", MarketCap: 1}}
	tests := []struct {
		name      string
		pageSize  int32
		fetched   int
		wantRows  int
		wantToken bool
	}{
		{"fewer_than_page", 5, 3, 3, false},
		{"exactly_page", 3, 3, 3, false},
		{"one_more_than_page", 2, 3, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := query.Request{OrderBy: "market_cap desc", PageSize: tt.pageSize}
			q := build(t, &stocks, req)
			page, next, err := stocks.Page(q, rows[:tt.fetched])
			if err != nil {
				t.Fatalf("Page error = %v", err)
			}
			if len(page) != tt.wantRows || (next != "") != tt.wantToken {
				t.Fatalf("Page = %d rows, token %q; want %d rows, token %v", len(page), next, tt.wantRows, tt.wantToken)
			}
			if next == "" {
				return
			}
			req.PageToken = next
			q = build(t, &stocks, req)
			last := page[len(page)-1]
			if diff := cmp.Diff([]any{last.MarketCap, last.Symbol}, q.Args); diff != "" {
				t.Errorf("next page Args mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSchema_Build_pageTokenOfEarlierRelease: a token made before field values had
// accessors and parameters had names (by NextPageToken at commit 6b47373, default key) still
// continues its listing, so clients paging across an upgrade keep their place.
func TestSchema_Build_pageTokenOfEarlierRelease(t *testing.T) {
	t.Parallel()
	const tok = "eyJ2IjoxLCJmIjoicXlSOGRQQ3MwWDg9IiwiayI6WyI1MDAwIiwiQUFQTCJdfRV4axBZKuapwmqcZ6eK60Y"
	req := query.Request{Filter: `sector = "Tech" AND market_cap > 5`, OrderBy: "market_cap desc", Extra: "x", PageToken: tok}
	q := build(t, &stocks, req)
	if diff := cmp.Diff([]any{"Tech", int64(5), int64(5000), "AAPL"}, q.Args); diff != "" {
		t.Errorf("Args mismatch (-want +got):\n%s", diff)
	}
	if tok2 := token(t, q, int64(5000), "AAPL"); tok2 != tok {
		t.Errorf("NextPageToken of the same row = %q, want the earlier release's %q", tok2, tok)
	}
}
