// Package query turns AIP-160 filters, AIP-132 order_by and keyset page tokens into SQL with
// bound parameters, over a whitelist of declared fields.
//
// A list method declares its fields once and builds a Query per request:
//
//	var stocks = query.Schema{
//		Fields: []query.Field{
//			{Name: "symbol", Column: "s.symbol", Type: query.String, Sortable: true},
//			{Name: "market_cap", Column: "s.market_cap", Type: query.Int, Sortable: true},
//		},
//		Key: []string{"symbol"},
//	}
//
//	q, err := stocks.Build(query.Request{Filter: req.GetFilter(), OrderBy: req.GetOrderBy(),
//		PageToken: req.GetPageToken(), PageSize: req.GetPageSize()}, 1)
//	// err is a *validate.Error for bad input: the service answers INVALID_ARGUMENT.
//	sql := "SELECT symbol, market_cap FROM stock.stocks s"
//	if q.Where != "" {
//		sql += " WHERE " + q.Where
//	}
//	sql += " ORDER BY " + q.OrderBy + " LIMIT " + strconv.Itoa(q.Limit)
//	rows := ... // query with q.Args
//	page, next, err := query.Page(q, rows, func(s Stock, field string) any { ... })
//
// Filters follow AIP-160: a declared field compared with a literal (= != < <= > >=), terms
// joined by AND, by OR (which binds tighter than AND), by a space (AND), negated by NOT or -,
// and grouped by parentheses. A string compared by = or != may start or end with the
// wildcard "*" (name = "App*"); bool and enum fields take only = and !=. Fields are compared
// with literals only, never with other fields or through functions other than timestamp().
//
// List and full-text fields take the has operator ":" and nothing else:
//
//	{Name: "tags", Column: "q.tags", Type: query.StringList}, // a text[] column
//	{Name: "text", Column: "q.search", Type: query.Text},     // a tsvector column
//
// turn tags:"sql" into q.tags @> ARRAY[$1] (the array has the element) and text:"outer join"
// into q.search @@ websearch_to_tsquery('english', $2). The has operator applies to no other
// field, and its presence test (tags:*) is not supported. Both columns want a GIN index,
// which serves exactly these operators:
//
//	tags   text[]   NOT NULL DEFAULT '{}',
//	body   text     NOT NULL,
//	search tsvector NOT NULL GENERATED ALWAYS AS (to_tsvector('english', body)) STORED
//	CREATE INDEX questions_tags ON questions USING gin (tags);
//	CREATE INDEX questions_search ON questions USING gin (search);
//
// Pages are cut by keyset: the page token holds the sort-key values of the last row of the
// previous page, and the next query asks for rows after them. OFFSET is never used.
package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgfleet/pgfleet/pkg/validate"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Page sizes, per AIP-158: 0 asks for the default, larger than the maximum is cut to it.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// Limits on a filter, so one request cannot make the server build an enormous statement.
const (
	MaxFilterLength = 2000 // characters
	MaxFilterDepth  = 32   // nested AND / OR / NOT groups
)

// Type is the type of a field, which decides the literals a filter may compare it with.
type Type int

// The field types. Each names the Go type of its bound parameters and page-token values.
const (
	String    Type = iota + 1 // string; text columns
	Int                       // int64; integer columns
	Float                     // float64; double precision columns
	Timestamp                 // time.Time; timestamptz columns, RFC 3339 strings in filters
	Bool                      // bool; true or false in filters
	Enum                      // string holding a value name of Field.Enum, as the column stores it
	// StringList is a text[] column, filtered only by has: tags:"sql" holds for rows whose
	// array has the element "sql" ("*" is an ordinary character). It renders as
	// Column @> ARRAY[$n], which a GIN index on the column serves; "$n = ANY(Column)" would
	// mean the same but no index can serve it.
	StringList
	// Text is a full-text field whose Column is a tsvector built with the 'english'
	// configuration, usually a generated column with a GIN index. It is filtered only by
	// has: text:"outer join" renders as Column @@ websearch_to_tsquery('english', $n), so
	// the value is web-search syntax: stemmed words that must all occur, "quoted phrases",
	// or, and -word (text:'"outer join" -lateral'). A value without searchable words (blank,
	// or only stop words such as "the") matches no row.
	Text
)

