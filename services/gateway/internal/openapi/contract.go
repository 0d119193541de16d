package openapi

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/services/gateway/internal/gateway"
)

// describe makes the merged document say what the gateway answers where protoc-gen-openapiv2
// cannot say it from the protos and proto/openapi.yaml:
//   - each operation's error responses, from one table (errorResponses);
//   - server streams as the NDJSON the gateway sends (describeStream), Watch streams as
//     server-sent events (describeWatch);
//   - PATCH bodies as partial: the update_mask names the fields sent;
//   - the consistency token: answered by writes, accepted by reads (describeToken);
//   - which response fields are always present (markAlwaysPresent), with request bodies
//     keeping definitions of their own where the two differ (splitInputs);
//
// then drops the unrouted paths and every definition no path refers to. It needs the
// protos' descriptors: from the schema alone a Duration or Timestamp field (a message, left
// out while unset) cannot be told from a string field (always present).
func describe(doc map[string]any, files *protoregistry.Files) error {
	c := &contract{doc: doc, defs: obj(doc["definitions"]), files: files,
		rpcs: map[string]protoreflect.MethodDescriptor{}, messages: map[string]protoreflect.MessageDescriptor{}}
	if err := c.pairOperations(); err != nil {
		return err
	}
	for _, p := range unrouted {
		delete(obj(doc["paths"]), p)
	}
	c.ops = c.operations()
	for _, o := range c.ops {
		if err := describeOperation(o); err != nil {
			return err
		}
	}
	if err := c.splitInputs(); err != nil {
		return err
	}
	if err := c.markAlwaysPresent(); err != nil {
		return err
	}
	used := reach(c.defs, c.schemas(true, true))
	for name := range c.defs {
		if !used[name] {
			delete(c.defs, name)
		}
	}
	return nil
}

// contract is a merged document and what describe learnt about it.
type contract struct {
	doc   map[string]any
	defs  map[string]any
	files *protoregistry.Files
	ops   []operation
	// rpcs pairs each generated operation ("get /v1/stocks/{symbol}") with its RPC.
	rpcs map[string]protoreflect.MethodDescriptor
	// messages pairs each generated definition with the message it renders.
	messages map[string]protoreflect.MessageDescriptor
}

// operation is one operation of the document.
type operation struct {
	path, method string
	op           map[string]any
	// rpc is the method it calls; nil for the gateway's own endpoints.
	rpc protoreflect.MethodDescriptor
}

// operations lists the document's operations by path and method, each with its RPC as far
// as pairOperations found it.
func (c *contract) operations() []operation {
	var ops []operation
	paths := obj(c.doc["paths"])
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		for _, m := range httpMethods {
			if op := obj(obj(paths[p])[m]); op != nil {
				ops = append(ops, operation{path: p, method: m, op: op, rpc: c.rpcs[m+" "+p]})
			}
		}
	}
	return ops
}

// pairOperations finds each generated operation's RPC by its operationId
// (<Service>_<Method>) and pairs the definitions its responses use with the messages they
// render, property by property (proto names: json_names_for_fields=false).
func (c *contract) pairOperations() error {
	services := map[string][]protoreflect.ServiceDescriptor{}
	var status protoreflect.MessageDescriptor
	c.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "pgfleet.") {
			for i := range fd.Services().Len() {
				sd := fd.Services().Get(i)
				services[string(sd.Name())] = append(services[string(sd.Name())], sd)
			}
		}
		if d := fd.Messages().ByName("Status"); d != nil && fd.Package() == "google.rpc" {
			status = d
		}
		return true
	})
	if status == nil {
		return fmt.Errorf("openapi: google.rpc.Status is not registered")
	}
	for _, o := range c.operations() {
		id, _ := o.op["operationId"].(string)
		svc, method, _ := strings.Cut(id, "_")
		if svc == "Gateway" {
			continue
		}
		if len(services[svc]) != 1 {
			return fmt.Errorf("openapi: %s %s: operationId %q names no single registered service", o.method, o.path, id)
		}
		md := services[svc][0].Methods().ByName(protoreflect.Name(method))
		if md == nil {
			return fmt.Errorf("openapi: %s %s: %s has no method %s (is gen/ stale?)", o.method, o.path, services[svc][0].FullName(), method)
		}
		c.rpcs[o.method+" "+o.path] = md
		responses := obj(o.op["responses"])
		ok := obj(obj(responses["200"])["schema"])
		if md.IsStreamingServer() { // {"result": Output} or {"error": Status}
			props := obj(ok["properties"])
			if err := c.pair(props["result"], md.Output()); err != nil {
				return err
			}
			if err := c.pair(props["error"], status); err != nil {
				return err
			}
		} else if err := c.pair(ok, md.Output()); err != nil {
			return err
		}
		if err := c.pair(obj(responses["default"])["schema"], status); err != nil {
			return err
		}
	}
	return nil
}

