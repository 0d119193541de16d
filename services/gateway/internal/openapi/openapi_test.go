package openapi_test

import (
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	_ "google.golang.org/genproto/googleapis/rpc/status" // google.rpc.Status's field names
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1" // the API's messages, for their field names
	_ "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	_ "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	_ "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

type document struct {
	Swagger     string                                `json:"swagger"`
	Paths       map[string]map[string]json.RawMessage `json:"paths"`
	Definitions map[string]json.RawMessage            `json:"definitions"`
}

func merged(t *testing.T) (document, []byte) {
	t.Helper()
	raw, err := openapi.Merged()
	if err != nil {
		t.Fatalf("Merged: %v", err)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("Merged is not JSON: %v", err)
	}
	return doc, raw
}

func TestMerged(t *testing.T) {
	t.Parallel()
	doc, raw := merged(t)
	if doc.Swagger != "2.0" {
		t.Errorf("swagger = %q, want 2.0", doc.Swagger)
	}
	for _, p := range []string{
		"/v1/stocks/{symbol}", "/v1/stocks/{symbol}/prices:stream", "/v1/portfolios/{portfolio_id}/trades",
		"/v1/questions", "/v1/sessions/{session_id}/answers", "/health", "/monitoring/database", "/monitoring/recent",
	} {
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("paths lack %s", p)
		}
	}
	// Who needs a token, as documented per operation (the services enforce it): the bearer
	// scheme, or `security: []` (public), never nothing (redocly's security-defined).
	public, bearer := []map[string][]string{}, []map[string][]string{{"bearer": {}}}
	for _, c := range []struct {
		path, method string
		want         []map[string][]string
	}{
		{"/v1/stocks/{symbol}", "get", public},
		{"/v1/stocks/{symbol}/prices:stream", "get", public},
		{"/v1/stocks:batchGet", "get", public},
		{"/v1/prices:latest", "get", public},
		{"/v1/recommendations", "get", public},
		{"/v1/stocks:upsert", "post", bearer},
		{"/v1/portfolios/{portfolio_id}", "get", bearer},
		{"/v1/sessions", "post", bearer},
		{"/health", "get", public},
		{"/monitoring/recent", "get", bearer},
		{"/openapi.v3.json", "get", public},
	} {
		var op struct {
			Security *[]map[string][]string `json:"security"`
		}
		if err := json.Unmarshal(doc.Paths[c.path][c.method], &op); err != nil {
			t.Fatalf("%s %s: %v", c.method, c.path, err)
		}
		if op.Security == nil {
			t.Errorf("%s %s has no security, want %v", c.method, c.path, c.want)
		} else if diff := cmp.Diff(c.want, *op.Security); diff != "" {
			t.Errorf("%s %s security mismatch (-want +got):\n%s", c.method, c.path, diff)
		}
	}
	for path, item := range doc.Paths {
		for method, op := range item {
			if !strings.Contains(string(op), `"security"`) {
				t.Errorf("%s %s says nothing of security", method, path)
			}
		}
	}
	if _, ok := doc.Paths["/v1/database/status"]; ok {
		t.Error("paths hold /v1/database/status, which the gateway does not route")
	}
	// Every reference resolves.
	for _, ref := range strings.Split(string(raw), `"$ref": "#/definitions/`)[1:] {
		name := ref[:strings.IndexByte(ref, '"')]
		if _, ok := doc.Definitions[name]; !ok {
			t.Errorf("$ref to missing definition %q", name)
		}
	}
}

// TestMerged_protoNames checks that the document names fields as the gateway's JSON does:
// every schema property and query parameter is a field name of some message of the API.
func TestMerged_protoNames(t *testing.T) {
	t.Parallel()
	fields := map[string]bool{"@type": true, "result": true, "error": true} // Any, stream chunks
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "pgfleet.") || fd.Package() == "google.rpc" {
			addFields(fields, fd.Messages())
		}
		return true
	})
	_, raw := merged(t)
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if id, _ := v["operationId"].(string); strings.HasPrefix(id, "Gateway_") {
				return // the gateway's own endpoints, no RPC's
			}
			if props, ok := v["properties"].(map[string]any); ok && !strings.Contains(path, "gateway") {
				for name := range props {
					if !fields[name] {
						t.Errorf("%s: property %q is no proto field name", path, name)
					}
				}
			}
			if (v["in"] == "query" || v["in"] == "path") && v["name"] != "access_token" { // the Watch routes' token (RFC 6750 2.3)
				for part := range strings.SplitSeq(v["name"].(string), ".") {
					if !fields[part] {
						t.Errorf("%s: parameter %q is no proto field path", path, v["name"])
					}
				}
			}
			for k, child := range v {
				walk(path+"/"+k, child)
			}
		case []any:
			for _, child := range v {
				walk(path, child)
			}
		}
	}
	walk("", doc)
}

