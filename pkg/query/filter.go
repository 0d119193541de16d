package query

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.einride.tech/aip/filtering"
	expr "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgfleet/pgfleet/pkg/validate"
)

// node is a checked filter: a boolean operator over nodes, or a comparison of a field with a
// typed value.
type node struct {
	op    string  // "AND", "OR", "NOT", an SQL comparison (= <> < <= > >= LIKE, NOT LIKE), or has ":"
	kids  []*node // operands of AND, OR and NOT
	field *field  // compared field
	value any     // compared value, in the Go type of field.Type
}

// params names bound parameters as they are added: @p1, @p2, ...
type params struct {
	args []any
}

// add binds v and returns its placeholder.
func (p *params) add(v any) string {
	p.args = append(p.args, v)
	if n := len(p.args); n < len(paramRefs) {
		return paramRefs[n]
	}
	return "@" + paramName(len(p.args))
}

// paramRefs holds the placeholders of the first parameters, as paramNames their names.
var paramRefs = func() (refs [len(paramNames)]string) {
	for n := range refs {
		refs[n] = "@" + paramName(n)
	}
	return refs
}()

// parseFilter parses an AIP-160 filter and checks it against the schema. It returns nil for
// an empty filter. Its errors are messages for the caller.
//
// The filter is parsed by go.einride.tech/aip and checked here rather than by that module's
// checker: the checker accepts what SQL cannot express (has on any field, durations) and its
// messages do not name the offending field plainly.
func (c *checked) parseFilter(text string) (*node, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	key := parsedKey{c, text}
	if n, ok := parsed.Load(key); ok {
		return n.(*node), nil
	}
	n, err := c.parseFilterText(text)
	if err != nil {
		return nil, err
	}
	if parsedCount.Add(1) > maxParsed {
		parsed.Clear() // bounded: a flood of distinct filters cannot grow it
		parsedCount.Store(1)
	}
	parsed.Store(key, n)
	return n, nil
}

// Parsed filters, by schema and text: clients page through the same filter again and again,
// and parsing and checking one cost a tenth of a list call's CPU. Nodes are never changed
// once built, so one serves every call.
var (
	parsed      sync.Map // parsedKey -> *node
	parsedCount atomic.Int64
)

const maxParsed = 4096

type parsedKey struct {
	c    *checked
	text string
}

func (c *checked) parseFilterText(text string) (n *node, err error) {
	if utf8.RuneCountInString(text) > MaxFilterLength {
		return nil, fmt.Errorf("longer than %d characters", MaxFilterLength)
	}
	defer func() {
		// The parser is third-party code fed raw input: a panic in it must not take a
		// request down.
		if r := recover(); r != nil {
			n, err = nil, errors.New("invalid syntax")
		}
	}()
	var p filtering.Parser
	p.Init(text)
	parsed, err := p.Parse()
	if err != nil {
		return nil, syntaxError(err)
	}
	return c.checkExpr(parsed.GetExpr(), 0)
}

// positioned is what the parser's errors have; the types themselves are unexported.
type positioned interface {
	Position() filtering.Position
	Message() string
}

// syntaxError turns a parse error, a chain from the outermost grammar rule down to the token
// at fault, into one line naming the innermost cause and its place.
func syntaxError(err error) error {
	var at positioned
	msg := ""
	for e := err; e != nil; e = errors.Unwrap(e) {
		if p, ok := e.(positioned); ok {
			at, msg = p, p.Message()
		} else if errors.Is(e, io.EOF) {
			msg = "unexpected end of filter"
		} else {
			msg = e.Error()
		}
	}
	if at == nil {
		return fmt.Errorf("invalid syntax: %s", msg)
	}
	pos := at.Position()
	if pos.Line > 1 {
		return fmt.Errorf("invalid syntax at line %d, column %d: %s", pos.Line, pos.Column, msg)
	}
	return fmt.Errorf("invalid syntax at column %d: %s", pos.Column, msg)
}

// has is the node operator of the has function, which Field.condition renders by field type.
const has = ":"

// comparisons maps the filter's comparison functions to SQL operators, and has to has.
var comparisons = map[string]string{
	filtering.FunctionHas:           has,
	filtering.FunctionEquals:        "=",
	filtering.FunctionNotEquals:     "<>",
	filtering.FunctionLessThan:      "<",
	filtering.FunctionLessEquals:    "<=",
	filtering.FunctionGreaterThan:   ">",
	filtering.FunctionGreaterEquals: ">=",
}

