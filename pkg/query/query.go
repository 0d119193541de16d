// Package query turns AIP-160 filters, AIP-132 order_by and keyset page tokens into SQL with
// named parameters, over a whitelist of declared fields.
//
// A list method declares its fields once, each with its column and how to read it off a row
// of the store, and answers each call with List:
//
//	var stocks = query.Schema[store.Stock]{
//		Fields: []query.Field[store.Stock]{
//			{Name: "symbol", Column: "symbol", Type: query.String, Sortable: true,
//				Value: func(s store.Stock) any { return s.Symbol }},
//			{Name: "market_cap", Column: "market_cap", Type: query.Int, Sortable: true,
//				Value: func(s store.Stock) any { return s.MarketCap }},
//		},
//		Key: []string{"symbol"},
//	}
//
//	// The handler: bad input is a *validate.Error, which the service answers INVALID_ARGUMENT.
//	page, next, err := query.List(ctx, s.retry, &stocks, query.RequestOf(req, ""), s.store.ListStocks, toStock)
//
//	// The store: its own parameters by name, the page's (@p1, @p2, ...) merged in by NamedArgs.
//	func (s *Store) ListStocks(ctx context.Context, page *query.Query) ([]Stock, error) {
//		sql := page.SQL("SELECT symbol, market_cap FROM stock.stocks", "exchange = @exchange")
//		rows, _ := s.db.Query(ctx, sql, page.NamedArgs(pgx.NamedArgs{"exchange": "NYSE"}))
//		return pgx.CollectRows(rows, pgx.RowToStructByName[Stock])
//	}
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
// turn tags:"sql" into q.tags @> ARRAY[@p1] (the array has the element) and text:"outer join"
// into q.search @@ websearch_to_tsquery('english', @p2). The has operator applies to no other
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
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgfleet/pgfleet/pkg/validate"
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
	// Column @> ARRAY[@pN], which a GIN index on the column serves; "@pN = ANY(Column)" would
	// mean the same but no index can serve it.
	StringList
	// Text is a full-text field whose Column is a tsvector built with the 'english'
	// configuration, usually a generated column with a GIN index. It is filtered only by
	// has: text:"outer join" renders as Column @@ websearch_to_tsquery('english', @pN), so
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

// Field is one field of rows of type T that a list method lets callers filter or sort by.
type Field[T any] struct {
	// Name is the API name, as callers write it in filter and order_by ("market_cap").
	Name string
	// Column is the SQL expression for the field ("s.market_cap"): a text[] for a StringList,
	// a tsvector for a Text field. It is written into the statement as is, so it must come
	// from code, never from input, and hold no "@" before a letter, which pgx would read as
	// a named parameter.
	Column string
	// Type decides the literals the field compares with and the Go type of its values.
	Type Type
	// Enum is the enum type of an Enum field; its value names are the accepted literals and
	// what the column stores.
	Enum protoreflect.EnumType
	// Sortable lets order_by name the field. Key fields are always sorted by. StringList and
	// Text fields cannot be sorted by.
	Sortable bool
	// Value returns a row's value of the field, in the Go type of the field's Type (an Enum's
	// may also be its protoreflect.Enum, a Timestamp's a *timestamppb.Timestamp): a page
	// token holds these values of a page's last row. Every field rows can be sorted by
	// (Sortable or in the Key) needs one; other fields' are never called. The schema check
	// calls it on T's zero value, so a Value of the wrong type fails the first Build.
	Value func(T) any
}

// Schema is the whitelist of one list method over rows of type T, the store's row struct.
// A schema is checked on its first Build, and the result kept for that *Schema, so it is
// read-only from then on and used by pointer; a copy may set its own TokenKey.
type Schema[T any] struct {
	// Fields are the fields that filter and order_by may name.
	Fields []Field[T]
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
	PageTokenKey string `env:"PAGE_TOKEN_KEY" json:"-" help:"HMAC key signing page tokens; replicas must share it; empty: a built-in key" secret:"true"`
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
	// Where is "" or a parenthesised boolean SQL expression over the named parameters @p1,
	// @p2, ..., combining the filter and the page token's position.
	Where string
	// Args are the values of Where's parameters: Args[0] is @p1's, and so on.
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
	schema      any // the *Schema[T] that built the query: only it knows the rows' values
}