func addFields(into map[string]bool, msgs protoreflect.MessageDescriptors) {
	for i := range msgs.Len() {
		m := msgs.Get(i)
		for j := range m.Fields().Len() {
			into[string(m.Fields().Get(j).Name())] = true
		}
		addFields(into, m.Messages())
	}
}

func TestMerge(t *testing.T) {
	t.Parallel()
	const a = `{"swagger":"2.0","tags":[{"name":"A"}],"security":[{"bearer":[]}],
		"securityDefinitions":{"bearer":{"type":"apiKey","in":"header","name":"Authorization","description":"A's"}},
		"paths":{"/v1/a":{"get":{"operationId":"A_Get"}}},
		"definitions":{"v1A":{"type":"object"},"rpcStatus":{"type":"object"}}}`
	const b = `{"swagger":"2.0","tags":[{"name":"A"},{"name":"B"}],
		"securityDefinitions":{"bearer":{"type":"apiKey","in":"header","name":"Authorization","description":"B's"}},
		"paths":{"/v1/a":{"post":{"operationId":"A_Post"}},"/v1/b":{"get":{"operationId":"B_Get","security":[{"bearer":[]}]}}},
		"definitions":{"rpcStatus":{"type":"object"}}}`
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{
			name: "merges",
			files: fstest.MapFS{
				"a/a.swagger.json": {Data: []byte(a)},
				"b/b.swagger.json": {Data: []byte(b)},
				"README.md":        {Data: []byte("not a spec")},
			},
		},
		{
			name:    "same_operation_twice",
			files:   fstest.MapFS{"a.swagger.json": {Data: []byte(a)}, "b.swagger.json": {Data: []byte(`{"swagger":"2.0","paths":{"/v1/a":{"get":{}}}}`)}},
			wantErr: "get /v1/a is defined twice",
		},
		{
			name: "conflicting_definitions",
			files: fstest.MapFS{"a.swagger.json": {Data: []byte(a)},
				"b.swagger.json": {Data: []byte(`{"swagger":"2.0","paths":{"/v1/b":{"get":{}}},"definitions":{"rpcStatus":{"type":"string"}}}`)}},
			wantErr: `definition "rpcStatus" differs`,
		},
		{
			name: "conflicting_security_schemes",
			files: fstest.MapFS{"a.swagger.json": {Data: []byte(a)},
				"b.swagger.json": {Data: []byte(`{"swagger":"2.0","paths":{"/v1/b":{"get":{}}},"securityDefinitions":{"bearer":{"type":"basic"}}}`)}},
			wantErr: `security scheme "bearer" differs`,
		},
		{name: "not_swagger_2", files: fstest.MapFS{"a.swagger.json": {Data: []byte(`{"openapi":"3.0.0"}`)}}, wantErr: "want swagger 2.0"},
		{name: "no_documents", files: fstest.MapFS{"a.json": {Data: []byte(a)}}, wantErr: "no *.swagger.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw, err := openapi.Merge(tt.files)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Merge() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge(): %v", err)
			}
			var got struct {
				Security            any                                  `json:"security"`
				Tags                []map[string]string                  `json:"tags"`
				Paths               map[string]map[string]map[string]any `json:"paths"`
				Definitions         map[string]any                       `json:"definitions"`
				SecurityDefinitions map[string]map[string]string         `json:"securityDefinitions"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			bearer := []any{map[string]any{"bearer": []any{}}}
			checks := []struct {
				what      string
				want, got any
			}{
				{"top-level security", nil, got.Security},
				{"A's operation inherits A's security", bearer, got.Paths["/v1/a"]["get"]["security"]},
				{"B's operation on the same path is public", []any{}, got.Paths["/v1/a"]["post"]["security"]},
				{"B's operation keeps its own", bearer, got.Paths["/v1/b"]["get"]["security"]},
				{"tags once each", []string{"A", "B", "Gateway"}, []string{got.Tags[0]["name"], got.Tags[1]["name"], got.Tags[2]["name"]}},
				{"definitions joined", true, got.Definitions["v1A"] != nil && got.Definitions["rpcStatus"] != nil},
				{"scheme kept", "apiKey", got.SecurityDefinitions["bearer"]["type"]},
				{"scheme described for the whole API", true, strings.Contains(got.SecurityDefinitions["bearer"]["description"], "Market data reads need none")},
			}
			for _, c := range checks {
				if diff := cmp.Diff(c.want, c.got); diff != "" {
					t.Errorf("%s: mismatch (-want +got):\n%s", c.what, diff)
				}
			}
		})
	}
}
