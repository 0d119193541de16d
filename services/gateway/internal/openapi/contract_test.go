package openapi_test

import (
	"encoding/json"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

// operationOf decodes one operation of the merged document.
type operationOf struct {
	OperationID string                     `json:"operationId"`
	Produces    []string                   `json:"produces"`
	Parameters  []map[string]any           `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

func op(t *testing.T, doc document, method, path string) operationOf {
	t.Helper()
	var o operationOf
	if err := json.Unmarshal(doc.Paths[path][method], &o); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return o
}

// TestMerged_errorResponses: each operation lists the error answers it can get, with the
// error schema, from one table: every RPC 400, 401, 429, 503, 504 and default; 403 if it
// needs a token; 404 if it names a resource; 409 if it writes; 413 if it takes a body.
func TestMerged_errorResponses(t *testing.T) {
	t.Parallel()
	doc, _ := merged(t)
	common := []string{"200", "400", "401", "429", "503", "504", "default"}
	with := func(codes ...string) []string {
		return slices.Sorted(slices.Values(append(slices.Clone(common), codes...)))
	}
	tests := []struct {
		method, path string
		want         []string
	}{
		{"get", "/v1/stocks", with()},
		{"get", "/v1/stocks/{symbol}", with("404")},
		{"get", "/v1/stocks/{symbol}/prices:stream", with("404")},
		{"post", "/v1/stocks:upsert", with("403", "409", "413")},
		{"delete", "/v1/stocks/{symbol}", with("403", "404", "409")},
		{"get", "/v1/portfolios", with("403")},
		{"post", "/v1/portfolios", with("403", "404", "409", "413")}, // user_id names the owner
		{"post", "/v1/portfolios/{portfolio_id}:deposit", with("403", "404", "409", "413")},
		{"patch", "/v1/questions/{question_id}", with("403", "404", "409", "413")},
		{"get", "/v1/sessions/{session_id}:next", with("403", "404")},
		{"get", "/health", []string{"200", "400", "503", "default"}}, // 400: a path or query not UTF-8
		{"get", "/ui/{file}", []string{"200", "400", "404", "default"}},
		{"get", "/favicon.ico", []string{"200", "400", "default"}},
	}
	for _, tt := range tests {
		o := op(t, doc, tt.method, tt.path)
		if diff := cmp.Diff(tt.want, slices.Sorted(maps.Keys(o.Responses))); diff != "" {
			t.Errorf("%s %s responses mismatch (-want +got):\n%s", tt.method, tt.path, diff)
		}
	}
	for path, item := range doc.Paths {
		for method, raw := range item {
			var o struct {
				OperationID string `json:"operationId"`
				Responses   map[string]struct {
					Description string         `json:"description"`
					Schema      map[string]any `json:"schema"`
				} `json:"responses"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(o.OperationID, "Gateway_") {
				continue // /health's 503 is its own body
			}
			for code, r := range o.Responses {
				if code >= "400" && (r.Schema["$ref"] != "#/definitions/rpcStatus" || r.Description == "") {
					t.Errorf("%s %s %s: schema %v, description %q; want rpcStatus, described", method, path, code, r.Schema, r.Description)
				}
			}
		}
	}
}

// TestMerged_paths: no two paths differ only by their parameters' names (redocly's
// no-identical-paths): UpdateQuestion's {question.id} is documented as {question_id}.
func TestMerged_paths(t *testing.T) {
	t.Parallel()
	doc, _ := merged(t)
	param := regexp.MustCompile(`\{[^}]*\}`)
	seen := map[string]string{}
	for p := range doc.Paths {
		shape := param.ReplaceAllString(p, "{}")
		if other, dup := seen[shape]; dup {
			t.Errorf("paths %s and %s differ only by parameter names", p, other)
		}
		seen[shape] = p
	}
	if _, ok := doc.Paths["/v1/questions/{question_id}"]["patch"]; !ok {
		t.Error("PATCH /v1/questions/{question_id} is missing")
	}
}

// definition decodes one definition of the merged document.
type definition struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Required   []string                   `json:"required"`
}

