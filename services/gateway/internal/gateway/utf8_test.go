package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
)

// TestGateway_requireUTF8: a path or query that is not UTF-8 once percent-decoded is 400
// MALFORMED_REQUEST naming what is wrong, not a 500: grpc-gateway would copy it into a
// protobuf string, which gRPC refuses to marshal, and an error naming the path could not be
// marshalled as JSON.
func TestGateway_requireUTF8(t *testing.T) {
	t.Parallel()
	g := newTestGateway(t)
	tests := []struct {
		name, target string
		wantField    string
	}{
		{"unknown_path", "/v1/nope%FF", "path"},
		{"own_route_path", "/ui/%C3%28", "path"},
		{"query_value", "/openapi.json?symbol=%FF", "symbol"},
		{"query_second_value", "/openapi.json?symbol=A&symbol=B%FFC", "symbol"},
		{"query_name", "/openapi.json?%FFx=1", "\uFFFDx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := serve(t, g, httptest.NewRequest(http.MethodGet, tt.target, nil))
			if resp.StatusCode != http.StatusBadRequest || body.Code != codes.InvalidArgument {
				t.Fatalf("GET %s = %d %+v, want 400 INVALID_ARGUMENT", tt.target, resp.StatusCode, body)
			}
			var got []string
			for _, d := range body.Details {
				d := d.(map[string]any)
				switch d["@type"] {
				case "type.googleapis.com/google.rpc.ErrorInfo":
					got = append(got, d["reason"].(string))
				case "type.googleapis.com/google.rpc.BadRequest":
					for _, v := range d["field_violations"].([]any) {
						got = append(got, v.(map[string]any)["field"].(string))
					}
				}
			}
			if diff := cmp.Diff([]string{"MALFORMED_REQUEST", tt.wantField}, got); diff != "" {
				t.Errorf("GET %s: reason and fields mismatch (-want +got):\n%s", tt.target, diff)
			}
			if !strings.Contains(body.Message, "UTF-8") {
				t.Errorf("message %q does not say what is wrong", body.Message)
			}
		})
	}
	if resp, _ := serve(t, g, httptest.NewRequest(http.MethodGet, "/openapi.json?symbol=%C3%A9", nil)); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /openapi.json?symbol=%%C3%%A9 (é) = %d, want 200", resp.StatusCode)
	}
}
