package query_test

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

var placeholder = regexp.MustCompile(`@p(\d+)`)

// FuzzSchema_Build checks that no filter, order_by or page token makes Build panic or fail
// with anything but a *validate.Error, and that the SQL it builds is well-formed, under the
// recommendations schema and under questions, whose list and full-text fields take has.
// Run with: go test -run '^$' -fuzz FuzzSchema_Build -fuzztime 30s ./query/
func FuzzSchema_Build(f *testing.F) {
	q, err := recommendations.Build(query.Request{Filter: `confidence > 0.5`, OrderBy: "confidence desc"})
	if err != nil {
		f.Fatal(err)
	}
	valid, err := q.NextPageToken([]any{0.7, "AAPL", "analyst"})
	if err != nil {
		f.Fatal(err)
	}
	seeds := []struct{ filter, orderBy, token string }{
		{"", "", ""},
		{`confidence > 0.5`, "confidence desc", valid},
		{`confidence > 0.5`, "confidence", valid},
		{`symbol = "A*" AND NOT (action = CARDINALITY_REQUIRED OR active = true)`, "symbol desc, source", ""},
		{`create_time > timestamp("2024-01-02T00:00:00Z") -source = "x"`, "action, create_time desc", ""},
		{`a.b.c:d(e, "f") OR -1.5 < .5`, "x,,y desc", "%%%"},
		{`((((symbol = "x"`, "symbol desc desc", valid[:len(valid)/2]},
		{"symbol = '\\x41\\u00e9\\101'", "  ", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
		{"symbol = \"\xff\"\n\tOR\r\nsource != 0x1F", "sourcé", "\x00"},
		{strings.Repeat("NOT (", 40) + `active = false` + strings.Repeat(")", 40), "active", ""},
		{`tags:"sql" AND -tags:go AND text:'"outer join" -lateral'`, "level desc, title", ""},
		{`tags:* OR text = "x" OR title:"y" OR tags:("a" OR "b") OR text:node.js`, "tags", ""},
		{`NOT (tags:"c*" OR text:"the") level >= 2`, "text desc", valid},
	}
	for _, s := range seeds {
		f.Add(s.filter, s.orderBy, s.token)
	}
	f.Fuzz(func(t *testing.T, filter, orderBy, token string) {
		for _, s := range []builder{&recommendations, &questions} {
			q, err := s.Build(query.Request{Filter: filter, OrderBy: orderBy, PageToken: token})
			if err != nil {
				var bad *validate.Error
				if !errors.As(err, &bad) {
					t.Fatalf("Build error = %v (%T), want a *validate.Error", err, err)
				}
				continue
			}
			for _, pair := range []string{"()", "[]"} {
				if strings.Count(q.Where, pair[:1]) != strings.Count(q.Where, pair[1:]) {
					t.Errorf("Where %q has unbalanced %s", q.Where, pair)
				}
			}
			used := map[int]bool{}
			for _, m := range placeholder.FindAllStringSubmatch(q.Where, -1) {
				n, _ := strconv.Atoi(m[1])
				if n < 1 || n > len(q.Args) {
					t.Errorf("Where %q uses @p%d, want @p1 to @p%d", q.Where, n, len(q.Args))
				}
				used[n] = true
			}
			if len(used) != len(q.Args) {
				t.Errorf("Where %q uses %d parameters, Args has %d", q.Where, len(used), len(q.Args))
			}
			if _, _, err := q.NamedArgs(nil).RewriteQuery(t.Context(), nil, q.SQL("SELECT 1 FROM t"), nil); err != nil {
				t.Errorf("pgx cannot bind Where %q: %v", q.Where, err)
			}
			if strings.Count(q.Where, "'") != 2*strings.Count(q.Where, "'english'") {
				t.Errorf("Where %q has a quoted literal other than 'english': values must be bound", q.Where)
			}
		}
	})
}
