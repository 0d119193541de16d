// Package openapi builds the documents the gateway serves: /openapi.json, the OpenAPI v2
// documents protoc-gen-openapiv2 writes per proto file (gen/openapiv2, embedded there) merged
// into one and made to say what the gateway does (contract.go), and /openapi.v3.json, that
// document converted to OpenAPI 3 (v3.go).
package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pgfleet/pgfleet/gen/openapiv2"
)

// unrouted are generated paths the gateway does not serve: DatabaseMonitor is one RPC on
// every service, so one path cannot name which; GET /monitoring/database asks them all.
var unrouted = []string{"/v1/database/status"}

// Merged returns the document served at /openapi.json: the generated documents merged
// (Merge), then described as the gateway answers (describe: error responses, streams,
// which response fields are always present), with the gateway's own paths. The same bytes
// every time.
func Merged() ([]byte, error) {
	doc, err := merge(openapiv2.FS)
	if err != nil {
		return nil, err
	}
	// Messages are found by the RPCs the operations name: the generated packages registered
	// them (the gateway links them all for its routes).
	if err := describe(doc, protoregistry.GlobalFiles); err != nil {
		return nil, err
	}
	return encode(doc)
}

// httpMethods are the operation keys of a path item; "parameters" is the only other key.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch"}

// Merge merges every *.swagger.json in files: paths joined (one operation per path and
// method), definitions joined (a name defined twice must be defined alike), tags kept once.
// A document's top-level security moves into each of its operations that has none, since
// in the merged document it would cover every service's operations (stock reads are
// public, portfolio calls are not); an operation left without one says `security: []`,
// public, rather than leaving readers to guess. Security schemes of one name must agree
// but for their descriptions; the gateway describes them for the whole API.
func Merge(files fs.FS) ([]byte, error) {
	doc, err := merge(files)
	if err != nil {
		return nil, err
	}
	return encode(doc)
}

// merge is Merge before encoding. The gateway's own paths and definitions are added, the
// unrouted paths kept: describe pairs their definitions with messages first.
func merge(files fs.FS) (map[string]any, error) {
	paths, defs, schemes := map[string]any{}, map[string]any{}, map[string]any{}
	var tags []any
	seenTags := map[string]bool{}
	err := fs.WalkDir(files, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(name, ".swagger.json") {
			return err
		}
		doc, err := read(files, name)
		if err != nil {
			return err
		}
		for _, t := range list(doc["tags"]) {
			if n, _ := obj(t)["name"].(string); !seenTags[n] {
				seenTags[n] = true
				tags = append(tags, t)
			}
		}
		security, hasSecurity := doc["security"]
		for p, item := range obj(doc["paths"]) {
			merged := obj(paths[p])
			if merged == nil {
				merged = map[string]any{}
				paths[p] = merged
			}
			for key, op := range obj(item) {
				if _, dup := merged[key]; dup {
					return fmt.Errorf("openapi: %s: %s %s is defined twice", name, key, p)
				}
				if o := obj(op); hasSecurity && o != nil && slices.Contains(httpMethods, key) {
					if _, own := o["security"]; !own {
						o["security"] = security
					}
				}
				merged[key] = op
			}
		}
		for k, v := range obj(doc["definitions"]) {
			if have, dup := defs[k]; dup && !reflect.DeepEqual(have, v) {
				return fmt.Errorf("openapi: %s: definition %q differs from an earlier file's", name, k)
			}
			defs[k] = v
		}
		for k, v := range obj(doc["securityDefinitions"]) {
			if have, dup := schemes[k]; dup && !reflect.DeepEqual(undescribed(have), undescribed(v)) {
				return fmt.Errorf("openapi: %s: security scheme %q differs from an earlier file's", name, k)
			}
			schemes[k] = undescribed(v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("openapi: no *.swagger.json documents found")
	}
	for k, s := range schemes {
		if desc, ok := schemeDescriptions[k]; ok {
			obj(s)["description"] = desc
		}
	}
	maps.Copy(paths, clone(gatewayPaths).(map[string]any))
	maps.Copy(defs, clone(gatewayDefinitions).(map[string]any))
	for _, item := range paths {
		for _, key := range httpMethods {
			if op := obj(obj(item)[key]); op != nil && op["security"] == nil {
				op["security"] = []any{} // public
			}
		}
	}
	out := map[string]any{
		"swagger":     "2.0",
		"info":        info,
		"consumes":    []any{"application/json"},
		"produces":    []any{"application/json"},
		"tags":        append(tags, gatewayTag),
		"paths":       paths,
		"definitions": defs,
	}
	if len(schemes) > 0 {
		out["securityDefinitions"] = schemes
	}
	return out, nil
}

// encode writes doc as indented JSON, without the unrouted paths.
func encode(doc map[string]any) ([]byte, error) {
	for _, p := range unrouted {
		delete(obj(doc["paths"]), p)
	}
	b, err := json.MarshalIndent(doc, "", "  ") // map keys sorted: the same bytes every time
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return append(b, '\n'), nil
}

func read(files fs.FS, name string) (map[string]any, error) {
	data, err := fs.ReadFile(files, name)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers pass through as written
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("openapi: %s: %w", name, err)
	}
	if doc["swagger"] != "2.0" {
		return nil, fmt.Errorf("openapi: %s: want swagger 2.0, got %v", name, doc["swagger"])
	}
	return doc, nil
}

// undescribed returns a copy of a security scheme without its description.
func undescribed(v any) map[string]any {
	c := maps.Clone(obj(v))
	delete(c, "description")
	return c
}

// clone returns a deep copy of a decoded JSON value, so that edits of one part of a
// document never show through another that shared it.
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		c := make(map[string]any, len(v))
		for k, e := range v {
			c[k] = clone(e)
		}
		return c
	case []any:
		c := make([]any, len(v))
		for i, e := range v {
			c[i] = clone(e)
		}
		return c
	}
	return v
}

func obj(v any) map[string]any { m, _ := v.(map[string]any); return m }
func list(v any) []any         { l, _ := v.([]any); return l }