func def(t *testing.T, doc document, name string) definition {
	t.Helper()
	var d definition
	if err := json.Unmarshal(doc.Definitions[name], &d); err != nil {
		t.Fatalf("definition %s: %v", name, err)
	}
	slices.Sort(d.Required)
	return d
}

// TestMerged_alwaysPresent: what answers hold lists every field without presence (scalars,
// enums, lists, maps: the gateway always sends them) as required, and no message field (left
// out while unset). Request bodies keep the generated form, in a copy where the two differ.
func TestMerged_alwaysPresent(t *testing.T) {
	t.Parallel()
	doc, _ := merged(t)
	tests := []struct {
		name string
		want []string
	}{
		// Scalars and lists, not criteria, summary (messages) nor the timestamps.
		{"v1Session", []string{"candidate", "id", "questions", "state"}},
		{"v1SessionQuestion", nil}, // checked below: all but the answer message
		{"v1Question", []string{"category", "difficulty", "etag", "id", "key", "rubric", "tags", "text"}},
		// The request form: the REQUIRED fields only.
		{"v1QuestionInput", []string{"category", "difficulty", "key", "rubric", "text"}},
		{"rpcStatus", []string{"code", "details", "message"}},
		{"protobufAny", []string{"@type"}},
		// Durations and timestamps are messages, though rendered as strings; health is an enum.
		{"v1DatabaseStatus", []string{"error", "health", "locks", "reads", "recent", "replicas", "server_version", "service"}},
		{"v1Sample", []string{"calls_per_second", "error_ratio", "p99_seconds", "pool_use"}},
		// Not lag nor check_time: unset while the replica is down or unchecked.
		{"v1ReplicaStatus", []string{"lag_bytes", "reads", "replay_lsn", "replica", "up", "usable"}},
		{"v1ReadCount", []string{"count", "reason", "target"}},
	}
	for _, tt := range tests {
		d := def(t, doc, tt.name)
		if tt.want == nil {
			continue
		}
		if diff := cmp.Diff(tt.want, d.Required); diff != "" {
			t.Errorf("%s required mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	sq := def(t, doc, "v1SessionQuestion")
	for p := range sq.Properties {
		if want := p != "answer"; slices.Contains(sq.Required, p) != want {
			t.Errorf("v1SessionQuestion.%s required = %v, want %v", p, !want, want)
		}
	}

	// Bodies refer to the request forms, answers to the others.
	create := op(t, doc, "post", "/v1/questions")
	if got := bodyRef(create); got != "#/definitions/v1QuestionInput" {
		t.Errorf("POST /v1/questions body = %s, want the request form v1QuestionInput", got)
	}
	bulk, _ := json.Marshal(doc.Definitions["v1BulkImportQuestionsRequest"])
	if !strings.Contains(string(bulk), "v1QuestionInput") || strings.Contains(string(bulk), `v1Question"`) {
		t.Errorf("v1BulkImportQuestionsRequest = %s, want questions of v1QuestionInput", bulk)
	}
	get, _ := json.Marshal(doc.Definitions["v1GetQuestionResponse"])
	if !strings.Contains(string(get), `v1Question"`) {
		t.Errorf("v1GetQuestionResponse = %s, want a v1Question", get)
	}
	// A PATCH body is partial: the update_mask says which fields it holds.
	patch := op(t, doc, "patch", "/v1/questions/{question_id}")
	for _, p := range patch.Parameters {
		if p["in"] == "body" && p["schema"].(map[string]any)["required"] != nil {
			t.Errorf("PATCH /v1/questions/{question_id} body requires %v, want nothing", p["schema"].(map[string]any)["required"])
		}
	}
	// Nothing unused is left (the unrouted DatabaseMonitor's response, for one).
	if _, ok := doc.Definitions["v1GetDatabaseStatusResponse"]; ok {
		t.Error("v1GetDatabaseStatusResponse is defined, though no path refers to it")
	}
}

func bodyRef(o operationOf) string {
	for _, p := range o.Parameters {
		if p["in"] == "body" {
			ref, _ := p["schema"].(map[string]any)["$ref"].(string)
			return ref
		}
	}
	return ""
}

// TestMerged_stream: the server stream is documented as the NDJSON the gateway sends.
func TestMerged_stream(t *testing.T) {
	t.Parallel()
	doc, _ := merged(t)
	o := op(t, doc, "get", "/v1/stocks/{symbol}/prices:stream")
	if diff := cmp.Diff([]string{"application/x-ndjson", "application/json"}, o.Produces); diff != "" {
		t.Errorf("produces mismatch (-want +got):\n%s", diff)
	}
	var ok struct {
		Schema struct {
			Properties           map[string]map[string]string `json:"properties"`
			MinProperties        int                          `json:"minProperties"`
			MaxProperties        int                          `json:"maxProperties"`
			AdditionalProperties *bool                        `json:"additionalProperties"`
		} `json:"schema"`
	}
	if err := json.Unmarshal(o.Responses["200"], &ok); err != nil {
		t.Fatal(err)
	}
	s := ok.Schema
	if s.Properties["result"]["$ref"] != "#/definitions/v1StreamPricesResponse" || s.Properties["error"]["$ref"] != "#/definitions/rpcStatus" ||
		s.MinProperties != 1 || s.MaxProperties != 1 || s.AdditionalProperties == nil || *s.AdditionalProperties {
		t.Errorf("stream line = %+v, want exactly one of result (v1StreamPricesResponse) and error (rpcStatus)", s)
	}
}

// TestMerged_consistencyToken: every write's 200 answer documents the Pgfleet-Consistency-Token
// response header, every read takes it as an optional header parameter, and no operation
// does both; the gateway's own endpoints neither.
func TestMerged_consistencyToken(t *testing.T) {
	t.Parallel()
	doc, _ := merged(t)
	type tokenUse struct{ answers, takes bool }
	use := func(method, path string) tokenUse {
		t.Helper()
		var o struct {
			Parameters []map[string]any `json:"parameters"`
			Responses  map[string]struct {
				Headers map[string]map[string]any `json:"headers"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(doc.Paths[path][method], &o); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		var u tokenUse
		if h := o.Responses["200"].Headers[openapi.TokenHeader]; h != nil {
			u.answers = h["type"] == "string" && h["description"] != ""
		}
		for _, p := range o.Parameters {
			if p["name"] == openapi.TokenHeader {
				u.takes = p["in"] == "header" && p["required"] == false && p["type"] == "string" && p["description"] != ""
			}
		}
		return u
	}
	write, read := tokenUse{answers: true}, tokenUse{takes: true}
	tests := []struct {
		method, path string
		want         tokenUse
	}{
		{"get", "/v1/stocks", read},
		{"get", "/v1/stocks/{symbol}", read},
		{"get", "/v1/stocks/{symbol}/prices:stream", read},
		{"get", "/v1/portfolios/{portfolio_id}/trades", read},
		{"get", "/v1/sessions/{session_id}:next", read}, // NO_SIDE_EFFECTS: it reads the next question
		{"post", "/v1/stocks:upsert", write},
		{"delete", "/v1/stocks/{symbol}", write},
		{"post", "/v1/portfolios", write},
		{"post", "/v1/portfolios/{portfolio_id}/trades", write},
		{"patch", "/v1/questions/{question_id}", write},
		{"get", "/health", tokenUse{}},
		{"get", "/monitoring/database", tokenUse{}},
	}
	for _, tt := range tests {
		if got := use(tt.method, tt.path); got != tt.want {
			t.Errorf("%s %s: token answered %v, taken %v; want %v, %v", tt.method, tt.path, got.answers, got.takes, tt.want.answers, tt.want.takes)
		}
	}
	for path, item := range doc.Paths {
		for method := range item {
			if method == "parameters" {
				continue
			}
			u := use(method, path)
			gateways := strings.HasPrefix(op(t, doc, method, path).OperationID, "Gateway_")
			if u.answers == u.takes && !gateways || gateways && (u.answers || u.takes) {
				t.Errorf("%s %s: token answered %v, taken %v; want one of them for an RPC, neither for the gateway's own", method, path, u.answers, u.takes)
			}
		}
	}
}
