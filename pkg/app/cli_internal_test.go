package app

import "testing"

// TestDialAddr: a listen address on every interface is dialed on loopback.
func TestDialAddr(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		":50051":          "localhost:50051",
		"0.0.0.0:50051":   "localhost:50051",
		"[::]:50051":      "localhost:50051",
		"127.0.0.1:50051": "127.0.0.1:50051",
		"stock:50051":     "stock:50051",
		"dns:///stock:1":  "dns:///stock:1",
	}
	for in, want := range tests {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
