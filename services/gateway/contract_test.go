package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

// The REST contract: every answer a gateway test reads through send is held to the OpenAPI
// 3 document the gateway serves (kin-openapi's openapi3filter): its status code is one the
// operation lists (`default` does not count), its media type one that answer is documented
// in, its body valid against the schema, every line of an NDJSON stream against the line
// schema. Not operations, and so not in the document: CORS preflights, and the 404 and 405
// of a path or method that no operation has (held to the error schema instead).

// ndjson is the media type of the gateway's server streams.
const ndjson = "application/x-ndjson"

// eventStream is the media type of the Watch routes: server-sent events.
const eventStream = "text/event-stream"

// contract is the served document, loaded once, and a router over its operations.
var contract = sync.OnceValues(func() (*contractDoc, error) {
	v2, err := openapi.Merged()
	if err != nil {
		return nil, err
	}
	v3, err := openapi.V3(v2) // the bytes /openapi.v3.json serves (testOpenAPI checks)
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(v3)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	// Each line of a stream is one JSON document, decoded as JSON.
	openapi3filter.RegisterBodyDecoder(ndjson, openapi3filter.JSONBodyDecoder)
	// Each event's data is one JSON document, set as the body one at a time.
	openapi3filter.RegisterBodyDecoder(eventStream, openapi3filter.JSONBodyDecoder)
	return &contractDoc{doc: doc, router: router}, nil
})

type contractDoc struct {
	doc    *openapi3.T
	router routers.Router
}