// Build checks req against the schema and returns the SQL for the requested page.
//
// Bad input gives a *validate.Error naming every bad field ("filter", "order_by",
// "page_token", "page_size"); a mistake in the schema itself gives another error.
func (s *Schema[T]) Build(req Request) (*Query, error) {
	c, err := s.check()
	if err != nil {
		return nil, err
	}
	q, err := c.build(req)
	if err != nil {
		return nil, err
	}
	q.schema = s
	return q, nil
}

// Page cuts rows, read with q (so at most q.Limit of them), to q.PageSize and returns them
// with the token of the next page, or "" when no row is left over. The token holds the last
// row's values of q.SortFields, read by the fields' Value.
func (s *Schema[T]) Page(q *Query, rows []T) ([]T, string, error) {
	if q.schema != any(s) {
		return nil, "", errors.New("query: Page of a query another schema built")
	}
	if len(rows) <= q.PageSize {
		return rows, "", nil
	}
	rows = rows[:q.PageSize]
	last := rows[len(rows)-1]
	values := make([]any, len(q.sort))
	for i, k := range q.sort {
		values[i] = s.Fields[k.field.index].Value(last)
	}
	token, err := q.NextPageToken(values)
	if err != nil {
		return nil, "", err
	}
	return rows, token, nil
}

