package query_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/typepb"

	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// pair is the row of schemas that need no particular row.
type pair struct{ A, B int64 }

// builder is what the tables of these tests hold: schemas over different row types.
type builder interface {
	Build(req query.Request) (*query.Query, error)
}

// stock is a row of ListStocks.
type stock struct {
	Symbol, Name, Sector, Industry, Exchange, Currency string
	MarketCap                                          int64
	CreateTime, UpdateTime                             time.Time
}

// stocks is ListStocks' schema.
var stocks = query.Schema[stock]{
	Fields: []query.Field[stock]{
		{Name: "symbol", Column: "s.symbol", Type: query.String, Sortable: true, Value: func(r stock) any { return r.Symbol }},
		{Name: "name", Column: "s.name", Type: query.String, Sortable: true, Value: func(r stock) any { return r.Name }},
		{Name: "sector", Column: "s.sector", Type: query.String, Sortable: true, Value: func(r stock) any { return r.Sector }},
		{Name: "industry", Column: "s.industry", Type: query.String},
		{Name: "exchange", Column: "s.exchange", Type: query.String},
		{Name: "currency", Column: "s.currency", Type: query.String},
		{Name: "market_cap", Column: "s.market_cap", Type: query.Int, Sortable: true, Value: func(r stock) any { return r.MarketCap }},
		{Name: "create_time", Column: "s.create_time", Type: query.Timestamp, Sortable: true, Value: func(r stock) any { return r.CreateTime }},
		{Name: "update_time", Column: "s.update_time", Type: query.Timestamp, Sortable: true, Value: func(r stock) any { return r.UpdateTime }},
	},
	Key: []string{"symbol"},
}

// recommendation is a row of ListRecommendations.
type recommendation struct {
	Symbol, Source string
	Action         typepb.Field_Cardinality
	Confidence     float64
	CreateTime     time.Time
}

// recommendations is ListRecommendations' schema. A well-known enum stands in for
// pgfleet.stock.v1.Action, since pkg imports no service protos.
var recommendations = query.Schema[recommendation]{
	Fields: []query.Field[recommendation]{
		{Name: "symbol", Column: "r.symbol", Type: query.String, Sortable: true, Value: func(r recommendation) any { return r.Symbol }},
		{Name: "source", Column: "r.source", Type: query.String, Sortable: true, Value: func(r recommendation) any { return r.Source }},
		{Name: "action", Column: "r.action", Type: query.Enum, Enum: typepb.Field_Cardinality(0).Type(), Sortable: true, Value: func(r recommendation) any { return r.Action }},
		{Name: "confidence", Column: "r.confidence", Type: query.Float, Sortable: true, Value: func(r recommendation) any { return r.Confidence }},
		{Name: "active", Column: "r.active", Type: query.Bool},
		{Name: "create_time", Column: "r.create_time", Type: query.Timestamp, Sortable: true, Value: func(r recommendation) any { return r.CreateTime }},
	},
	Key:          []string{"symbol", "source"},
	DefaultOrder: "create_time desc",
}

// questions is ListQuestions' schema: tags in a text[] column, and full-text search through a
// generated tsvector column over the body. Its rows are the question type of pg_test.go.
var questions = query.Schema[question]{
	Fields: []query.Field[question]{
		{Name: "id", Column: "q.id", Type: query.Int, Sortable: true, Value: func(r question) any { return r.ID }},
		{Name: "title", Column: "q.title", Type: query.String, Sortable: true, Value: func(r question) any { return r.Title }},
		{Name: "level", Column: "q.level", Type: query.Int, Sortable: true, Value: func(r question) any { return r.Level }},
		{Name: "tags", Column: "q.tags", Type: query.StringList},
		{Name: "text", Column: "q.search", Type: query.Text},
	},
	Key: []string{"id"},
}

// violations lists the field violations of a *validate.Error as "field: description".
func violations(t *testing.T, err error) []string {
	t.Helper()
	var bad *validate.Error
	if !errors.As(err, &bad) {
		t.Fatalf("error = %v (%T), want a *validate.Error", err, err)
	}
	var got []string
	for _, v := range bad.Violations {
		got = append(got, v.GetField()+": "+v.GetDescription())
	}
	return got
}