// checkContract fails tb unless the answer (code, header, body) to req is one the served
// document allows.
func checkContract(tb testing.TB, req *http.Request, code int, header http.Header, body []byte) {
	tb.Helper()
	c, err := contract()
	if err != nil {
		tb.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := c.check(req, code, header, body); err != nil {
		tb.Errorf("%s %s answered %d %s against the OpenAPI document: %v\nbody: %.500s",
			req.Method, req.URL.RequestURI(), code, header.Get("Content-Type"), err, body)
	}
}

func (c *contractDoc) check(req *http.Request, code int, header http.Header, body []byte) error {
	switch {
	case req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "":
		return nil // a CORS preflight, answered by rs/cors
	case code == http.StatusBadRequest && header.Get("X-Content-Type-Options") == "" &&
		bytes.HasPrefix(body, []byte("Client sent an HTTP request to an HTTPS server")):
		return nil // net/http's answer to plaintext on the TLS port: it never reached the gateway
	}
	route, params, err := c.router.FindRoute(req)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return c.checkError(req, http.StatusNotFound, code, header, body)
	case errors.Is(err, routers.ErrMethodNotAllowed):
		return c.checkError(req, http.StatusMethodNotAllowed, code, header, body)
	case err != nil:
		return err
	}
	if route.Operation.Responses.Status(code) == nil {
		return fmt.Errorf("status %d is not documented for %s %s (documented: %s)", code, route.Method, route.Path,
			strings.Join(slices.Sorted(maps.Keys(route.Operation.Responses.Map())), ", "))
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 code,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	mediaType, _, _ := mime.ParseMediaType(header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		input.SetBodyBytes(body)
		return openapi3filter.ValidateResponse(context.Background(), input)
	case ndjson:
		if len(body) == 0 {
			return nil // a stream of no messages
		}
		if body[len(body)-1] != '\n' {
			return errors.New("an NDJSON stream must end with a newline")
		}
		for i, line := range bytes.Split(body[:len(body)-1], []byte("\n")) {
			input.SetBodyBytes(line)
			if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		return nil
	case eventStream:
		return c.checkEvents(input, body)
	}
	// HTML, script, style: the media type must be the documented one; the body is no JSON.
	content := route.Operation.Responses.Status(code).Value.Content
	if content.Get(header.Get("Content-Type")) == nil {
		return fmt.Errorf("media type %q is not documented for %d (documented: %s)", header.Get("Content-Type"), code,
			strings.Join(slices.Sorted(maps.Keys(content)), ", "))
	}
	return nil
}

// checkEvents holds a server-sent event stream to the document: every line a field
// (id, event, data), a comment or blank; the data of each unnamed event valid against the
// 200 answer's schema (the message), that of a named one ("error") against the schema the
// answer's x-events gives it; the stream ends with a whole event.
func (c *contractDoc) checkEvents(input *openapi3filter.ResponseValidationInput, body []byte) error {
	if len(body) > 0 && !bytes.HasSuffix(body, []byte("\n\n")) {
		return errors.New("an event stream must end with a blank line")
	}
	event, data := "", []string(nil)
	for i, line := range strings.Split(string(body), "\n") {
		field, value, _ := strings.Cut(line, ": ")
		switch {
		case line == "" && data != nil:
			doc := []byte(strings.Join(data, "\n"))
			if event != "" {
				schema, err := c.eventSchema(input, event)
				if err != nil {
					return fmt.Errorf("%s event before line %d: %w", event, i+1, err)
				}
				var v any
				if err := json.Unmarshal(doc, &v); err != nil {
					return fmt.Errorf("%s event before line %d: %w", event, i+1, err)
				}
				if err := schema.VisitJSON(v, openapi3.VisitAsResponse()); err != nil {
					return fmt.Errorf("%s event before line %d: %w", event, i+1, err)
				}
			} else {
				input.SetBodyBytes(doc)
				if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
					return fmt.Errorf("event before line %d: %w", i+1, err)
				}
			}
			event, data = "", nil
		case line == "" || strings.HasPrefix(line, ":") || field == "id":
		case field == "event":
			event = value
		case field == "data":
			data = append(data, value)
		default:
			return fmt.Errorf("line %d, %q, is no field of an event stream", i+1, line)
		}
	}
	return nil
}

// eventSchema returns the schema of the data of the named event of an event stream, from its
// answer's x-events (a name the document does not list is an error).
func (c *contractDoc) eventSchema(input *openapi3filter.ResponseValidationInput, event string) (*openapi3.Schema, error) {
	resp := input.RequestValidationInput.Route.Operation.Responses.Status(input.Status)
	var events map[string]struct {
		Ref string `json:"$ref"`
	}
	raw, err := json.Marshal(resp.Value.Extensions["x-events"])
	if err == nil {
		err = json.Unmarshal(raw, &events)
	}
	if err != nil {
		return nil, fmt.Errorf("x-events: %w", err)
	}
	ref, ok := events[event]
	if !ok {
		return nil, fmt.Errorf("not documented in x-events (%v)", slices.Sorted(maps.Keys(events)))
	}
	name := ref.Ref[strings.LastIndex(ref.Ref, "/")+1:]
	s := c.doc.Components.Schemas[name]
	if s == nil || s.Value == nil {
		return nil, fmt.Errorf("x-events names %q, which is no schema", ref.Ref)
	}
	return s.Value, nil
}

// checkError checks the answer to a path or method no operation has: status want, and the
// API's error JSON.
func (c *contractDoc) checkError(req *http.Request, want, code int, header http.Header, body []byte) error {
	if code != want {
		return fmt.Errorf("%s %s is no operation of the document: want %d, got %d", req.Method, req.URL.Path, want, code)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return err
	}
	return c.doc.Components.Schemas["rpcStatus"].Value.VisitJSON(v, openapi3.VisitAsResponse())
}

// TestContractCheck: the check itself tells answers the document allows from others.
func TestContractCheck(t *testing.T) {
	t.Parallel()
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	const (
		stock  = `{"stock": {"symbol": "AAPL", "name": "Apple Inc.", "sector": "", "industry": "", "exchange": "", "currency": "USD", "market_cap": "0"}}`
		status = `{"code": 5, "message": "not found", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "STOCK_NOT_FOUND"}]}`
	)
	jsonType := http.Header{"Content-Type": {"application/json"}, "X-Content-Type-Options": {"nosniff"}}
	streamType := http.Header{"Content-Type": {ndjson}, "X-Content-Type-Options": {"nosniff"}}
	eventType := http.Header{"Content-Type": {eventStream}, "X-Content-Type-Options": {"nosniff"}}
	const prices = `{"prices": [], "cleared_symbols": []}`
	tests := []struct {
		name, method, path string
		reqHeader          http.Header
		code               int
		header             http.Header
		body               string
		wantErr            string // "": allowed
	}{
		{"ok", "GET", "/v1/stocks/AAPL", nil, 200, jsonType, stock, ""},
		{"field_missing", "GET", "/v1/stocks/AAPL", nil, 200, jsonType, `{"stock": {"symbol": "AAPL"}}`, "doesn't match schema"},
		{"null_message", "GET", "/v1/stocks/AAPL", nil, 200, jsonType, `{"stock": null}`, "doesn't match schema"},
		{"documented_error", "GET", "/v1/stocks/ZZZZ", nil, 404, jsonType, status, ""},
		{"error_body", "GET", "/v1/stocks/ZZZZ", nil, 404, jsonType, `{"error": "not found"}`, "doesn't match schema"},
		{"undocumented_status", "GET", "/v1/stocks/AAPL", nil, 409, jsonType, status, "status 409 is not documented"},
		{"default_is_not_enough", "GET", "/v1/stocks/AAPL", nil, 500, jsonType, status, "status 500 is not documented"},
		{"wrong_media_type", "GET", "/v1/stocks/AAPL", nil, 200, streamType, stock + "\n", "response header Content-Type has unexpected value"},
		{"stream", "GET", "/v1/stocks/AAPL/prices:stream", nil, 200, streamType,
			`{"result": {"prices": []}}` + "\n" + `{"error": ` + status + "}\n", ""},
		{"stream_line_with_both", "GET", "/v1/stocks/AAPL/prices:stream", nil, 200, streamType,
			`{"result": {"prices": []}, "error": ` + status + "}\n", "line 1"},
		{"stream_error_before_first_line", "GET", "/v1/stocks/AAPL/prices:stream", nil, 404, jsonType, status, ""},
		{"watch", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, eventType,
			": heartbeat\n\ndata: " + prices + "\n\nevent: error\ndata: " + status + "\n\n", ""},
		{"watch_events_with_id", "GET", "/v1/events/stock:watch", nil, 200, eventType,
			"id: c1\ndata: {\"events\": [], \"cursor\": \"c1\"}\n\n", ""},
		{"watch_data_not_the_message", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, eventType,
			"data: {\"prices\": [{\"symbol\": 1}]}\n\n", "event before line 2"},
		{"watch_error_not_a_status", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, eventType,
			"event: error\ndata: {\"code\": \"x\"}\n\n", "error event"},
		{"watch_undocumented_event", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, eventType,
			"event: surprise\ndata: {}\n\n", "not documented in x-events"},
		{"watch_monitoring", "GET", "/monitoring/database:watch", nil, 200, eventType,
			"event: health\ndata: {\"status\": \"SERVING\", \"services\": {}}\n\ndata: {}\n\n", ""},
		{"watch_cut_event", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, eventType, "data: " + prices + "\n", "blank line"},
		{"watch_as_ndjson", "GET", "/v1/prices:watch?symbols=AAPL", nil, 200, streamType, `{"result": ` + prices + "}\n", "Content-Type"},
		{"watch_error_before_first_event", "GET", "/v1/portfolios/7:watch", nil, 404, jsonType, status, ""},
		{"status_page", "GET", "/", nil, 200, http.Header{"Content-Type": {"text/html; charset=utf-8"}}, "<html>", ""},
		{"status_page_as_json", "GET", "/", nil, 200, jsonType, "{}", "Content-Type has unexpected value"},
		{"favicon", "GET", "/favicon.ico", nil, 200, http.Header{"Content-Type": {"image/x-icon"}}, "\x00\x00\x01\x00", ""},
		{"no_such_path", "GET", "/v1/nothing", nil, 404, jsonType, status, ""},
		{"no_such_path_not_404", "GET", "/v1/nothing", nil, 200, jsonType, status, "want 404"},
		{"no_such_method", "PUT", "/v1/stocks", nil, 405, jsonType, `{"code": 12, "message": "", "details": []}`, ""},
		{"preflight", "OPTIONS", "/v1/portfolios", http.Header{"Access-Control-Request-Method": {"POST"}}, 204, http.Header{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tt.method, "http://gateway.test"+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			maps.Copy(req.Header, tt.reqHeader)
			err = c.check(req, tt.code, tt.header, []byte(tt.body))
			if tt.wantErr == "" && err != nil {
				t.Errorf("check() = %v, want the answer allowed", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("check() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// TestContractRoutes: the router the contract check uses finds every operation of the
// document by a concrete path, custom verbs (":next", ":batchGet") included, so no answer
// is held to the wrong operation.
func TestContractRoutes(t *testing.T) {
	t.Parallel()
	c, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for path, item := range c.doc.Paths.Map() {
		concrete := path
		for _, p := range item.Parameters {
			concrete = strings.ReplaceAll(concrete, "{"+p.Value.Name+"}", "X1")
		}
		for method, op := range item.Operations() {
			u := concrete
			for _, p := range op.Parameters {
				if p.Value.In == openapi3.ParameterInPath {
					u = strings.ReplaceAll(u, "{"+p.Value.Name+"}", "X1")
				}
			}
			req, err := http.NewRequest(method, "http://gateway.test"+u, nil)
			if err != nil {
				t.Fatal(err)
			}
			route, _, err := c.router.FindRoute(req)
			if err != nil || route.Path != path || route.Method != method {
				t.Errorf("%s %s: routed to %v (err %v), want %s %s", method, u, route, err, method, path)
			}
			n++
		}
	}
	if n < 30 {
		t.Errorf("%d operations routed, want every one of the API's", n)
	}
}