// build returns the Query for req; see Schema.Build.
func (c *checked) build(req Request) (*Query, error) {
	var bad validate.Violations
	q := &Query{tokenKey: c.tokenKey}
	switch size := req.PageSize; {
	case size < 0:
		bad.Add("page_size", "must not be negative, got %d", size)
	case size == 0:
		q.PageSize = DefaultPageSize
	default:
		q.PageSize = int(min(size, MaxPageSize))
	}
	q.Limit = q.PageSize + 1
	filter, err := c.parseFilter(req.Filter)
	if err != nil {
		bad.Add("filter", "%v", err)
	}
	sort, err := c.parseOrderBy(req.OrderBy)
	if err != nil {
		bad.Add("order_by", "%v", err)
	}
	if err := bad.Err(); err != nil {
		return nil, err
	}
	q.sort = sort
	q.fingerprint = fingerprint(filter, sort, req.Extra)

	var p params
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

// SQL completes a SELECT with the page's WHERE, ORDER BY and LIMIT. conds are conditions of
// the caller's own, over its own named parameters (symbol = @symbol), ANDed with the filter
// and the page token's position. Run it with NamedArgs.
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

// NamedArgs returns the arguments of a statement SQL built, as pgx takes them: the caller's
// own by name, merged with the page's, so neither side numbers the other's parameters. Pass
// it as the only argument: db.Query(ctx, sql, q.NamedArgs(pgx.NamedArgs{"symbol": sym})).
//
// pgx numbers the names in the order they first appear in the text, so the statement it
// prepares and caches depends on the filter's shape, the order and whether a token was
// given, never on the values. The names p1, p2, ... are the page's: a parameter of the
// caller's so named is an error, and so, as with pgx.StrictNamedArgs, is a name the
// statement uses but nobody gives, or one given but not used.
func (q *Query) NamedArgs(own pgx.NamedArgs) pgx.QueryRewriter {
	args := make(pgx.StrictNamedArgs, len(own)+len(q.Args))
	for name, v := range own {
		if pageParam(name) {
			return badArgs{fmt.Errorf("query: parameter name %q is reserved for the page's parameters", name)}
		}
		args[name] = v
	}
	for i, v := range q.Args {
		args[paramName(i+1)] = v
	}
	return args
}

// paramName names the page's n-th parameter.
func paramName(n int) string {
	if n < len(paramNames) {
		return paramNames[n]
	}
	return "p" + strconv.Itoa(n)
}

// paramNames holds the names of the first parameters, so that a page names them without
// allocating; paramNames[0] is unused.
var paramNames = func() (names [64]string) {
	for n := range names {
		names[n] = "p" + strconv.Itoa(n)
	}
	return names
}()

// pageParam reports whether name has the form of the page's parameter names.
func pageParam(name string) bool {
	digits := strings.TrimPrefix(name, "p")
	return len(digits) < len(name) && digits != "" && strings.Trim(digits, "0123456789") == ""
}

// badArgs fails the statement it is passed to with err.
type badArgs struct{ err error }

// RewriteQuery implements pgx.QueryRewriter.
func (b badArgs) RewriteQuery(context.Context, *pgx.Conn, string, []any) (string, []any, error) {
	return "", nil, b.err
}

// field is a declared field without its row type: what filters, orders and page tokens use.
type field struct {
	Name     string
	Column   string
	Type     Type
	Enum     protoreflect.EnumType
	Sortable bool
	index    int // in Schema.Fields, whose Value reads the field of a row
}

// checked is a Schema that passed check, without its row type.
type checked struct {
	fields       []field
	key          []string
	defaultOrder string
	tokenKey     string
}

// Checked schemas, by *Schema[T]: Build checks a schema once, not per call. Schemas are few
// and live as long as their servers, but tests make many: past maxChecked the cache starts
// over, and a schema is checked again.
var (
	checkedSchemas sync.Map // *Schema[T] -> checkResult
	checkedCount   atomic.Int64
)

const maxChecked = 1024

type checkResult struct {
	c   *checked
	err error
}

// check returns the schema checked, or the mistake in it, which is the programmer's and not
// the caller's.
func (s *Schema[T]) check() (*checked, error) {
	if r, ok := checkedSchemas.Load(s); ok {
		return r.(checkResult).c, r.(checkResult).err
	}
	c, err := s.checkNow()
	if checkedCount.Add(1) > maxChecked {
		checkedSchemas.Clear()
		checkedCount.Store(1)
	}
	checkedSchemas.Store(s, checkResult{c, err})
	return c, err
}

func (s *Schema[T]) checkNow() (*checked, error) {
	c := &checked{fields: make([]field, len(s.Fields)), key: s.Key, defaultOrder: s.DefaultOrder, tokenKey: s.TokenKey}
	for i, f := range s.Fields {
		switch {
		case f.Name == "" || f.Column == "":
			return nil, fmt.Errorf("query: schema field %d: empty name or column", i)
		case f.Type < String || f.Type > Text:
			return nil, fmt.Errorf("query: schema field %q: invalid type %d", f.Name, int(f.Type))
		case (f.Type == Enum) != (f.Enum != nil):
			return nil, fmt.Errorf("query: schema field %q: Enum must be set exactly for type enum", f.Name)
		case f.Sortable && f.Type.hasOnly():
			return nil, fmt.Errorf("query: schema field %q: a %s field cannot be sortable", f.Name, f.Type)
		}
		for _, g := range s.Fields[:i] {
			if g.Name == f.Name {
				return nil, fmt.Errorf("query: schema field %q declared twice", f.Name)
			}
		}
		c.fields[i] = field{Name: f.Name, Column: f.Column, Type: f.Type, Enum: f.Enum, Sortable: f.Sortable, index: i}
	}
	if len(s.Key) == 0 {
		return nil, errors.New("query: schema has no key")
	}
	for _, name := range s.Key {
		f := c.field(name)
		if f == nil {
			return nil, fmt.Errorf("query: schema key %q is not a declared field", name)
		}
		if f.Type.hasOnly() {
			return nil, fmt.Errorf("query: schema key %q: a %s field cannot be a key", name, f.Type)
		}
	}
	for i := range c.fields {
		if f := &c.fields[i]; f.Sortable || slices.Contains(s.Key, f.Name) {
			if err := checkValue(f, s.Fields[i].Value); err != nil {
				return nil, fmt.Errorf("query: schema field %q: %w", f.Name, err)
			}
		}
	}
	if _, err := c.parseOrderBy(s.DefaultOrder); err != nil {
		return nil, fmt.Errorf("query: schema default order %q: %w", s.DefaultOrder, err)
	}
	return c, nil
}

// checkValue checks that value, the Value of f, exists and returns f's Go type for T's zero
// value.
func checkValue[T any](f *field, value func(T) any) (err error) {
	if value == nil {
		return errors.New("sorted by, so it needs a Value")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("its Value panics on a zero row: %v", r)
		}
	}()
	var zero T
	if v := value(zero); !validValue(f, v) {
		return fmt.Errorf("its Value returns %T, which is no %s value", v, f.Type)
	}
	return nil
}

// field returns the declared field with the given API name, or nil.
func (c *checked) field(name string) *field {
	for i := range c.fields {
		if c.fields[i].Name == name {
			return &c.fields[i]
		}
	}
	return nil
}
