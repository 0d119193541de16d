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
		{"-1", false}, {"-0", false}, {"1.", false}, {".5", false}, {"1e5", false}, {"NaN", false}, {"1,5", false}, {" 1", false},
	}
	for _, tt := range tests {
		if got := validDecimal(tt.in); got != tt.want {
			t.Errorf("validDecimal(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
