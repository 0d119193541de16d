package money

import (
	"math/big"
	"testing"
)

func TestParseFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0", "0", true}, {"1250.50", "1250.5", true}, {"-3", "-3", true}, {"0.000001", "0.000001", true},
		{"99999999999999.999999", "99999999999999.999999", true},
		{"1.", "", false}, {".5", "", false}, {"1e3", "", false}, {"1.1234567", "", false}, {"", "", false},
		{"123456789012345", "", false}, {" 1", "", false}, {"--1", "", false}, {"NaN", "", false},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q) error = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && Format(r) != tt.want {
			t.Errorf("Format(Parse(%q)) = %q, want %q", tt.in, Format(r), tt.want)
		}
	}
}

func TestArithmetic(t *testing.T) {
	t.Parallel()
	a, _ := Parse("0.1")
	b, _ := Parse("0.2")
	if got := Format(Add(a, b)); got != "0.3" { // exact, unlike float64
		t.Errorf("0.1 + 0.2 = %s, want 0.3", got)
	}
	q, _ := Parse("3")
	p, _ := Parse("187.333333")
	if got := Format(Mul(q, p)); got != "561.999999" {
		t.Errorf("3 x 187.333333 = %s, want 561.999999", got)
	}
	one, three := big.NewRat(1, 1), big.NewRat(3, 1)
	if got := Format(Quo(one, three)); got != "0.333333" {
		t.Errorf("1/3 = %s, want 0.333333", got)
	}
	if got := Format(Round(big.NewRat(5, 10_000_000))); got != "0.000001" {
		t.Errorf("Round(0.0000005) = %s, want 0.000001 (half away from zero)", got)
	}
}

func TestFits(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"0", true}, {"99999999999999.999999", true}, {"-99999999999999.999999", true},
		{"99999999999999.9999994", true}, // rounds down to the largest
		{"99999999999999.9999995", false}, {"100000000000000", false}, {"-100000000000000", false},
	} {
		r, _ := new(big.Rat).SetString(tt.in)
		if got := Fits(r); got != tt.want {
			t.Errorf("Fits(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
