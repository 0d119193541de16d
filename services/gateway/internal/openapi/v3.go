package openapi

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// V3 returns the document served at /openapi.v3.json: v2 (Merged's document) converted to
// OpenAPI 3.0 by kin-openapi's openapi2conv, which openapi-typescript and other OpenAPI 3
// tools need, with what OpenAPI 3 can say better than 2 said better:
//   - each answer lists only the media types it is sent in: OpenAPI 2 lists an operation's
//     media types once for all its answers, so a stream's errors would be NDJSON, and the
//     status page's errors HTML;
//   - a stream line is {"result": ...} or {"error": ...} (oneOf), not an object that may
//     hold either;
//   - the schemas x-events names (the data of a Watch stream's named events) are OpenAPI 3's;
//   - the server is the gateway serving the document ("/": OpenAPI 2 says so by leaving out
//     host, OpenAPI 3 by a relative URL).
//
// The same bytes every time: the document is decoded and encoded with sorted keys.
func V3(v2 []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, fmt.Errorf("openapi: v3: read the v2 document: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("openapi: v3: convert: %w", err)
	}
	doc3.Servers = openapi3.Servers{{URL: "/", Description: "The gateway serving this document."}}
	for _, item := range doc3.Paths.Map() {
		for _, op := range item.Operations() {
			for code, r := range op.Responses.Map() {
				splitMediaTypes(code, r.Value)
				if r.Value != nil && r.Value.Extensions[eventsExtension] != nil {
					// openapi2conv leaves extensions as they were: their refs point into v2's definitions.
					walk(r.Value.Extensions[eventsExtension], func(m map[string]any) {
						if ref, ok := m["$ref"].(string); ok {
							m["$ref"] = "#/components/schemas/" + strings.TrimPrefix(ref, "#/definitions/")
						}
					})
				}
			}
		}
	}
	if err := doc3.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapi: v3: the converted document is invalid: %w", err)
	}
	raw, err := json.Marshal(doc3)
	if err != nil {
		return nil, fmt.Errorf("openapi: v3: %w", err)
	}
	var doc any // through a generic value: map keys sorted, as in the v2 document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("openapi: v3: %w", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi: v3: %w", err)
	}
	return append(b, '\n'), nil
}

// splitMediaTypes keeps in a response only the media types it is sent in: errors are
// always JSON; a success is sent in the operation's other media types if it has any (a
// stream's NDJSON, the status page's HTML), else in JSON.
func splitMediaTypes(code string, r *openapi3.Response) {
	if r == nil || len(r.Content) < 2 {
		return
	}
	if !strings.HasPrefix(code, "2") {
		r.Content = openapi3.Content{"application/json": r.Content["application/json"]}
		return
	}
	delete(r.Content, "application/json")
	if mt := r.Content[ndjson]; mt != nil && mt.Schema != nil && mt.Schema.Value != nil {
		mt.Schema = &openapi3.SchemaRef{Value: streamLine(mt.Schema.Value)}
	}
	if mt := r.Content[arrowStream]; mt != nil {
		mt.Schema = &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeString}, Format: "binary",
			Description: "An Arrow IPC stream (the columnar format's streaming form)."}}
	}
}

// streamLine returns the schema of one NDJSON line, line's properties as alternatives.
func streamLine(line *openapi3.Schema) *openapi3.Schema {
	s := &openapi3.Schema{Description: line.Description}
	for _, name := range []string{"result", "error"} {
		prop := line.Properties[name]
		if prop == nil {
			continue
		}
		s.OneOf = append(s.OneOf, &openapi3.SchemaRef{Value: &openapi3.Schema{
			Type:                 &openapi3.Types{openapi3.TypeObject},
			Properties:           openapi3.Schemas{name: prop},
			Required:             []string{name},
			AdditionalProperties: openapi3.AdditionalProperties{Has: new(false)},
		}})
	}
	return s
}
