// Package money does exact decimal arithmetic on the decimal strings the API and numeric
// columns use, with math/big.Rat: no floating point anywhere between client and database.
package money

import (
	"fmt"
	"math/big"
	"strings"
)

// Scale is the number of fraction digits stored: numeric(20, 6).
const Scale = 6

// maxIntDigits is what numeric(20, 6) holds before the point.
const maxIntDigits = 14

// Parse reads a plain decimal ("1250.5", "-3"): optional sign, digits, optional point and at
// most Scale fraction digits. No exponents, no spaces.
func Parse(s string) (*big.Rat, error) {
	digits := strings.TrimPrefix(s, "-")
	intPart, frac, hasDot := strings.Cut(digits, ".")
	if intPart == "" || len(intPart) > maxIntDigits || len(frac) > Scale || (hasDot && frac == "") ||
		!allDigits(intPart) || !allDigits(frac) {
		return nil, fmt.Errorf("%q is not a decimal with at most %d integer and %d fraction digits", s, maxIntDigits, Scale)
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a decimal", s)
	}
	return r, nil
}

// Max is the largest amount numeric(20, 6) holds: cash, a quantity, a price, a trade's amount.
var Max = func() *big.Rat {
	r, _ := new(big.Rat).SetString("99999999999999.999999")
	return r
}()

// Fits reports whether r, rounded to Scale digits, fits numeric(20, 6): PostgreSQL refuses
// a larger value (SQLSTATE 22003) after the request has passed every check.
func Fits(r *big.Rat) bool { return new(big.Rat).Abs(Round(r)).Cmp(Max) <= 0 }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Format renders r rounded to Scale digits (half away from zero), without trailing zeros.
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

// Round returns r rounded to Scale digits, as stored.
func Round(r *big.Rat) *big.Rat {
	out, _ := new(big.Rat).SetString(r.FloatString(Scale))
	return out
}

// Mul returns a*b.
func Mul(a, b *big.Rat) *big.Rat { return new(big.Rat).Mul(a, b) }

// Add returns a+b.
func Add(a, b *big.Rat) *big.Rat { return new(big.Rat).Add(a, b) }

// Sub returns a-b.
func Sub(a, b *big.Rat) *big.Rat { return new(big.Rat).Sub(a, b) }

// Quo returns a/b; b must not be zero.
func Quo(a, b *big.Rat) *big.Rat { return new(big.Rat).Quo(a, b) }
