package validate

// SymbolRule is the ticker symbol rule as a field violation states it.
const SymbolRule = "must be 1 to 10 of A-Z, 0-9, '.' and '-', starting with a letter"

// Symbol records a violation of field unless s is a ticker symbol, and reports whether it
// is. One rule for every service that takes a symbol: the stocks table's check constraint
// (1 to 10 of A-Z, 0-9, '.' and '-', starting with a letter; "AAPL", "BRK.B"). A service
// that passes symbols on to stock refuses the same ones itself, before any call.
func (v *Violations) Symbol(field, s string) bool {
	return v.Check(validSymbol(s), field, "%s, got %q", SymbolRule, s)
}

// validSymbol allocates nothing: stock's ingest checks a symbol a row.
func validSymbol(s string) bool {
	if len(s) == 0 || len(s) > 10 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}
