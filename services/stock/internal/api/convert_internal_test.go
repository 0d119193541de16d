package api

import "testing"

func TestValidDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"", true}, {"0", true}, {"187.25", true}, {"00012.5", true},
		{"99999999999999.999999", true}, {"123456789012345", false}, {"1.1234567", false},
		{"-1", false}, {"1.", false}, {".5", false}, {"1e5", false}, {"NaN", false}, {"1,5", false}, {" 1", false},
	}
	for _, tt := range tests {
		if got := validDecimal(tt.in); got != tt.want {
			t.Errorf("validDecimal(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestCompareDecimal(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"1", "1.0", 0}, {"0.5", "0.25", 1}, {"0.05", "0.5", -1}, {"010", "9.99", 1},
		{"100", "99.999999", 1}, {"2.10", "2.1", 0}, {"0", "0.000001", -1},
	}
	for _, tt := range tests {
		if got := compareDecimal(tt.a, tt.b); got != tt.want {
			t.Errorf("compareDecimal(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestTrimDecimal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"187.250000": "187.25", "100.000000": "100", "100": "100", "0.000001": "0.000001", "": ""} {
		if got := trimDecimal(in); got != want {
			t.Errorf("trimDecimal(%q) = %q, want %q", in, got, want)
		}
	}
}