// String names the type as error messages do.
func (t Type) String() string {
	switch t {
	case String:
		return "string"
	case Int:
		return "integer"
	case Float:
		return "number"
	case Timestamp:
		return "timestamp"
	case Bool:
		return "bool"
	case Enum:
		return "enum"
	case StringList:
		return "string list"
	case Text:
		return "full-text"
	}
	return fmt.Sprintf("Type(%d)", int(t))
}

// hasOnly reports whether fields of the type are filtered by the has operator ":" alone, and
// so can be neither sorted by nor part of a Key.
func (t Type) hasOnly() bool {
	return t == StringList || t == Text
}

// Field is one field a list method lets callers filter or sort by.
type Field struct {
	// Name is the API name, as callers write it in filter and order_by ("market_cap").
	Name string
	// Column is the SQL expression for the field ("s.market_cap"): a text[] for a StringList,
	// a tsvector for a Text field. It is written into the statement as is, so it must come
	// from code, never from input.
	Column string
	// Type decides the literals the field compares with and the Go type of its values.
	Type Type
	// Enum is the enum type of an Enum field; its value names are the accepted literals and
	// what the column stores.
	Enum protoreflect.EnumType
	// Sortable lets order_by name the field. Key fields are always sorted by. StringList and
	// Text fields cannot be sorted by.
	Sortable bool
}

// Schema is the whitelist of one list method. Schemas are read-only once in use; a copy may
// set its own TokenKey.
type Schema struct {
	// Fields are the fields that filter and order_by may name.
	Fields []Field
	// Key names fields whose values together are unique per row. They are appended to every
	// order that lacks them, so the order is total and keyset pages neither skip nor repeat.
	// Sort columns, the Key's included, must be NOT NULL.
	Key []string
	// DefaultOrder is the order, in order_by syntax, of requests without order_by; empty means
	// the Key ascending.
	DefaultOrder string
	// TokenKey is the HMAC key that signs page tokens, from Config.PageTokenKey. Empty means a
	// built-in key, which keeps out garbage and edited tokens but not forgeries by someone who
	// read this source. Replicas of a service must share the key.
	TokenKey string
}

// Config holds the package's settings; a service embeds it in its own config.
type Config struct {
	// PageTokenKey signs page tokens; see Schema.TokenKey.
	PageTokenKey string `env:"PAGE_TOKEN_KEY" json:"-"`
}

// Request holds the list parameters of one call, as the API received them.
type Request struct {
	Filter    string // AIP-160 filter
	OrderBy   string // AIP-132 order_by
	PageToken string // from the previous response's next_page_token
	PageSize  int32  // 0 means DefaultPageSize
	// Extra binds other list parameters into the page token (ListPrices' symbol and time
	// range, say): a token made under another Extra is rejected.
	Extra string
}

// Query is the SQL for one page of a list.
type Query struct {
	// Where is "" or a parenthesised boolean SQL expression over $n parameters, combining the
	// filter and the page token's position.
	Where string
	// Args are the values of Where's parameters, numbered from Build's firstArg.
	Args []any
	// OrderBy is the SQL order ("s.market_cap DESC, s.symbol ASC"), total thanks to the Key.
	OrderBy string
	// Limit is PageSize+1: the extra row tells whether another page follows.
	Limit int
	// PageSize is the number of rows a page holds.
	PageSize int

	sort        []sortKey
	fingerprint []byte
	tokenKey    string
}

