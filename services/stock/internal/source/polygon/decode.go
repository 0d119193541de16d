package polygon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // America/New_York, wherever the binary runs

	"github.com/pgfleet/pgfleet/services/stock/internal/source"
)

// newYork is the zone of Polygon's daily bar starts (midnight Eastern, as UTC milliseconds).
var newYork = func() *time.Location {
	loc, err := time.LoadLocation("America/New_York")
	if err != nil {
		panic("polygon: " + err.Error()) // cannot happen: time/tzdata is linked in
	}
	return loc
}()

// page is one decoded answer.
type page struct {
	status, message, nextURL string
	bars                     []source.Bar
	rejects                  []source.Reject
}

// pageDecoder decodes the pages of one ticker; n counts its results across pages, so a
// result without a usable day is still named ("AAPL result 12").
type pageDecoder struct {
	symbol   string
	from, to time.Time // the requested days: from <= day < to
	n        int
}

// decode stream-decodes one answer: the results array one element at a time, so only the
// page's bars are held, never the body. A syntax error says at which byte it broke.
func (d *pageDecoder) decode(r io.Reader) (*page, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	fail := func(what string, err error) (*page, error) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("malformed answer at byte %d (%s): %w", dec.InputOffset(), what, err)
	}
	if err := delim(dec, '{'); err != nil {
		return fail("want a JSON object", err)
	}
	p := &page{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return fail("reading a key", err)
		}
		key, _ := tok.(string)
		switch key {
		case "status", "next_url", "error", "message":
			var v *string
			if err := dec.Decode(&v); err != nil {
				return fail(strconv.Quote(key)+" is not a string", err)
			}
			if v == nil {
				continue
			}
			switch key {
			case "status":
				p.status = *v
			case "next_url":
				p.nextURL = *v
			default:
				if p.message == "" {
					p.message = *v
				}
			}
		case "results":
			if err := d.results(dec, p); err != nil {
				return fail("results", err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return fail("value of "+strconv.Quote(cut(key, 40)), err)
			}
		}
	}
	if err := delim(dec, '}'); err != nil {
		return fail("end of the object", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fail("data after the object", err)
	}
	return p, nil
}

// results reads the results array (or null), element by element.
func (d *pageDecoder) results(dec *json.Decoder, p *page) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		return nil
	}
	if del, ok := tok.(json.Delim); !ok || del != '[' {
		return fmt.Errorf("want an array, got %v", tok)
	}
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return err
		}
		d.n++
		d.row(raw, p)
	}
	return delim(dec, ']')
}

func delim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if got, ok := tok.(json.Delim); !ok || got != want {
		return fmt.Errorf("want %q, got %v", want, tok)
	}
	return nil
}

