package gateway

import (
	"errors"
	"io"
	"strings"
	"testing"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// TestMarshaler_oneValuePerBody: a request body is one JSON value, with only whitespace
// after it; a client stream's body (IngestPrices) is a sequence of values.
func TestMarshaler_oneValuePerBody(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		wantErr bool
	}{
		{"one_value", `{"stocks":[]}`, false},
		{"trailing_whitespace", "{\"stocks\":[]} \r\n\t\n", false},
		{"two_values", `{"stocks":[]}{"stocks":[]}`, true},
		{"two_values_spaced", "{}\n{}\n", true},
		{"trailing_garbage", `{} garbage`, true},
		{"trailing_comma", `{},`, true},
		{"trailing_nul", "{}\x00", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var req stockv1.UpsertStocksRequest
			err := marshaler.NewDecoder(strings.NewReader(tt.body)).Decode(&req)
			if (err != nil) != tt.wantErr {
				t.Errorf("Decode(%q) = %v, want error: %v", tt.body, err, tt.wantErr)
			}
		})
	}
	t.Run("empty_body", func(t *testing.T) {
		t.Parallel()
		var req stockv1.UpsertStocksRequest
		if err := marshaler.NewDecoder(strings.NewReader("")).Decode(&req); !errors.Is(err, io.EOF) {
			t.Errorf("Decode of an empty body = %v, want io.EOF (grpc-gateway's empty request)", err)
		}
	})
	t.Run("client_stream", func(t *testing.T) {
		t.Parallel()
		dec := marshaler.NewDecoder(strings.NewReader(`{"prices":[]}` + "\n" + `{"prices":[]}{"prices":[]}`))
		n := 0
		for {
			var req stockv1.IngestPricesRequest
			err := dec.Decode(&req)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Decode %d of a client stream: %v", n, err)
			}
			n++
		}
		if n != 3 {
			t.Errorf("decoded %d messages of the stream, want 3", n)
		}
	})
}
