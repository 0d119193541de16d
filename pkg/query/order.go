package query

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.einride.tech/aip/ordering"
)

// sortKey is one field of an order.
type sortKey struct {
	field *field
	desc  bool
}

// parseOrderBy turns an AIP-132 order_by ("market_cap desc, symbol") into the total order
// of the request: the named fields, then the Key fields not among them.
func (c *checked) parseOrderBy(text string) ([]sortKey, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		text = c.defaultOrder
	}
	var parsed ordering.OrderBy
	if err := parsed.UnmarshalString(text); err != nil {
		// The library's message repeats the whole input; ours says what is allowed instead.
		return nil, errors.New(`invalid syntax, want a comma-separated list of "field" or "field desc"`)
	}
	var sort []sortKey
	for _, o := range parsed.Fields {
		f := c.field(o.Path)
		switch {
		case f == nil:
			return nil, fmt.Errorf("unknown field %q", o.Path)
		case !f.Sortable && !slices.Contains(c.key, f.Name):
			return nil, fmt.Errorf("field %q cannot be sorted by", o.Path)
		case slices.ContainsFunc(sort, func(k sortKey) bool { return k.field == f }):
			return nil, fmt.Errorf("field %q appears more than once", o.Path)
		}
		sort = append(sort, sortKey{field: f, desc: o.Desc})
	}
	// Key fields follow the direction of the last named field, so "market_cap desc" sorts as
	// market_cap DESC, symbol DESC: one ascending index on (market_cap, symbol), walked
	// backwards, serves it without a sort. A mixed order would need an index of its own.
	desc := len(sort) > 0 && sort[len(sort)-1].desc
	for _, name := range c.key {
		f := c.field(name)
		if !slices.ContainsFunc(sort, func(k sortKey) bool { return k.field == f }) {
			sort = append(sort, sortKey{field: f, desc: desc})
		}
	}
	return sort, nil
}

// orderSQL renders an order as an SQL ORDER BY list.
func orderSQL(sort []sortKey) string {
	var b strings.Builder
	for i, k := range sort {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.field.Column)
		if k.desc {
			b.WriteString(" DESC")
		} else {
			b.WriteString(" ASC")
		}
	}
	return b.String()
}

// orderText renders an order in order_by syntax, one spelling per order, for fingerprints.
func orderText(sort []sortKey) string {
	var b strings.Builder
	for i, k := range sort {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.field.Name)
		if k.desc {
			b.WriteString(" desc")
		}
	}
	return b.String()
}

// afterSQL renders the condition "the row sorts after the row whose sort-key values are
// last", binding the values as parameters.
func afterSQL(sort []sortKey, last []any, p *params) string {
	refs := make([]string, len(sort))
	for i, v := range last {
		refs[i] = p.add(v)
	}
	if len(sort) == 1 {
		return "(" + sort[0].field.Column + " " + afterOp(sort[0]) + " " + refs[0] + ")"
	}
	if !slices.ContainsFunc(sort, func(k sortKey) bool { return k.desc != sort[0].desc }) {
		// One direction: a row comparison, which a B-tree index on the columns serves directly.
		cols := make([]string, len(sort))
		for i, k := range sort {
			cols[i] = k.field.Column
		}
		return "((" + strings.Join(cols, ", ") + ") " + afterOp(sort[0]) + " (" +
			strings.Join(refs, ", ") + "))"
	}
	// Mixed directions: (c1 > v1) OR (c1 = v1 AND c2 < v2) OR ... The leading c1 >= v1 is
	// implied by the disjunction; it is there so the planner can bound an index scan on c1.
	first := sort[0].field.Column + " " + afterOp(sort[0]) + "= " + refs[0]
	terms := make([]string, len(sort))
	for i, k := range sort {
		var t strings.Builder
		t.WriteString("(")
		for j := range i {
			t.WriteString(sort[j].field.Column + " = " + refs[j] + " AND ")
		}
		t.WriteString(k.field.Column + " " + afterOp(k) + " " + refs[i] + ")")
		terms[i] = t.String()
	}
	return "(" + first + " AND (" + strings.Join(terms, " OR ") + "))"
}

// afterOp is the comparison that holds when a value sorts after another under k.
func afterOp(k sortKey) string {
	if k.desc {
		return "<"
	}
	return ">"
}