// row turns one result into a Bar, or a Reject naming every problem it has.
func (d *pageDecoder) row(raw json.RawMessage, p *page) {
	ref := fmt.Sprintf("%s result %d", d.symbol, d.n)
	reject := func(reasons ...string) {
		p.rejects = append(p.rejects, source.Reject{Ref: ref, Reason: strings.Join(reasons, "; "), Raw: cut(string(raw), 300)})
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(raw, &f); err != nil || f == nil {
		reject("not a JSON object")
		return
	}
	var reasons []string
	bad := func(field string, err error) { reasons = append(reasons, fmt.Sprintf("%q %v", field, err)) }

	var day time.Time
	if ms, err := integer(f["t"]); err != nil {
		bad("t", err)
	} else if ms < minMillis || ms > maxMillis {
		bad("t", fmt.Errorf("%d is not a time between 1900 and 2200", ms))
	} else {
		day = barDay(ms)
		ref = d.symbol + " " + day.Format(time.DateOnly)
		if day.Before(d.from) || !day.Before(d.to) {
			reasons = append(reasons, fmt.Sprintf("day %s outside the requested %s to %s", day.Format(time.DateOnly),
				d.from.Format(time.DateOnly), d.to.AddDate(0, 0, -1).Format(time.DateOnly)))
		}
	}
	b := source.Bar{Symbol: d.symbol, Time: day, Ref: ref}
	for _, fp := range []struct {
		name string
		dst  *string
	}{{"o", &b.Open}, {"h", &b.High}, {"l", &b.Low}, {"c", &b.Close}} {
		v, err := price(f[fp.name])
		if err != nil {
			bad(fp.name, err)
		}
		*fp.dst = v
	}
	if v, err := integer(f["v"]); err != nil {
		bad("v", err)
	} else if v < 0 {
		bad("v", fmt.Errorf("%d is negative", v))
	} else {
		b.Volume = v
	}
	if len(reasons) > 0 {
		reject(reasons...)
		return
	}
	p.bars = append(p.bars, b)
}

var (
	minMillis = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	maxMillis = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
)

// barDay is the day a bar starting at ms belongs to. Polygon starts a daily bar at midnight
// New York time (05:00 or 04:00 UTC); a provider that starts it at midnight UTC is read as
// meant, since no New York midnight is ever a UTC one.
func barDay(ms int64) time.Time {
	t := time.UnixMilli(ms).UTC()
	if ms%86_400_000 != 0 {
		t = t.In(newYork)
	}
	y, m, dd := t.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
}

// maxDecimals and maxIntDigits are what stock.prices' numeric(20, 6) holds.
const (
	maxDecimals  = 6
	maxIntDigits = 14
)

// price checks a price as the provider wrote it and returns that text unchanged.
func price(raw json.RawMessage) (string, error) {
	n, err := number(raw)
	if err != nil {
		return "", err
	}
	switch {
	case n.exp != "":
		return "", fmt.Errorf("%s has an exponent: not taken as an exact price", cut(n.text, 40))
	case n.neg:
		return "", fmt.Errorf("%s is negative", cut(n.text, 40))
	case len(n.frac) > maxDecimals:
		return "", fmt.Errorf("%s has %d decimals, more than the %d kept", cut(n.text, 40), len(n.frac), maxDecimals)
	case len(strings.TrimLeft(n.int, "0")) > maxIntDigits:
		return "", fmt.Errorf("%s is too large", cut(n.text, 40))
	}
	return n.text, nil
}

// integer reads a whole number, exponent notation included (Polygon writes large volumes
// as 7.0790813e+07), exactly: no float on the way.
func integer(raw json.RawMessage) (int64, error) {
	n, err := number(raw)
	if err != nil {
		return 0, err
	}
	digits, shift := n.int+n.frac, -len(n.frac)
	if n.exp != "" {
		e, err := strconv.Atoi(n.exp)
		if err != nil || e > 40 || e < -40 {
			return 0, fmt.Errorf("%s is out of range", cut(n.text, 40))
		}
		shift += e
	}
	if shift >= 0 {
		digits += strings.Repeat("0", shift)
	} else {
		keep := len(digits) + shift
		if keep < 0 {
			keep = 0
		}
		if strings.Trim(digits[keep:], "0") != "" {
			return 0, fmt.Errorf("%s is not a whole number", cut(n.text, 40))
		}
		digits = digits[:keep]
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return 0, nil
	}
	if len(digits) > 19 {
		return 0, fmt.Errorf("%s is out of range", cut(n.text, 40))
	}
	if n.neg {
		digits = "-" + digits
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s is out of range", cut(n.text, 40))
	}
	return v, nil
}

// num is a JSON number's text in parts: -int.frac e exp.
type num struct {
	text           string
	neg            bool
	int, frac, exp string
}

// number splits a JSON number; a missing field, null, a string or anything else is an error.
func number(raw json.RawMessage) (num, error) {
	s := string(bytes.TrimSpace(raw))
	switch {
	case raw == nil:
		return num{}, errors.New("is missing")
	case s == "null":
		return num{}, errors.New("is null")
	}
	n := num{text: s}
	rest := s
	if strings.HasPrefix(rest, "-") {
		n.neg, rest = true, rest[1:]
	}
	i := digitsEnd(rest)
	n.int, rest = rest[:i], rest[i:]
	if n.int == "" || (len(n.int) > 1 && n.int[0] == '0') {
		return num{}, fmt.Errorf("%s is not a number", cut(s, 40))
	}
	if strings.HasPrefix(rest, ".") {
		i = digitsEnd(rest[1:])
		if i == 0 {
			return num{}, fmt.Errorf("%s is not a number", cut(s, 40))
		}
		n.frac, rest = rest[1:1+i], rest[1+i:]
	}
	if strings.HasPrefix(rest, "e") || strings.HasPrefix(rest, "E") {
		rest = rest[1:]
		sign := ""
		if strings.HasPrefix(rest, "+") || strings.HasPrefix(rest, "-") {
			sign, rest = rest[:1], rest[1:]
		}
		i = digitsEnd(rest)
		if i == 0 {
			return num{}, fmt.Errorf("%s is not a number", cut(s, 40))
		}
		n.exp, rest = sign+rest[:i], rest[i:]
	}
	if rest != "" {
		return num{}, fmt.Errorf("%s is not a number", cut(s, 40))
	}
	return n, nil
}

func digitsEnd(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