func TestSchema_Build_filter(t *testing.T) {
	t.Parallel()
	day := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		schema    builder
		filter    string
		wantWhere string
		wantArgs  []any
	}{
		{"empty", &stocks, "", "", nil},
		{"blank", &stocks, "  \n ", "", nil},
		{"string_equals", &stocks, `sector = "Technology"`, "(s.sector = @p1)", []any{"Technology"}},
		{"single_quotes", &stocks, `sector = 'Technology'`, "(s.sector = @p1)", []any{"Technology"}},
		{"not_equals", &stocks, `sector != "Energy"`, "(s.sector <> @p1)", []any{"Energy"}},
		{
			"design_example", &stocks, `sector = "Technology" AND market_cap >= 1000000000`,
			"(s.sector = @p1 AND s.market_cap >= @p2)", []any{"Technology", int64(1000000000)},
		},
		{
			"and_chain_is_flat", &stocks, `market_cap > 1 AND market_cap < 9 AND name <= "M"`,
			"(s.market_cap > @p1 AND s.market_cap < @p2 AND s.name <= @p3)", []any{int64(1), int64(9), "M"},
		},
		{
			"implicit_and", &stocks, `sector = "Energy" market_cap > 5`,
			"(s.sector = @p1 AND s.market_cap > @p2)", []any{"Energy", int64(5)},
		},
		{
			// AIP-160: OR binds tighter than AND.
			"or_binds_tighter", &stocks, `market_cap > 1 OR sector = "A" AND currency = "USD"`,
			"((s.market_cap > @p1 OR s.sector = @p2) AND s.currency = @p3)", []any{int64(1), "A", "USD"},
		},
		{
			"parentheses", &stocks, `market_cap > 1 OR (sector = "A" AND currency = "USD")`,
			"(s.market_cap > @p1 OR (s.sector = @p2 AND s.currency = @p3))", []any{int64(1), "A", "USD"},
		},
		{"not", &stocks, `NOT sector = "A"`, "(NOT (s.sector = @p1))", []any{"A"}},
		{
			"minus_group", &stocks, `-(sector = "A" OR sector = "B")`,
			"(NOT (s.sector = @p1 OR s.sector = @p2))", []any{"A", "B"},
		},
		{
			"not_inside_and", &stocks, `exchange = "NYSE" AND NOT sector = "A"`,
			"(s.exchange = @p1 AND NOT (s.sector = @p2))", []any{"NYSE", "A"},
		},
		{"negative_int", &stocks, `market_cap > -5`, "(s.market_cap > @p1)", []any{int64(-5)}},
		{"hex_int", &stocks, `market_cap = 0x10`, "(s.market_cap = @p1)", []any{int64(16)}},
		{"wildcard_suffix", &stocks, `name = "App*"`, "(s.name LIKE @p1)", []any{"App%"}},
		{"wildcard_prefix", &stocks, `name = "*Inc"`, "(s.name LIKE @p1)", []any{"%Inc"}},
		{"wildcard_both", &stocks, `name = "*ppl*"`, "(s.name LIKE @p1)", []any{"%ppl%"}},
		{"wildcard_only", &stocks, `name = "*"`, "(s.name LIKE @p1)", []any{"%"}},
		{"wildcard_not", &stocks, `name != "A*"`, "(s.name NOT LIKE @p1)", []any{"A%"}},
		{"wildcard_escapes", &stocks, `name = "50%_a\\b*"`, "(s.name LIKE @p1)", []any{`50\%\_a\\b%`}},
		{"star_inside_is_literal", &stocks, `name = "a*b"`, "(s.name = @p1)", []any{"a*b"}},
		{"star_with_less_is_literal", &stocks, `name < "a*"`, "(s.name < @p1)", []any{"a*"}},
		{"timestamp_string", &stocks, `create_time >= "2024-01-02T00:00:00Z"`, "(s.create_time >= @p1)", []any{day}},
		{
			"timestamp_offset", &stocks, `update_time < "2024-01-02T02:00:00+02:00"`,
			"(s.update_time < @p1)", []any{day},
		},
		{
			"timestamp_function", &stocks, `create_time > timestamp("2024-01-02T00:00:00.5Z")`,
			"(s.create_time > @p1)", []any{day.Add(500 * time.Millisecond)},
		},
		{"enum_name", &recommendations, `action = CARDINALITY_REQUIRED`, "(r.action = @p1)", []any{"CARDINALITY_REQUIRED"}},
		{"enum_string", &recommendations, `action != "CARDINALITY_OPTIONAL"`, "(r.action <> @p1)", []any{"CARDINALITY_OPTIONAL"}},
		{"float", &recommendations, `confidence >= 0.75`, "(r.confidence >= @p1)", []any{0.75}},
		{"float_from_int", &recommendations, `confidence < 1`, "(r.confidence < @p1)", []any{1.0}},
		{"bool", &recommendations, `active = false`, "(r.active = @p1)", []any{false}},
		{
			"everything", &recommendations,
			`(symbol = "AAPL" OR symbol = "MSFT") AND -action = CARDINALITY_UNKNOWN AND confidence > .5`,
			"((r.symbol = @p1 OR r.symbol = @p2) AND NOT (r.action = @p3) AND r.confidence > @p4)",
			[]any{"AAPL", "MSFT", "CARDINALITY_UNKNOWN", 0.5},
		},
		{"has_list", &questions, `tags:"sql"`, "(q.tags @> ARRAY[@p1])", []any{"sql"}},
		{"has_list_bare_word", &questions, `tags : sql`, "(q.tags @> ARRAY[@p1])", []any{"sql"}},
		{"has_list_star_is_literal", &questions, `tags:"c*"`, "(q.tags @> ARRAY[@p1])", []any{"c*"}},
		{"has_list_minus", &questions, `-tags:"sql"`, "(NOT (q.tags @> ARRAY[@p1]))", []any{"sql"}},
		{
			"has_list_not_and", &questions, `NOT tags:"sql" AND tags:"go"`,
			"(NOT (q.tags @> ARRAY[@p1]) AND q.tags @> ARRAY[@p2])", []any{"sql", "go"},
		},
		{
			"has_text", &questions, `text:"outer join"`,
			"(q.search @@ websearch_to_tsquery('english', @p1))", []any{"outer join"},
		},
		{
			"has_text_websearch_syntax", &questions, `text:'"outer join" or lateral -cross'`,
			"(q.search @@ websearch_to_tsquery('english', @p1))", []any{`"outer join" or lateral -cross`},
		},
		{
			"has_text_minus", &questions, `-text:"join"`,
			"(NOT (q.search @@ websearch_to_tsquery('english', @p1)))", []any{"join"},
		},
		{
			"has_mixed", &questions, `tags:"sql" (text:"join" OR title = "How*") AND level <= 3`,
			"(q.tags @> ARRAY[@p1] AND (q.search @@ websearch_to_tsquery('english', @p2) OR q.title LIKE @p3) AND q.level <= @p4)",
			[]any{"sql", "join", "How%", int64(3)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := tt.schema.Build(query.Request{Filter: tt.filter})
			if err != nil {
				t.Fatalf("Build(%q) error = %v", tt.filter, err)
			}
			if q.Where != tt.wantWhere {
				t.Errorf("Build(%q).Where = %q, want %q", tt.filter, q.Where, tt.wantWhere)
			}
			if diff := cmp.Diff(tt.wantArgs, q.Args); diff != "" {
				t.Errorf("Build(%q).Args mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

func TestSchema_Build_filterErrors(t *testing.T) {
	t.Parallel()
	deep := strings.Repeat(`(name = "a" OR (name = "b" AND `, 17) + `name = "c"` + strings.Repeat("))", 17)
	tests := []struct {
		name    string
		schema  builder
		filter  string
		wantMsg string
	}{
		{"unknown_field", &stocks, `colour = "red"`, `unknown field "colour"`},
		{"unknown_dotted_field", &stocks, `sector.name = "x"`, `unknown field "sector.name"`},
		{"unknown_in_or", &stocks, `sector = "A" OR colour = "red"`, `unknown field "colour"`},
		{"int_gets_string", &stocks, `market_cap = "big"`, `field "market_cap" wants an integer, got string "big"`},
		{"int_gets_float", &stocks, `market_cap > 1.5`, `field "market_cap" wants an integer, got number 1.5`},
		{"string_gets_int", &stocks, `symbol = 42`, `field "symbol" wants a quoted string, got integer 42`},
		{"string_gets_bare_text", &stocks, `symbol = AAPL`, `field "symbol" wants a quoted string, got AAPL`},
		{
			"timestamp_not_rfc3339", &stocks, `create_time > "2024-01-02"`,
			`field "create_time" wants an RFC 3339 timestamp such as "2024-01-02T15:04:05Z", got "2024-01-02"`,
		},
		{
			"timestamp_gets_int", &stocks, `create_time > 5`,
			`field "create_time" wants an RFC 3339 timestamp string such as "2024-01-02T15:04:05Z", got integer 5`,
		},
		{"bool_gets_string", &recommendations, `active = "yes"`, `field "active" wants true or false, got string "yes"`},
		{"bool_ordering", &recommendations, `active < true`, `field "active" is a bool and supports only = and !=`},
		{
			"enum_unknown_value", &recommendations, `action = ACTION_BUY`,
			`field "action" has no value "ACTION_BUY" (enum google.protobuf.Field.Cardinality)`,
		},
		{
			"enum_gets_int", &recommendations, `action = 2`,
			`field "action" wants a value name of enum google.protobuf.Field.Cardinality, got integer 2`,
		},
		{"enum_ordering", &recommendations, `action > CARDINALITY_UNKNOWN`, `field "action" is an enum and supports only = and !=`},
		{
			"field_vs_field", &stocks, `name = sector`,
			`comparing field "name" with field "sector" is not supported, compare with a literal`,
		},
		{"literal_on_left", &stocks, `5 < market_cap`, `left of < must be a field, got integer 5`},
		{"bare_value", &stocks, `Technology`, `bare value Technology is not supported, compare a field with it (field = value)`},
		{"bare_string", &stocks, `"Technology"`, `bare value string "Technology" is not supported, compare a field with it (field = value)`},
		{"bare_field", &recommendations, `active`, `bare value active is not supported, compare a field with it (field = value)`},
		{"bare_value_in_and", &stocks, `sector = "A" Apple`, `bare value Apple is not supported, compare a field with it (field = value)`},
		{"unsupported_function", &stocks, `lower(name) = "a"`, `unsupported function "lower"`},
		{"unsupported_function_alone", &stocks, `startsWith(name, "a")`, `unsupported function "startsWith"`},
		{"value_function", &stocks, `name = lower("A")`, `field "name" wants a quoted string, got a call of "lower"`},
		{"comparison_as_value", &stocks, `name = (symbol = "A")`, `field "name" wants a quoted string, got a comparison`},
		{"has", &stocks, `name:"App"`, `operator ":" (has) is not supported, use =`},
		{"unterminated_string", &stocks, `name = "App`, `invalid syntax at column 8: unterminated string`},
		{"missing_value", &stocks, `name = `, `invalid syntax at column 7: unexpected end of filter`},
		{"missing_paren", &stocks, `(name = "a"`, `invalid syntax at column 12: expected )`},
		{"extra_paren", &stocks, `name = "a")`, `invalid syntax at column 11: unexpected trailing token )`},
		{"dangling_and", &stocks, `name = "a" AND`, `invalid syntax at column 11: unexpected trailing token WS`},
		{"second_line", &stocks, "name = \"a\" AND\n(", `invalid syntax at line 2, column 2: unexpected end of filter`},
		{"bad_escape", &stocks, `name = "\q"`, `invalid syntax at column 8: unable to unescape string`},
		{"invalid_utf8", &stocks, "name = \"\xff\"", `invalid syntax at column 8: invalid UTF-8`},
		// Text columns hold no NUL: compared with one, PostgreSQL fails the query (22021).
		{"nul_in_string", &stocks, "name = \"a\x00b\"", `field "name": the string holds U+0000 at byte 1, which no stored text does`},
		{"nul_in_wildcard", &stocks, "name = \"\x00*\"", `field "name": the string holds U+0000 at byte 0, which no stored text does`},
		{"nul_in_list", &questions, "tags:\"\x00\"", `field "tags": the string holds U+0000 at byte 0, which no stored text does`},
		{"nul_in_text", &questions, "text:\"outer\x00join\"", `field "text": the string holds U+0000 at byte 5, which no stored text does`},
		{"int_overflow", &stocks, `market_cap > 99999999999999999999`, `invalid syntax at column 14: unexpected token NUM`},
		{"too_long", &stocks, `name = "` + strings.Repeat("a", 2000) + `"`, `longer than 2000 characters`},
		{"too_deep", &stocks, deep, `nested deeper than 32 levels`},
		{"list_equals", &questions, `tags = "sql"`, `field "tags" is a list: use tags:"value"`},
		{"list_not_equals", &questions, `tags != "sql"`, `field "tags" is a list: use tags:"value"`},
		{"list_less", &questions, `tags < "sql"`, `field "tags" is a list: use tags:"value"`},
		{"list_in_or", &questions, `tags:"go" OR tags = "sql"`, `field "tags" is a list: use tags:"value"`},
		{"list_gets_int", &questions, `tags:5`, `field "tags" wants a quoted string, got integer 5`},
		{"list_gets_group", &questions, `tags:("a" OR "b")`, `field "tags" wants a quoted string, got a call of "OR"`},
		{"list_presence", &questions, `tags:*`, `field "tags": the presence test tags:* is not supported`},
		{"list_presence_quoted", &questions, `tags:"*"`, `field "tags": the presence test tags:* is not supported`},
		{"list_gets_dotted_word", &questions, `tags:node.js`, `field "tags" wants a quoted string, got node.js`},
		{"text_equals", &questions, `text = "join"`, `field "text" is full-text: use text:"words"`},
		{"text_greater", &questions, `text > "join"`, `field "text" is full-text: use text:"words"`},
		{"text_presence", &questions, `text:*`, `field "text": the presence test text:* is not supported`},
		{"has_string", &questions, `title:"How"`, `operator ":" (has) is not supported, use =`},
		{"has_int", &questions, `level:3`, `operator ":" (has) is not supported, use =`},
		{"has_unknown_field", &questions, `colour:"red"`, `unknown field "colour"`},
		{"has_literal_left", &questions, `3:"red"`, `left of : must be a field, got integer 3`},
		{"has_as_value", &questions, `title = (tags:"go")`, `field "title" wants a quoted string, got a comparison`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.schema.Build(query.Request{Filter: tt.filter})
			want := []string{"filter: " + tt.wantMsg}
			if diff := cmp.Diff(want, violations(t, err)); diff != "" {
				t.Errorf("Build(%q) violations mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}
}

func TestSchema_Build_filterWithinLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		filter    string
		wantTerms int
	}{
		// 16 alternations of OR and AND groups: 32 levels, the most allowed.
		{"deepest", strings.Repeat(`(name = "a" OR (name = "b" AND `, 16) + `name = "c"` + strings.Repeat("))", 16), 33},
		{"long_and_chain", "market_cap = 1" + strings.Repeat(" AND market_cap = 1", 99), 100},
		{"long_or_chain", "market_cap = 1" + strings.Repeat(" OR market_cap = 1", 99), 100},
		{"long_implicit_and_chain", "market_cap = 1" + strings.Repeat(" market_cap = 1", 99), 100},
		{"longest", `name = "` + strings.Repeat("a", 1991) + `"`, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := stocks.Build(query.Request{Filter: tt.filter})
			if err != nil {
				t.Fatalf("Build error = %v, want nil", err)
			}
			if len(q.Args) != tt.wantTerms {
				t.Errorf("Build gave %d parameters, want %d", len(q.Args), tt.wantTerms)
			}
		})
	}
}

func TestSchema_Build_orderBy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		schema     builder
		orderBy    string
		wantSQL    string
		wantFields []string
	}{
		{"default_is_key", &stocks, "", "s.symbol ASC", []string{"symbol"}},
		{"key_desc", &stocks, "symbol desc", "s.symbol DESC", []string{"symbol"}},
		{"key_asc", &stocks, "symbol asc", "s.symbol ASC", []string{"symbol"}},
		{
			"design_example", &stocks, "market_cap desc, symbol",
			"s.market_cap DESC, s.symbol ASC", []string{"market_cap", "symbol"},
		},
		{
			"key_appended", &stocks, "sector, market_cap desc",
			"s.sector ASC, s.market_cap DESC, s.symbol DESC", []string{"sector", "market_cap", "symbol"},
		},
		{"spaces", &stocks, "  name   desc ,symbol  ", "s.name DESC, s.symbol ASC", []string{"name", "symbol"}},
		{
			"schema_default", &recommendations, "",
			"r.create_time DESC, r.symbol DESC, r.source DESC", []string{"create_time", "symbol", "source"},
		},
		{
			"composite_key_partly_named", &recommendations, "source desc, confidence",
			"r.source DESC, r.confidence ASC, r.symbol ASC", []string{"source", "confidence", "symbol"},
		},
		{
			"enum", &recommendations, "action",
			"r.action ASC, r.symbol ASC, r.source ASC", []string{"action", "symbol", "source"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := tt.schema.Build(query.Request{OrderBy: tt.orderBy})
			if err != nil {
				t.Fatalf("Build(order_by %q) error = %v", tt.orderBy, err)
			}
			if q.OrderBy != tt.wantSQL {
				t.Errorf("Build(order_by %q).OrderBy = %q, want %q", tt.orderBy, q.OrderBy, tt.wantSQL)
			}
			if diff := cmp.Diff(tt.wantFields, q.SortFields()); diff != "" {
				t.Errorf("SortFields() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSchema_Build_orderByErrors(t *testing.T) {
	t.Parallel()
	const syntax = `invalid syntax, want a comma-separated list of "field" or "field desc"`
	tests := []struct {
		name    string
		orderBy string
		wantMsg string
	}{
		{"unknown_field", "colour", `unknown field "colour"`},
		{"not_sortable", "industry desc", `field "industry" cannot be sorted by`},
		{"duplicate", "market_cap, market_cap desc", `field "market_cap" appears more than once`},
		{"duplicate_key", "symbol, name, symbol", `field "symbol" appears more than once`},
		{"upper_case_direction", "name DESC", syntax},
		{"unknown_direction", "name down", syntax},
		{"empty_item", "name,,symbol", syntax},
		{"trailing_comma", "name,", syntax},
		{"sql_injection", "name; DROP TABLE stocks", syntax},
		{"three_words", "name desc asc", syntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := stocks.Build(query.Request{OrderBy: tt.orderBy})
			want := []string{"order_by: " + tt.wantMsg}
			if diff := cmp.Diff(want, violations(t, err)); diff != "" {
				t.Errorf("Build(order_by %q) violations mismatch (-want +got):\n%s", tt.orderBy, diff)
			}
		})
	}
}

func TestSchema_Build_pageSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		pageSize  int32
		wantSize  int
		wantLimit int
	}{
		{"default", 0, 50, 51},
		{"one", 1, 1, 2},
		{"chosen", 200, 200, 201},
		{"max", 1000, 1000, 1001},
		{"clamped", 5000, 1000, 1001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q, err := stocks.Build(query.Request{PageSize: tt.pageSize})
			if err != nil {
				t.Fatalf("Build(page_size %d) error = %v", tt.pageSize, err)
			}
			if q.PageSize != tt.wantSize || q.Limit != tt.wantLimit {
				t.Errorf("Build(page_size %d) = PageSize %d, Limit %d, want %d, %d",
					tt.pageSize, q.PageSize, q.Limit, tt.wantSize, tt.wantLimit)
			}
		})
	}
}

func TestSchema_Build_reportsEveryBadField(t *testing.T) {
	t.Parallel()
	_, err := stocks.Build(query.Request{Filter: "colour = 1", OrderBy: "colour", PageSize: -1})
	want := []string{
		"page_size: must not be negative, got -1",
		`filter: unknown field "colour"`,
		`order_by: unknown field "colour"`,
	}
	if diff := cmp.Diff(want, violations(t, err)); diff != "" {
		t.Errorf("violations mismatch (-want +got):\n%s", diff)
	}
}

func TestQuery_NamedArgs(t *testing.T) {
	t.Parallel()
	q, err := stocks.Build(query.Request{Filter: `sector = "A" OR market_cap < 10`})
	if err != nil {
		t.Fatalf("Build error = %v", err)
	}
	if want := "(s.sector = @p1 OR s.market_cap < @p2)"; q.Where != want {
		t.Errorf("Where = %q, want %q", q.Where, want)
	}
	// pgx numbers the names as they first appear: the caller's before the page's here.
	sql := q.SQL("SELECT 1 FROM t", "x = @x AND y <> @x")
	tests := []struct {
		name     string
		own      pgx.NamedArgs
		wantSQL  string
		wantArgs []any
		wantErr  string
	}{
		{
			"merged", pgx.NamedArgs{"x": "own"},
			"SELECT 1 FROM t WHERE x = $1 AND y <> $1 AND (s.sector = $2 OR s.market_cap < $3) ORDER BY s.symbol ASC LIMIT 51",
			[]any{"own", "A", int64(10)}, "",
		},
		{"missing", nil, "", nil, "argument x found in sql query but not present in StrictNamedArgs"},
		{"unused", pgx.NamedArgs{"x": 1, "z": 2}, "", nil, "argument z of StrictNamedArgs not found in sql query"},
		{"reserved", pgx.NamedArgs{"x": 1, "p2": 2}, "", nil, `query: parameter name "p2" is reserved for the page's parameters`},
		{"reserved_long", pgx.NamedArgs{"x": 1, "p12": 2}, "", nil, `query: parameter name "p12" is reserved for the page's parameters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotSQL, gotArgs, err := q.NamedArgs(tt.own).RewriteQuery(t.Context(), nil, sql, nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("RewriteQuery error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("RewriteQuery error = %v", err)
			}
			if gotSQL != tt.wantSQL {
				t.Errorf("SQL = %q, want %q", gotSQL, tt.wantSQL)
			}
			if diff := cmp.Diff(tt.wantArgs, gotArgs); diff != "" {
				t.Errorf("args mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Names like the page's but not of its form are the caller's to use.
	for _, name := range []string{"p", "px", "page", "p1x", "_p1"} {
		sql := q.SQL("SELECT 1 FROM t", "x = @"+name)
		if _, _, err := q.NamedArgs(pgx.NamedArgs{name: 1}).RewriteQuery(t.Context(), nil, sql, nil); err != nil {
			t.Errorf("own parameter %q: RewriteQuery error = %v, want nil", name, err)
		}
	}
}

func TestSchema_Build_schemaErrors(t *testing.T) {
	t.Parallel()
	enum := typepb.Field_Cardinality(0).Type()
	a := func(p pair) any { return p.A }
	tests := []struct {
		name    string
		schema  query.Schema[pair]
		wantErr string
	}{
		{
			"no_key",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.Int}}},
			"query: schema has no key",
		},
		{
			"undeclared_key",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.Int}}, Key: []string{"b"}},
			`query: schema key "b" is not a declared field`,
		},
		{
			"no_type",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a"}}, Key: []string{"a"}},
			`query: schema field "a": invalid type 0`,
		},
		{
			"no_column",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Type: query.Int}}, Key: []string{"a"}},
			"query: schema field 0: empty name or column",
		},
		{
			"enum_without_type",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.Enum}}, Key: []string{"a"}},
			`query: schema field "a": Enum must be set exactly for type enum`,
		},
		{
			"enum_type_on_string",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.String, Enum: enum}}, Key: []string{"a"}},
			`query: schema field "a": Enum must be set exactly for type enum`,
		},
		{
			"duplicate",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int}, {Name: "a", Column: "b", Type: query.Int},
			}, Key: []string{"a"}},
			`query: schema field "a" declared twice`,
		},
		{
			"sortable_list",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int}, {Name: "t", Column: "t", Type: query.StringList, Sortable: true},
			}, Key: []string{"a"}},
			`query: schema field "t": a string list field cannot be sortable`,
		},
		{
			"sortable_text",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int}, {Name: "t", Column: "t", Type: query.Text, Sortable: true},
			}, Key: []string{"a"}},
			`query: schema field "t": a full-text field cannot be sortable`,
		},
		{
			"list_key",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "t", Column: "t", Type: query.StringList}}, Key: []string{"t"}},
			`query: schema key "t": a string list field cannot be a key`,
		},
		{
			"text_key",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "t", Column: "t", Type: query.Text}}, Key: []string{"t"}},
			`query: schema key "t": a full-text field cannot be a key`,
		},
		{
			"type_past_text",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.Text + 1}}, Key: []string{"a"}},
			`query: schema field "a": invalid type 9`,
		},
		{
			"key_without_value",
			query.Schema[pair]{Fields: []query.Field[pair]{{Name: "a", Column: "a", Type: query.Int}}, Key: []string{"a"}},
			`query: schema field "a": sorted by, so it needs a Value`,
		},
		{
			"sortable_without_value",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int, Value: a}, {Name: "b", Column: "b", Type: query.Int, Sortable: true},
			}, Key: []string{"a"}},
			`query: schema field "b": sorted by, so it needs a Value`,
		},
		{
			"value_of_other_type",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int, Value: a},
				{Name: "t", Column: "t", Type: query.Timestamp, Sortable: true, Value: a},
			}, Key: []string{"a"}},
			`query: schema field "t": its Value returns int64, which is no timestamp value`,
		},
		{
			"value_panics",
			query.Schema[pair]{Fields: []query.Field[pair]{{
				Name: "a", Column: "a", Type: query.Int, Value: func(p pair) any { return 1 / p.B },
			}}, Key: []string{"a"}},
			`query: schema field "a": its Value panics on a zero row: runtime error: integer divide by zero`,
		},
		{
			"bad_default_order",
			query.Schema[pair]{Fields: []query.Field[pair]{
				{Name: "a", Column: "a", Type: query.Int, Value: a}, {Name: "b", Column: "b", Type: query.Int},
			}, Key: []string{"a"}, DefaultOrder: "b"},
			`query: schema default order "b": field "b" cannot be sorted by`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.schema.Build(query.Request{})
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Build error = %v, want %q", err, tt.wantErr)
			}
			var bad *validate.Error
			if errors.As(err, &bad) {
				t.Errorf("Build error is a *validate.Error; a schema mistake is not the caller's")
			}
		})
	}
}

func TestQuery_SQL(t *testing.T) {
	t.Parallel()
	q, err := stocks.Build(query.Request{Filter: `sector = "Energy"`, OrderBy: "market_cap desc", PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		conds []string
		want  string
	}{
		{"filter only", nil, "SELECT 1 FROM t WHERE (s.sector = @p1) ORDER BY s.market_cap DESC, s.symbol DESC LIMIT 3"},
		{"with the caller's condition", []string{"x = @x"}, "SELECT 1 FROM t WHERE x = @x AND (s.sector = @p1) ORDER BY s.market_cap DESC, s.symbol DESC LIMIT 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := q.SQL("SELECT 1 FROM t", tt.conds...); got != tt.want {
				t.Errorf("SQL() = %q, want %q", got, tt.want)
			}
		})
	}
	empty, err := stocks.Build(query.Request{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := empty.SQL("SELECT 1 FROM t"), "SELECT 1 FROM t ORDER BY s.symbol ASC LIMIT 51"; got != want {
		t.Errorf("SQL() without conditions = %q, want %q", got, want)
	}
}
