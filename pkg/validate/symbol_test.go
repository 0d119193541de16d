package validate_test

import (
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/validate"
)

func TestViolations_Symbol(t *testing.T) {
	t.Parallel()
	tests := []struct {
		symbol string
		want   bool
	}{
		{"AAPL", true}, {"A", true}, {"BRK.B", true}, {"BF-B", true}, {"X1", true}, {"ABCDEFGHIJ", true}, {"A.", true},
		{"", false}, {"1$%", false}, {"1ABC", false}, {"-A", false}, {".A", false}, {"aapl", false}, {"AAPl", false},
		{"ABCDEFGHIJK", false}, {"A B", false}, {"AAPL ", false}, {"A$", false}, {"É", false}, {"A\x00", false},
	}
	for _, tt := range tests {
		var v validate.Violations
		got := v.Symbol("symbol", tt.symbol)
		err := v.Err()
		if got != tt.want || (err == nil) != tt.want {
			t.Errorf("Symbol(%q) = %v, error %v; want %v", tt.symbol, got, err, tt.want)
		}
		if err != nil && !strings.Contains(err.Error(), "symbol: "+validate.SymbolRule) {
			t.Errorf("Symbol(%q) error = %v, want the symbol rule", tt.symbol, err)
		}
	}
}
