package decimal_test

import (
	"math/big"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/decimal"
)

func TestParseFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"0", "0", true}, {"1250.50", "1250.5", true}, {"-3", "-3", true}, {"0.000001", "0.000001", true},
		{"99999999999999.999999", "99999999999999.999999", true}, {"-0", "0", true}, {"00012.5", "12.5", true},
		{"1.", "", false}, {".5", "", false}, {"1e3", "", false}, {"1.1234567", "", false}, {"", "", false},
		{"123456789012345", "", false}, {" 1", "", false}, {"--1", "", false}, {"NaN", "", false},
		{"-", "", false}, {"+1", "", false}, {"1,5", "", false}, {"1.5 ", "", false},
	}
	for _, tt := range tests {
		if got := decimal.Valid(tt.in); got != tt.ok {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.ok)
		}
		r, err := decimal.Parse(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("Parse(%q) error = %v, want ok %v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && decimal.Format(r) != tt.want {
			t.Errorf("Format(Parse(%q)) = %q, want %q", tt.in, decimal.Format(r), tt.want)
		}
	}
}

// TestParse_errorText: portfolio's field violations quote it ("must be a decimal string like
// \"100.25\": ...").
func TestParse_errorText(t *testing.T) {
	t.Parallel()
	_, err := decimal.Parse("1e3")
	if want := `"1e3" is not a decimal with at most 14 integer and 6 fraction digits`; err == nil || err.Error() != want {
		t.Errorf("Parse(1e3) error = %v, want %q", err, want)
	}
}

func TestArithmetic(t *testing.T) {
	t.Parallel()
	a, _ := decimal.Parse("0.1")
	b, _ := decimal.Parse("0.2")
	if got := decimal.Format(decimal.Add(a, b)); got != "0.3" { // exact, unlike float64
		t.Errorf("0.1 + 0.2 = %s, want 0.3", got)
	}
	if got := decimal.Format(decimal.Sub(a, b)); got != "-0.1" {
		t.Errorf("0.1 - 0.2 = %s, want -0.1", got)
	}
	if got := decimal.Format(decimal.Neg(a)); got != "-0.1" {
		t.Errorf("-0.1 = %s", got)
	}
	q, _ := decimal.Parse("3")
	p, _ := decimal.Parse("187.333333")
	if got := decimal.Format(decimal.Mul(q, p)); got != "561.999999" {
		t.Errorf("3 x 187.333333 = %s, want 561.999999", got)
	}
	one, three := big.NewRat(1, 1), big.NewRat(3, 1)
	if got := decimal.Format(decimal.Quo(one, three)); got != "0.333333" {
		t.Errorf("1/3 = %s, want 0.333333", got)
	}
	if got := decimal.Format(decimal.Round(big.NewRat(5, 10_000_000))); got != "0.000001" {
		t.Errorf("Round(0.0000005) = %s, want 0.000001 (half away from zero)", got)
	}
	if got := decimal.Format(decimal.Round(big.NewRat(-5, 10_000_000))); got != "-0.000001" {
		t.Errorf("Round(-0.0000005) = %s, want -0.000001 (half away from zero)", got)
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
		if got := decimal.Fits(r); got != tt.want {
			t.Errorf("Fits(%s) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1.0", 0}, {"0.5", "0.25", 1}, {"0.05", "0.5", -1}, {"010", "9.99", 1},
		{"100", "99.999999", 1}, {"2.10", "2.1", 0}, {"0", "0.000001", -1},
		{"-1", "1", -1}, {"1", "-1", 1}, {"-0", "0", 0}, {"0.0", "-0.000", 0}, {"-2", "-10", 1}, {"-0.5", "-0.25", -1},
	}
	for _, tt := range tests {
		if got := decimal.Compare(tt.a, tt.b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		ra, _ := new(big.Rat).SetString(tt.a)
		rb, _ := new(big.Rat).SetString(tt.b)
		if want := ra.Cmp(rb); want != tt.want {
			t.Errorf("case (%q, %q): big.Rat says %d", tt.a, tt.b, want)
		}
	}
}

func TestTrim(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"187.250000": "187.25", "100.000000": "100", "100": "100", "0.000001": "0.000001",
		"": "", "0.000000": "0", "-3.500000": "-3.5"} {
		if got := decimal.Trim(in); got != want {
			t.Errorf("Trim(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestValid_allocs: stock's ingest checks and compares four decimals a row. Not parallel:
// AllocsPerRun refuses to run beside other tests.
func TestValid_allocs(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() {
		_ = decimal.Valid("187.25") && decimal.Compare("187.25", "187.250001") < 0
	}); n != 0 {
		t.Errorf("Valid + Compare allocate %v times, want 0", n)
	}
}
