// Package decimal holds the rules of the amounts pgfleet stores in numeric(20, 6) columns
// and sends as decimal strings: which text is such a decimal, how one prints, and exact
// arithmetic on math/big.Rat, so no floating point stands between client and database.
//
// Values travel as text both ways (PostgreSQL's numeric text out, "$1::numeric" in): pgx's
// binary numeric encoding is costly on COPY, so there is no pgtype.Numeric conversion here.
// math/big.Rat rather than shopspring/decimal or cockroachdb/apd: both parse exponents
// ("1e3"), which the API refuses, so the syntax check below would stay either way;
// shopspring divides to a fixed 16 digits where a cost basis wants the exact quotient
// rounded once; and a Rat keeps every product and sum exact with the standard library alone.
package decimal

import (
	"cmp"
	"fmt"
	"math/big"
	"strings"
)

// Scale is the number of fraction digits stored: numeric(20, 6).
const Scale = 6

// IntDigits is how many digits numeric(20, 6) holds before the point.
const IntDigits = 14

// Max is the largest amount numeric(20, 6) holds: cash, a quantity, a price, a trade's amount.
var Max = func() *big.Rat {
	r, _ := new(big.Rat).SetString("99999999999999.999999")
	return r
}()

// Valid reports whether s is a plain decimal numeric(20, 6) stores without rounding: an
// optional "-", 1 to IntDigits digits, and optionally a point followed by 1 to Scale digits
// ("1250.5", "-3", "0.000001"). No exponent, no "+", no spaces, no bare point ("1.", ".5").
// It allocates nothing: stock's ingest checks four a row.
func Valid(s string) bool {
	intPart, frac, hasDot := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	return intPart != "" && len(intPart) <= IntDigits && len(frac) <= Scale && (!hasDot || frac != "") &&
		allDigits(intPart) && allDigits(frac)
}

// Parse reads a Valid decimal exactly.
func Parse(s string) (*big.Rat, error) {
	if !Valid(s) {
		return nil, fmt.Errorf("%q is not a decimal with at most %d integer and %d fraction digits", s, IntDigits, Scale)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal", s)
	}
	return r, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format renders r rounded to Scale digits (half away from zero), without trailing zeros:
// the form the APIs send ("1250.5", "0", "-3").
func Format(r *big.Rat) string {
	s := r.FloatString(Scale)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	if s == "-0" {
		return "0"
	}
	return s
}

// Trim drops the trailing fraction zeros of PostgreSQL's numeric text, which prints a
// numeric(20, 6) 1250.5 as "1250.500000": Format's form without parsing. Text that is no
// decimal comes back as it was but for trailing zeros after a point.
func Trim(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	s = strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

// Compare compares two Valid decimals as numbers (-1, 0 or +1) without parsing them: it
// allocates nothing, and stock's ingest compares a bar's low and high on every row.
func Compare(a, b string) int {
	an, bn := strings.HasPrefix(a, "-"), strings.HasPrefix(b, "-")
	a, b = strings.TrimPrefix(a, "-"), strings.TrimPrefix(b, "-")
	if an && isZero(a) { // "-0" is 0
		an = false
	}
	if bn && isZero(b) {
		bn = false
	}
	switch {
	case an && bn:
		return compareAbs(b, a)
	case an:
		return -1
	case bn:
		return 1
	}
	return compareAbs(a, b)
}

// compareAbs compares two unsigned Valid decimals.
func compareAbs(a, b string) int {
	ai, af, _ := strings.Cut(a, ".")
	bi, bf, _ := strings.Cut(b, ".")
	ai, bi = strings.TrimLeft(ai, "0"), strings.TrimLeft(bi, "0")
	if len(ai) != len(bi) {
		return cmp.Compare(len(ai), len(bi))
	}
	if c := strings.Compare(ai, bi); c != 0 {
		return c
	}
	// Fraction digits compare as text: "5" > "25" as 0.5 > 0.25, once trailing zeros are gone.
	return strings.Compare(strings.TrimRight(af, "0"), strings.TrimRight(bf, "0"))
}

func isZero(s string) bool { return strings.Trim(s, "0.") == "" }

// Round returns r rounded to Scale digits (half away from zero), as stored.
func Round(r *big.Rat) *big.Rat {
	out, _ := new(big.Rat).SetString(r.FloatString(Scale))
	return out
}

// Fits reports whether r, rounded to Scale digits, fits numeric(20, 6): PostgreSQL refuses
// a larger value (SQLSTATE 22003) after the request has passed every check.
func Fits(r *big.Rat) bool { return new(big.Rat).Abs(Round(r)).Cmp(Max) <= 0 }

// Mul returns a*b.
func Mul(a, b *big.Rat) *big.Rat { return new(big.Rat).Mul(a, b) }

// Add returns a+b.
func Add(a, b *big.Rat) *big.Rat { return new(big.Rat).Add(a, b) }

// Sub returns a-b.
func Sub(a, b *big.Rat) *big.Rat { return new(big.Rat).Sub(a, b) }

// Quo returns a/b; b must not be zero.
func Quo(a, b *big.Rat) *big.Rat { return new(big.Rat).Quo(a, b) }

// Neg returns -a.
func Neg(a *big.Rat) *big.Rat { return new(big.Rat).Neg(a) }
