package openapi_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// TestMerged_watchRoutes walks proto/gateway.yaml: every Watch RPC's route is GET ...:watch
// and every ...:watch route a Watch RPC's; each is documented as server-sent events, in both
// documents: text/event-stream for its 200 answer (alone in OpenAPI 3, errors staying JSON),
// the data schema the message's definition, access_token taken, Last-Event-ID where the
// message has a cursor. The gateway's own /monitoring/database:watch too.
func TestMerged_watchRoutes(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../../proto/gateway.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Rules []map[string]any `yaml:"rules"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	doc, _ := merged(t)
	doc3, _ := v3(t)
	watched := 0
	for _, rule := range cfg.HTTP.Rules {
		sel, _ := rule["selector"].(string)
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(sel))
		if err != nil {
			t.Fatalf("rule %s: %v", sel, err)
		}
		md := d.(protoreflect.MethodDescriptor)
		get, isGet := rule["get"].(string)
		isWatchPath := isGet && strings.HasSuffix(get, ":watch")
		if gateway.IsWatchMethod(md) != isWatchPath {
			t.Errorf("rule %s (%v): a Watch RPC must be GET ...:watch, and GET ...:watch a Watch RPC", sel, rule)
			continue
		}
		if !isWatchPath {
			continue
		}
		watched++
		o := op(t, doc, "get", get)
		if !slices.Equal(o.Produces, []string{"text/event-stream", "application/json"}) {
			t.Errorf("GET %s produces %v, want text/event-stream then application/json (errors)", get, o.Produces)
		}
		var ok struct {
			Description string         `json:"description"`
			Schema      map[string]any `json:"schema"`
			Events      map[string]any `json:"x-events"`
		}
		if err := json.Unmarshal(o.Responses["200"], &ok); err != nil {
			t.Fatal(err)
		}
		wantRef := "#/definitions/v1" + string(md.Output().Name())
		errEvent, _ := ok.Events["error"].(map[string]any)
		if ok.Schema["$ref"] != wantRef || !strings.Contains(ok.Description, "Server-sent events") ||
			errEvent["$ref"] != "#/definitions/rpcStatus" {
			t.Errorf("GET %s 200 = %v, want the schema %s (the data of each event), SSE described, x-events error rpcStatus", get, ok, wantRef)
		}
		params := map[string]string{}
		for _, p := range o.Parameters {
			params[p["name"].(string)] = p["in"].(string)
		}
		withCursor := md.Output().Fields().ByName("cursor") != nil
		if params["access_token"] != "query" || (params["Last-Event-ID"] == "header") != withCursor {
			t.Errorf("GET %s parameters %v: want access_token in query, and Last-Event-ID in header iff the message has a cursor (%v)", get, params, withCursor)
		}
		item := doc3.Paths.Find(get)
		if item == nil || item.Get == nil {
			t.Errorf("GET %s missing from the OpenAPI 3 document", get)
			continue
		}
		content := item.Get.Responses.Value("200").Value.Content
		if len(content) != 1 || content["text/event-stream"] == nil || content["text/event-stream"].Schema.Ref == "" {
			t.Errorf("GET %s 200 content in OpenAPI 3 = %v, want text/event-stream alone with the message's schema", get, content)
		}
		if c := item.Get.Responses.Value("400").Value.Content; c["application/json"] == nil || len(c) != 1 {
			t.Errorf("GET %s 400 content in OpenAPI 3 = %v, want JSON alone", get, c)
		}
	}
	if watched != 6 {
		t.Errorf("%d Watch routes in gateway.yaml, want 6", watched)
	}
	own := op(t, doc, "get", "/monitoring/database:watch")
	if !slices.Contains(own.Produces, "text/event-stream") {
		t.Errorf("GET /monitoring/database:watch produces %v, want text/event-stream", own.Produces)
	}
}