// checkExpr turns a parsed expression in boolean position into a node, at nesting depth depth.
func (c *checked) checkExpr(e *expr.Expr, depth int) (*node, error) {
	call := e.GetCallExpr()
	if call == nil {
		return nil, fmt.Errorf("bare value %s is not supported, compare a field with it (field = value)",
			describe(e))
	}
	fn, args := call.GetFunction(), call.GetArgs()
	switch fn {
	case filtering.FunctionAnd, filtering.FunctionOr, filtering.FunctionFuzzyAnd, filtering.FunctionNot:
		if depth >= MaxFilterDepth {
			return nil, fmt.Errorf("nested deeper than %d levels", MaxFilterDepth)
		}
		op := fn
		if fn == filtering.FunctionFuzzyAnd { // AIP-160: a sequence "a b" means "a AND b"
			op = filtering.FunctionAnd
		}
		n := &node{op: op}
		for _, a := range args {
			kidDepth := depth + 1
			if kidOp := a.GetCallExpr().GetFunction(); op != filtering.FunctionNot &&
				(kidOp == op || kidOp == filtering.FunctionFuzzyAnd && op == filtering.FunctionAnd) {
				kidDepth = depth // the kid joins this group, below
			}
			kid, err := c.checkExpr(a, kidDepth)
			if err != nil {
				return nil, err
			}
			if kid.op == op && op != filtering.FunctionNot {
				// "a AND b AND c" parses as nested pairs; one flat group reads better, and
				// a long chain is not deep nesting.
				n.kids = append(n.kids, kid.kids...)
			} else {
				n.kids = append(n.kids, kid)
			}
		}
		if (op == filtering.FunctionNot) != (len(n.kids) == 1) || len(n.kids) == 0 {
			return nil, fmt.Errorf("%s with %d operands", op, len(n.kids))
		}
		return n, nil
	}
	op, ok := comparisons[fn]
	if !ok {
		return nil, fmt.Errorf("unsupported function %q", fn)
	}
	if len(args) != 2 {
		return nil, fmt.Errorf("%s with %d operands", fn, len(args))
	}
	if call := args[0].GetCallExpr(); call != nil && comparisons[call.GetFunction()] == "" {
		return nil, fmt.Errorf("unsupported function %q", call.GetFunction())
	}
	name, ok := qualifiedName(args[0])
	if !ok {
		return nil, fmt.Errorf("left of %s must be a field, got %s", fn, describe(args[0]))
	}
	f := c.field(name)
	if f == nil {
		return nil, fmt.Errorf("unknown field %q", name)
	}
	if other, ok := qualifiedName(args[1]); ok && c.field(other) != nil && !f.isEnumValue(other) {
		return nil, fmt.Errorf("comparing field %q with field %q is not supported, compare with a literal",
			name, other)
	}
	if err := f.allows(op); err != nil {
		return nil, err
	}
	v, err := f.literal(args[1])
	if err != nil {
		return nil, err
	}
	if op == has && v == "*" {
		// AIP-160's presence test; the parser reads tags:* and tags:"*" alike.
		return nil, fmt.Errorf("field %q: the presence test %s:* is not supported", name, name)
	}
	if pattern, ok := v.(string); ok && f.Type == String && (op == "=" || op == "<>") {
		if like, ok := wildcard(pattern); ok {
			v = like
			op = map[string]string{"=": "LIKE", "<>": "NOT LIKE"}[op]
		}
	}
	return &node{op: op, field: f, value: v}, nil
}

// allows returns why the field cannot be compared by op, or nil if it can.
func (f *field) allows(op string) error {
	switch {
	case f.Type == StringList && op != has:
		return fmt.Errorf(`field %q is a list: use %s:"value"`, f.Name, f.Name)
	case f.Type == Text && op != has:
		return fmt.Errorf(`field %q is full-text: use %s:"words"`, f.Name, f.Name)
	case op == has && !f.Type.hasOnly():
		return errors.New(`operator ":" (has) is not supported, use =`)
	case (f.Type == Bool || f.Type == Enum) && op != "=" && op != "<>":
		return fmt.Errorf("field %q is %s and supports only = and !=", f.Name, f.article())
	}
	return nil
}

// condition renders the comparison of the field by op with the bound parameter ref.
func (f *field) condition(op, ref string) string {
	switch f.Type {
	case StringList:
		return f.Column + " @> ARRAY[" + ref + "]"
	case Text:
		return f.Column + " @@ websearch_to_tsquery('english', " + ref + ")"
	}
	return f.Column + " " + op + " " + ref
}

// literal returns the value e holds, checked against the field's type.
func (f *field) literal(e *expr.Expr) (any, error) {
	if call := e.GetCallExpr(); f.Type == Timestamp && call.GetFunction() == filtering.FunctionTimestamp &&
		len(call.GetArgs()) == 1 {
		e = call.GetArgs()[0] // timestamp("..."), the standard function
	}
	name := e.GetIdentExpr().GetName() // true, false and enum value names are bare words
	switch v := e.GetConstExpr().GetConstantKind().(type) {
	case *expr.Constant_StringValue:
		switch f.Type {
		case String, StringList, Text:
			if bad := validate.BadText(v.StringValue, validate.Stored); bad != "" {
				return nil, fmt.Errorf("field %q: the string holds %s, which no stored text does", f.Name, bad)
			}
			return v.StringValue, nil
		case Timestamp:
			t, err := time.Parse(time.RFC3339Nano, v.StringValue)
			if err != nil {
				return nil, fmt.Errorf("field %q wants an RFC 3339 timestamp such as "+
					`"2024-01-02T15:04:05Z", got %q`, f.Name, v.StringValue)
			}
			return t, nil
		case Enum:
			name = v.StringValue
		}
	case *expr.Constant_Int64Value:
		switch f.Type {
		case Int:
			return v.Int64Value, nil
		case Float:
			return float64(v.Int64Value), nil
		}
	case *expr.Constant_DoubleValue:
		if f.Type == Float {
			return v.DoubleValue, nil
		}
	}
	switch {
	case f.Type == Bool && (name == "true" || name == "false"):
		return name == "true", nil
	case f.Type == Enum && name != "":
		if !f.isEnumValue(name) {
			return nil, fmt.Errorf("field %q has no value %q (enum %s)", f.Name, name,
				f.Enum.Descriptor().FullName())
		}
		return name, nil
	}
	return nil, fmt.Errorf("field %q wants %s, got %s", f.Name, f.wants(), describe(e))
}

