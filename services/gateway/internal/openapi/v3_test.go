package openapi_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

func v3(t *testing.T) (*openapi3.T, []byte) {
	t.Helper()
	v2, err := openapi.Merged()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := openapi.V3(v2)
	if err != nil {
		t.Fatalf("V3: %v", err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("V3 is no OpenAPI 3 document: %v", err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("V3 is invalid: %v", err)
	}
	return doc, raw
}

// TestV3_deterministic: both documents are the same bytes every time they are built, so
// every gateway replica serves the same ones.
func TestV3_deterministic(t *testing.T) {
	t.Parallel()
	_, first := v3(t)
	firstV2, _ := openapi.Merged()
	for range 5 {
		v2, err := openapi.Merged()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(v2, firstV2) {
			t.Fatal("Merged differs between two calls")
		}
		if _, again := v3(t); !bytes.Equal(again, first) {
			t.Fatal("V3 differs between two calls")
		}
	}
}

// TestV3: the OpenAPI 3 form says what OpenAPI 2 could not: each answer's own media types
// (NDJSON for a stream, JSON for its errors), a stream line as one of two shapes; and keeps
// what the v2 document says of security.
func TestV3(t *testing.T) {
	t.Parallel()
	doc, raw := v3(t)
	if doc.OpenAPI != "3.0.3" || len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("openapi %q, servers %v; want 3.0.3 served from /", doc.OpenAPI, doc.Servers)
	}
	media := func(path, method, code string) []string {
		o := doc.Paths.Find(path).GetOperation(method)
		return slices.Sorted(maps.Keys(o.Responses.Value(code).Value.Content))
	}
	tests := []struct {
		path, method, code string
		want               []string
	}{
		{"/v1/stocks/{symbol}/prices:stream", "GET", "200", []string{"application/x-ndjson"}},
		{"/v1/stocks/{symbol}/prices:stream", "GET", "400", []string{"application/json"}},
		{"/v1/stocks/{symbol}/prices:stream", "GET", "default", []string{"application/json"}},
		{"/v1/stocks/{symbol}", "GET", "200", []string{"application/json"}},
		{"/", "GET", "200", []string{"text/html"}},
		{"/", "GET", "default", []string{"application/json"}},
		{"/ui/{file}", "GET", "200", []string{"text/css", "text/javascript"}},
		{"/ui/{file}", "GET", "404", []string{"application/json"}},
		{"/openapi.v3.json", "GET", "200", []string{"application/json"}},
		{"/favicon.ico", "GET", "200", []string{"image/x-icon"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, media(tt.path, tt.method, tt.code)); diff != "" {
			t.Errorf("%s %s %s media types mismatch (-want +got):\n%s", tt.method, tt.path, tt.code, diff)
		}
	}

	line := doc.Paths.Find("/v1/stocks/{symbol}/prices:stream").Get.Responses.Value("200").Value.Content["application/x-ndjson"].Schema.Value
	for _, c := range []struct {
		line  string
		valid bool
	}{
		{`{"result": {"prices": []}}`, true},
		{`{"error": {"code": 14, "message": "down", "details": []}}`, true},
		{`{"result": {"prices": []}, "error": {"code": 14, "message": "down", "details": []}}`, false},
		{`{}`, false},
		{`{"result": {}}`, false}, // prices is always present
	} {
		var v any
		if err := json.Unmarshal([]byte(c.line), &v); err != nil {
			t.Fatal(err)
		}
		if err := line.VisitJSON(v, openapi3.VisitAsResponse()); (err == nil) != c.valid {
			t.Errorf("stream line %s: valid = %v (%v), want %v", c.line, err == nil, err, c.valid)
		}
	}

	var generic struct {
		Paths map[string]map[string]struct {
			Security *[]map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if s := generic.Paths["/v1/stocks/{symbol}"]["get"].Security; s == nil || len(*s) != 0 {
		t.Errorf("GET /v1/stocks/{symbol} security = %v, want [] (public)", s)
	}
	if s := generic.Paths["/v1/portfolios"]["get"].Security; s == nil || len(*s) != 1 {
		t.Errorf("GET /v1/portfolios security = %v, want bearer", s)
	}
}