// Build checks req against the schema and returns the SQL for the requested page. Parameters
// are numbered from $firstArg, so callers may put their own parameters before them.
//
// Bad input gives a *validate.Error naming every bad field ("filter", "order_by",
// "page_token", "page_size"); a mistake in the schema itself gives another error.
func (s *Schema) Build(req Request, firstArg int) (*Query, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if firstArg < 1 {
		return nil, fmt.Errorf("query: first parameter number %d, want 1 or more", firstArg)
	}
	var bad validate.Violations
	q := &Query{tokenKey: s.TokenKey}
	switch size := req.PageSize; {
	case size < 0:
		bad.Add("page_size", "must not be negative, got %d", size)
	case size == 0:
		q.PageSize = DefaultPageSize
	default:
		q.PageSize = int(min(size, MaxPageSize))
	}
	q.Limit = q.PageSize + 1
	filter, err := s.parseFilter(req.Filter)
	if err != nil {
		bad.Add("filter", "%v", err)
	}
	sort, err := s.parseOrderBy(req.OrderBy)
	if err != nil {
		bad.Add("order_by", "%v", err)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	q.sort = sort
	q.fingerprint = fingerprint(filter, sort, req.Extra)

	p := params{next: firstArg}
	where := filter.sql(&p)
	if req.PageToken != "" {
		last, err := q.decodeToken(req.PageToken, req.Extra != "")
		if err != nil {
			return nil, err
		}
		after := afterSQL(sort, last, &p)
		if where == "" {
			where = after
		} else {
			where = "(" + where + " AND " + after + ")"
		}
	}
	q.Where, q.Args = where, p.args
	q.OrderBy = orderSQL(sort)
	return q, nil
}

// SortFields returns the API names of the fields the rows are sorted by, Key included: the
// values NextPageToken wants, in its order.
func (q *Query) SortFields() []string {
	names := make([]string, len(q.sort))
	for i, k := range q.sort {
		names[i] = k.field.Name
	}
	return names
}

// Page cuts rows, fetched with LIMIT q.Limit, to q.PageSize and returns them with the token
// of the next page, or "" when no row is left over. value returns a row's value of one of
// q.SortFields, in the Go type of the field's Type (an Enum's may also be its protoreflect.Enum).
func Page[T any](q *Query, rows []T, value func(row T, field string) any) ([]T, string, error) {
	if len(rows) <= q.PageSize {
		return rows, "", nil
	}
	rows = rows[:q.PageSize]
	last := rows[len(rows)-1]
	values := make([]any, len(q.sort))
	for i, k := range q.sort {
		values[i] = value(last, k.field.Name)
	}
	token, err := q.NextPageToken(values)
	if err != nil {
		return nil, "", err
	}
	return rows, token, nil
}

// field returns the declared field with the given API name, or nil.
func (s *Schema) field(name string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// check reports a mistake in the schema, which is the programmer's and not the caller's.
// Schemas are small, so checking on every Build costs little and needs no cache.
func (s *Schema) check() error {
	for i, f := range s.Fields {
		switch {
		case f.Name == "" || f.Column == "":
			return fmt.Errorf("query: schema field %d: empty name or column", i)
		case f.Type < String || f.Type > Text:
			return fmt.Errorf("query: schema field %q: invalid type %d", f.Name, int(f.Type))
		case (f.Type == Enum) != (f.Enum != nil):
			return fmt.Errorf("query: schema field %q: Enum must be set exactly for type enum", f.Name)
		case f.Sortable && f.Type.hasOnly():
			return fmt.Errorf("query: schema field %q: a %s field cannot be sortable", f.Name, f.Type)
		}
		for _, g := range s.Fields[:i] {
			if g.Name == f.Name {
				return fmt.Errorf("query: schema field %q declared twice", f.Name)
			}
		}
	}
	if len(s.Key) == 0 {
		return errors.New("query: schema has no key")
	}
	for _, name := range s.Key {
		f := s.field(name)
		if f == nil {
			return fmt.Errorf("query: schema key %q is not a declared field", name)
		}
		if f.Type.hasOnly() {
			return fmt.Errorf("query: schema key %q: a %s field cannot be a key", name, f.Type)
		}
	}
	if _, err := s.parseOrderBy(s.DefaultOrder); err != nil {
		return fmt.Errorf("query: schema default order %q: %w", s.DefaultOrder, err)
	}
	return nil
}

// SQL completes a SELECT with the page's WHERE, ORDER BY and LIMIT. conds are conditions of
// the caller's own (over its own parameters, numbered before Build's firstArg), ANDed with
// the filter and the page token's position; the caller passes its arguments, then Args.
func (q *Query) SQL(selectFrom string, conds ...string) string {
	if q.Where != "" {
		conds = append(conds, q.Where)
	}
	var b strings.Builder
	b.WriteString(selectFrom)
	if len(conds) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(conds, " AND "))
	}
	b.WriteString(" ORDER BY ")
	b.WriteString(q.OrderBy)
	b.WriteString(" LIMIT ")
	b.WriteString(strconv.Itoa(q.Limit))
	return b.String()
}