// isEnumValue reports whether name is a value name of an Enum field's enum.
func (f *field) isEnumValue(name string) bool {
	return f.Type == Enum && f.Enum.Descriptor().Values().ByName(protoreflect.Name(name)) != nil
}

// wants describes the literals the field compares with, for error messages.
func (f *field) wants() string {
	switch f.Type {
	case String, StringList, Text:
		return "a quoted string"
	case Int:
		return "an integer"
	case Float:
		return "a number"
	case Timestamp:
		return `an RFC 3339 timestamp string such as "2024-01-02T15:04:05Z"`
	case Bool:
		return "true or false"
	default:
		return "a value name of enum " + string(f.Enum.Descriptor().FullName())
	}
}

// article names the field's type with its article, for error messages.
func (f *field) article() string {
	if f.Type == Enum {
		return "an enum"
	}
	return "a " + f.Type.String()
}

// qualifiedName returns the dotted name a member expression ("a.b.c") spells.
func qualifiedName(e *expr.Expr) (string, bool) {
	switch k := e.GetExprKind().(type) {
	case *expr.Expr_IdentExpr:
		return k.IdentExpr.GetName(), true
	case *expr.Expr_SelectExpr:
		parent, ok := qualifiedName(k.SelectExpr.GetOperand())
		return parent + "." + k.SelectExpr.GetField(), ok
	}
	return "", false
}

// describe renders a parsed operand for an error message.
func describe(e *expr.Expr) string {
	if name, ok := qualifiedName(e); ok {
		return name
	}
	if call := e.GetCallExpr(); call != nil {
		if _, ok := comparisons[call.GetFunction()]; ok {
			return "a comparison"
		}
		return "a call of " + strconv.Quote(call.GetFunction())
	}
	switch v := e.GetConstExpr().GetConstantKind().(type) {
	case *expr.Constant_StringValue:
		return "string " + strconv.Quote(v.StringValue)
	case *expr.Constant_Int64Value:
		return "integer " + strconv.FormatInt(v.Int64Value, 10)
	case *expr.Constant_DoubleValue:
		return "number " + strconv.FormatFloat(v.DoubleValue, 'g', -1, 64)
	}
	return "an expression"
}

// wildcard turns an AIP-160 string with a leading or trailing "*" into a LIKE pattern,
// escaping the characters LIKE treats specially. A "*" elsewhere is an ordinary character.
func wildcard(s string) (string, bool) {
	prefix, suffix := strings.HasPrefix(s, "*"), strings.HasSuffix(s, "*")
	if !prefix && !suffix {
		return "", false
	}
	s = strings.TrimPrefix(s, "*")
	if s == "" {
		return "%", true
	}
	s = strings.TrimSuffix(s, "*")
	s = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
	if prefix {
		s = "%" + s
	}
	if suffix {
		s += "%"
	}
	return s, true
}

// sql renders n as SQL, binding its values. A nil node renders as "".
func (n *node) sql(p *params) string {
	if n == nil {
		return ""
	}
	return n.render(func(n *node) string { return n.field.condition(n.op, p.add(n.value)) }, true)
}

// text renders n with API names and literal values: one spelling per filter, however it was
// written, for fingerprints.
func (n *node) text() string {
	if n == nil {
		return ""
	}
	return n.render(func(n *node) string {
		return n.field.Name + " " + n.op + " " + literalText(n.field.Type, n.value)
	}, true)
}

// render writes boolean operators with explicit parentheses, so the output never depends on
// operator precedence; leaf renders a comparison. A top-level result is always parenthesised.
func (n *node) render(leaf func(*node) string, top bool) string {
	switch n.op {
	case filtering.FunctionAnd, filtering.FunctionOr:
		parts := make([]string, len(n.kids))
		for i, k := range n.kids {
			parts[i] = k.render(leaf, false)
		}
		return "(" + strings.Join(parts, " "+n.op+" ") + ")"
	case filtering.FunctionNot:
		inner := n.kids[0].render(leaf, false)
		if n.kids[0].field != nil {
			inner = "(" + inner + ")"
		}
		if top {
			return "(NOT " + inner + ")"
		}
		return "NOT " + inner
	}
	if top {
		return "(" + leaf(n) + ")"
	}
	return leaf(n)
}