// pair records that the definition schema refers to renders md, then pairs the definitions
// its message fields refer to. A field whose message renders inline (Timestamp, Duration:
// strings) refers to none.
func (c *contract) pair(schema any, md protoreflect.MessageDescriptor) error {
	name := refName(schema)
	if name == "" {
		return fmt.Errorf("openapi: %s is rendered without a definition", md.FullName())
	}
	if have, ok := c.messages[name]; ok {
		if have.FullName() != md.FullName() {
			return fmt.Errorf("openapi: definition %q renders both %s and %s", name, have.FullName(), md.FullName())
		}
		return nil
	}
	def := obj(c.defs[name])
	if def == nil {
		return fmt.Errorf("openapi: definition %q (%s) is missing", name, md.FullName())
	}
	c.messages[name] = md
	if md.FullName() == "google.protobuf.Any" { // {"@type": ..., the message's fields}
		return nil
	}
	props := obj(def["properties"])
	for _, p := range slices.Sorted(maps.Keys(props)) {
		fd := md.Fields().ByName(protoreflect.Name(p))
		if fd == nil {
			return fmt.Errorf("openapi: definition %q has property %q, which %s lacks", name, p, md.FullName())
		}
		prop := obj(props[p])
		switch {
		case fd.IsMap() && fd.MapValue().Message() != nil:
			if refName(prop["additionalProperties"]) != "" {
				if err := c.pair(prop["additionalProperties"], fd.MapValue().Message()); err != nil {
					return err
				}
			}
		case fd.IsList() && fd.Message() != nil:
			if refName(prop["items"]) != "" {
				if err := c.pair(prop["items"], fd.Message()); err != nil {
					return err
				}
			}
		case fd.Message() != nil:
			if refName(prop) != "" {
				if err := c.pair(prop, fd.Message()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// errorResponses are the error answers operations document, each with the operations it
// applies to. One table, not a list per method: the services share one mapping of failures
// to gRPC codes (pkg/apierr, pkg/app) and the gateway one of codes to HTTP statuses
// (grpc-gateway's, plus 413), so what an operation can answer follows from what it is. The
// gateway's tests hold every answer they get to the document, status code included.
var errorResponses = []struct {
	status      string
	appliesTo   func(operation) bool
	description string
}{
	{"400", callsRPC, "INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE: malformed JSON, a wrong type, an " +
		"unknown field or query parameter, a value the API refuses, or a state that forbids the call. The " +
		"ErrorInfo reason says which; a google.rpc.BadRequest detail lists the fields at fault."},
	{"401", callsRPC, "UNAUTHENTICATED: the bearer token is missing, expired or invalid. An operation that " +
		"needs no token still refuses a bad one."},
	{"403", needsToken, "PERMISSION_DENIED: the caller may not do this (a role is missing, or the request " +
		"names another user as its subject)."},
	{"404", namesResource, "NOT_FOUND: a resource the request names does not exist, or is another user's."},
	{"409", writes, "ALREADY_EXISTS (it exists, or a request_id was used for a different request) or " +
		"ABORTED (a concurrent change: an etag that no longer matches, a conflict that outlived the retries); " +
		"read again and retry."},
	{"413", hasBody, "RESOURCE_EXHAUSTED: the body is larger than the gateway's MAX_REQUEST_BYTES."},
	{"429", callsRPC, "RESOURCE_EXHAUSTED: a limit was reached; RetryInfo, when present, says when to retry."},
	{"503", callsRPC, "UNAVAILABLE: the service or its database is down, or its circuit breaker open; retry later."},
	{"504", callsRPC, "DEADLINE_EXCEEDED: the call did not finish within its deadline."},
	{"default", callsRPC, "Any other error, e.g. 500 INTERNAL."},
}

// namedOutsideThePath are operations that name a resource in their body rather than their
// path: CreatePortfolio's user_id (an admin's choice of owner).
var namedOutsideThePath = []string{"PortfolioService_CreatePortfolio"}

func callsRPC(o operation) bool   { return o.rpc != nil }
func needsToken(o operation) bool { return o.rpc != nil && len(list(o.op["security"])) > 0 }
func writes(o operation) bool     { return o.rpc != nil && o.method != "get" }
func hasBody(o operation) bool    { return o.rpc != nil && bodySchema(o.op) != nil }
func namesResource(o operation) bool {
	id, _ := o.op["operationId"].(string)
	return o.rpc != nil && (strings.Contains(o.path, "{") || slices.Contains(namedOutsideThePath, id))
}

// describeOperation documents o's error responses, and its answer if it is a stream or its
// body if it is a partial update.
func describeOperation(o operation) error {
	if o.rpc == nil {
		return nil // the gateway's own: gateway.go documents them whole
	}
	responses := obj(o.op["responses"])
	for _, e := range errorResponses {
		if !e.appliesTo(o) {
			continue
		}
		r := map[string]any{"description": e.description, "schema": ref("rpcStatus")}
		if e.status == "401" {
			r["headers"] = map[string]any{"WWW-Authenticate": map[string]any{
				"type": "string", "description": `Bearer realm="pgfleet" (RFC 6750).`,
			}}
		}
		responses[e.status] = r
	}
	describeToken(o)
	switch {
	case gateway.IsWatchMethod(o.rpc):
		describeWatch(o)
	case gateway.IsArrowMethod(o.rpc):
		describeStream(o)
		describeArrow(o)
	case o.rpc.IsStreamingServer():
		describeStream(o)
	}
	if o.method == "patch" {
		body := bodySchema(o.op)
		if refName(body) != "" {
			return fmt.Errorf("openapi: PATCH %s: the body is a shared definition, which cannot be made partial here", o.path)
		}
		// Every field is optional in a partial update; a message sent is still whole (its
		// definition keeps its required fields).
		delete(body, "required")
	}
	return nil
}

// TokenHeader is the HTTP header of the consistency token (pkg/replica's TokenHeader, as the
// gateway passes it both ways).
var TokenHeader = replica.TokenHTTPHeader

// Where the token is documented. A write is an RPC whose idempotency_level is not
// NO_SIDE_EFFECTS, as pkg/replica tells them apart: every successful one answers with a token.
// Every read takes one, not only those its service routes to replicas: the routes are the
// services' own (services/*/internal) and may change, and a read on the primary honours a
// token at no cost, so a client sends it to any read of the service after a write there.
var (
	tokenResponseHeader = map[string]any{
		"type": "string",
		"description": "Consistency token of this write: opaque, the position of its commit in the service's " +
			"database log. Send it back as the " + TokenHeader + " header of later reads of the same service " +
			"to see this write. Absent in the rare case the service could not read its position (the write stands).",
	}
	tokenParameter = map[string]any{
		"name": TokenHeader, "in": "header", "required": false, "type": "string",
		"description": "Read your writes: the " + TokenHeader + " header a write of the same service answered " +
			"with, sent back as it came. The read then sees that write and everything committed before it: it is " +
			"served by a read replica that has replayed it (waiting up to the service's REPLICA_WAIT, 100ms by " +
			"default, for one to catch up), else by the primary. Without a token, a read the service routes to " +
			"replicas may miss writes of the last MAX_REPLICA_LAG (10s by default); reads routed to the primary " +
			"see every committed write either way. A value no write gave is 400 CONSISTENCY_TOKEN_MALFORMED.",
	}
)

// describeToken documents the consistency token of o, an RPC's operation: a write's 200
// answer carries it, a read takes it.
func describeToken(o operation) {
	if replica.Writes(o.rpc) {
		ok := obj(obj(o.op["responses"])["200"])
		headers := obj(ok["headers"])
		if headers == nil {
			headers = map[string]any{}
			ok["headers"] = headers
		}
		headers[TokenHeader] = clone(tokenResponseHeader)
		return
	}
	o.op["parameters"] = append(list(o.op["parameters"]), clone(tokenParameter))
}

// ndjson is the media type of the gateway's server streams (marshal.go).
const ndjson = "application/x-ndjson"

// describeStream documents a server stream as the gateway sends it: NDJSON lines of
// {"result": message}, and one {"error": Status} line if the stream fails after its first
// line; a failure before it is an ordinary error answer. OpenAPI 2 has no per-response
// media types, so the operation produces both (the OpenAPI 3 form gives each its own).
func describeStream(o operation) {
	o.op["produces"] = []any{ndjson, "application/json"}
	ok := obj(obj(o.op["responses"])["200"])
	ok["description"] = "A stream of newline-delimited JSON (" + ndjson + `): one {"result": ...} line per ` +
		`message; if the stream fails after its first line, it ends with one {"error": ...} line. A failure ` +
		"before the first line is an ordinary error answer (application/json)."
	line := obj(ok["schema"])
	delete(line, "title") // "Stream result of ...": the description says it
	line["description"] = `One line: {"result": ...} or {"error": ...}, never both.`
	line["minProperties"] = 1
	line["maxProperties"] = 1
	line["additionalProperties"] = false
}

// arrowStream is the media type of an Arrow export's download (gateway's arrow.go).
const arrowStream = "application/vnd.apache.arrow.stream"

// describeArrow documents the other answer of an export route: with
// format=EXPORT_FORMAT_ARROW, the raw Arrow IPC stream (OpenAPI 2 names the media type
// among those produced; the 3.0 form gives it a binary schema of its own).
func describeArrow(o operation) {
	o.op["produces"] = []any{ndjson, arrowStream, "application/json"}
	ok := obj(obj(o.op["responses"])["200"])
	ok["description"] = ok["description"].(string) + " With format=EXPORT_FORMAT_ARROW the answer is instead " +
		"the Arrow IPC stream itself (" + arrowStream + "), which pyarrow.ipc.open_stream and " +
		"polars.read_ipc_stream read as it is: the schema, one record batch per message (each but the last with " +
		"the message's resume_token in its custom metadata, key pgfleet.resume_token: send it back as the " +
		"resume_token query parameter to go on after that batch), then the end-of-stream marker. A download " +
		"cut after its first byte just ends: the missing end-of-stream marker (the body's last 8 bytes are not " +
		"ff ff ff ff 00 00 00 00) tells it from a complete one, as does a last batch that still carries a token."
}

// eventStream is the media type of the Watch routes: server-sent events (sse.go).
const eventStream = "text/event-stream"

// eventsExtension, in a text/event-stream answer, gives the data schema of each named event
// (the schema is the unnamed events'): OpenAPI 3.0 has no way to say it.
const eventsExtension = "x-events"

// Parameters of every Watch route, for EventSource, which can set no header of its own.
var (
	accessTokenParameter = map[string]any{
		"name": "access_token", "in": "query", "required": false, "type": "string",
		"description": "The bearer token, for clients that cannot send the Authorization header (EventSource; " +
			"RFC 6750 2.3). Taken on Watch routes only (elsewhere 400), never logged or traced, and sent to the " +
			"service as the Authorization header; sending both is 400. Prefer the header where the client can set it.",
	}
	lastEventIDParameter = map[string]any{
		"name": "Last-Event-ID", "in": "header", "required": false, "type": "string",
		"description": "Resume after this event's id (EventSource sends the last id it received when it " +
			"reconnects): it becomes the request's cursor, replacing a cursor query parameter (the URL is fixed " +
			"when the EventSource is made; the header is always the newer position), and from_oldest is ignored.",
	}
)

// describeWatch documents a Watch RPC's route as the gateway serves it: server-sent events
// whose data is the message's JSON, the schema of the 200 answer; with an id (the message's
// cursor) where the message has one; a failure before the first event is an ordinary error
// answer, one after it an "error" event. OpenAPI has no schema per event (3.2's itemSchema
// is not in 3.0), so the schema is the data of a message event and the description says the rest.
func describeWatch(o operation) {
	o.op["produces"] = []any{eventStream, "application/json"}
	ok := obj(obj(o.op["responses"])["200"])
	chunk := obj(ok["schema"]) // the generated {"result": ..., "error": ...} of a stream
	result := clone(obj(obj(chunk["properties"])["result"]))
	withID := o.rpc.Output().Fields().ByName("cursor") != nil
	desc := "Server-sent events (" + eventStream + ", the WHATWG HTML standard's, read by EventSource): one event " +
		"per stream message, \"data: <the message's JSON>\" (one line), followed by a blank line; this schema is " +
		"that JSON. "
	if withID {
		desc += "Each event also has \"id: <cursor>\", the message's cursor: a client that reconnects with " +
			"Last-Event-ID (EventSource does) resumes after it, missing nothing. "
	}
	desc += "A comment line (\": heartbeat\") goes out when the stream has been idle for the gateway's " +
		"SSE_HEARTBEAT. If the stream fails after its first event, it ends with an event named error " +
		"(\"event: error\") whose data is a google.rpc.Status (rpcStatus), SHUTTING_DOWN when the gateway or the " +
		"service drains (reconnect: another replica serves); EventSource reconnects when the body ends. A " +
		"failure before the first event is an ordinary error answer (application/json), after which " +
		"EventSource stops. Watch streams are counted apart from other requests: past the gateway's " +
		"MAX_WATCH_STREAMS, 429."
	ok["description"] = desc
	ok["schema"] = result
	ok[eventsExtension] = map[string]any{"error": ref("rpcStatus")}
	params := append(list(o.op["parameters"]), clone(accessTokenParameter))
	if withID {
		params = append(params, clone(lastEventIDParameter))
	}
	o.op["parameters"] = params
}

// bodySchema returns the schema of op's body parameter, nil if it has none.
func bodySchema(op map[string]any) map[string]any {
	for _, p := range list(op["parameters"]) {
		if obj(p)["in"] == "body" {
			return obj(obj(p)["schema"])
		}
	}
	return nil
}

// schemas returns the root schemas of the document's request bodies (in) and answers (out).
func (c *contract) schemas(in, out bool) []any {
	var roots []any
	for _, o := range c.ops {
		if body := bodySchema(o.op); in && body != nil {
			roots = append(roots, body)
		}
		if out {
			for _, r := range obj(o.op["responses"]) {
				if s := obj(r)["schema"]; s != nil {
					roots = append(roots, s)
				}
			}
		}
	}
	return roots
}

// Always-present fields. The gateway's JSON (marshal.go: protojson EmitDefaultValues) holds
// every field without presence, zero or not: scalars, enums, lists and maps; it leaves out
// a field with presence while unset: a message (a Timestamp too), a oneof member, a proto3
// optional. So in every definition an answer can hold, markAlwaysPresent lists each field
// without presence as required, and generated clients type them as present.
//
// Request bodies must not inherit that: a client may leave out a list or a zero value, and
// an OUTPUT_ONLY field it cannot send at all. OpenAPI 3 says required applies to a readOnly
// property in responses only, but clients do not follow it (openapi-typescript v7 types a
// required readOnly property as required in request bodies too, unless run with
// --read-write-markers), and it would not cover an optional input that is always output.
// So a definition both sent and answered whose required list changes is split: answers
// keep the name and get the list, bodies refer to a copy named <name>Input, as generated
// (its required list holds the REQUIRED fields only; OUTPUT_ONLY ones are readOnly).

// inputSuffix names the request form of a definition that answers also use.
const inputSuffix = "Input"

// splitInputs gives request bodies their own copy of each definition that answers use too
// and markAlwaysPresent would change (or that refers to such a copy).
func (c *contract) splitInputs() error {
	in, out := reach(c.defs, c.schemas(true, false)), reach(c.defs, c.schemas(false, true))
	split := map[string]bool{}
	for name := range in {
		if out[name] {
			want, err := c.alwaysPresent(name)
			if err != nil {
				return err
			}
			if !slices.Equal(want, required(c.defs[name])) {
				split[name] = true
			}
		}
	}
	for grew := true; grew; { // and what refers to them
		grew = false
		for name := range in {
			if !out[name] || split[name] {
				continue
			}
			for r := range refs(c.defs[name]) {
				if split[r] {
					split[name], grew = true, true
					break
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(split)) {
		copyName := name + inputSuffix
		if _, taken := c.defs[copyName]; taken {
			return fmt.Errorf("openapi: definition %q exists; it cannot name %s's request form", copyName, name)
		}
		def := clone(c.defs[name]).(map[string]any)
		desc, _ := def["description"].(string)
		def["description"] = strings.TrimSpace(desc + " As sent in requests: " + name + " is the form answers hold.")
		c.defs[copyName] = def
	}
	retarget := func(v any) {
		walk(v, func(m map[string]any) {
			if name := strings.TrimPrefix(fmt.Sprint(m["$ref"]), "#/definitions/"); split[name] {
				m["$ref"] = "#/definitions/" + name + inputSuffix
			}
		})
	}
	for _, body := range c.schemas(true, false) {
		retarget(body)
	}
	for name := range in {
		if !out[name] {
			retarget(c.defs[name])
		}
	}
	for name := range split {
		retarget(c.defs[name+inputSuffix])
	}
	return nil
}

// markAlwaysPresent lists the always-present fields of every definition answers can hold
// as required.
func (c *contract) markAlwaysPresent() error {
	for name := range reach(c.defs, c.schemas(false, true)) {
		if _, own := gatewayDefinitions[name]; own {
			continue // written with its required fields
		}
		want, err := c.alwaysPresent(name)
		if err != nil {
			return err
		}
		def := obj(c.defs[name])
		if len(want) == 0 {
			delete(def, "required")
			continue
		}
		req := make([]any, len(want))
		for i, p := range want {
			req[i] = p
		}
		def["required"] = req
	}
	return nil
}

// alwaysPresent returns the sorted properties of definition name that every answer holding
// it has: its fields without presence, and the ones it already requires (REQUIRED fields,
// which the services always set).
func (c *contract) alwaysPresent(name string) ([]string, error) {
	def := obj(c.defs[name])
	props := obj(def["properties"])
	if len(props) == 0 {
		return nil, nil // an enum, or an object without declared fields
	}
	md := c.messages[name]
	if md == nil {
		return nil, fmt.Errorf("openapi: definition %q is in answers but renders no known message", name)
	}
	want := required(def)
	if md.FullName() == "google.protobuf.Any" {
		want = append(want, "@type")
	}
	for p := range props {
		if fd := md.Fields().ByName(protoreflect.Name(p)); fd != nil && !fd.HasPresence() {
			want = append(want, p)
		}
	}
	slices.Sort(want)
	return slices.Compact(want), nil
}

// required returns a schema's required properties, sorted.
func required(schema any) []string {
	var names []string
	for _, r := range list(obj(schema)["required"]) {
		if s, ok := r.(string); ok {
			names = append(names, s)
		}
	}
	slices.Sort(names)
	return names
}

// reach returns the definitions roots refer to, directly or through other definitions.
func reach(defs map[string]any, roots []any) map[string]bool {
	seen := map[string]bool{}
	var visit func(v any)
	visit = func(v any) {
		for name := range refs(v) {
			if !seen[name] {
				seen[name] = true
				visit(defs[name])
			}
		}
	}
	for _, r := range roots {
		visit(r)
	}
	return seen
}

// refs returns the names of the definitions v refers to itself.
func refs(v any) map[string]bool {
	names := map[string]bool{}
	walk(v, func(m map[string]any) {
		if r, ok := m["$ref"].(string); ok {
			names[strings.TrimPrefix(r, "#/definitions/")] = true
		}
	})
	return names
}

// walk calls f on every object within v, v included.
func walk(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(v)
		for _, e := range v {
			walk(e, f)
		}
	case []any:
		for _, e := range v {
			walk(e, f)
		}
	}
}

// refName returns the definition a schema is: {"$ref": ...}, or {"allOf": [{"$ref": ...}]}
// beside a description (use_allof_for_refs); "" for any other schema.
func refName(schema any) string {
	s := obj(schema)
	if all := list(s["allOf"]); len(all) == 1 {
		s = obj(all[0])
	}
	r, _ := s["$ref"].(string)
	return strings.TrimPrefix(r, "#/definitions/")
}
