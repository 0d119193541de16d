package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// errorBody is google.rpc.Status as the gateway renders it.
type errorBody struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

// wantError fails unless r is HTTP status code with a JSON error of gRPC code grpcCode.
func wantError(tb testing.TB, r response, code, grpcCode int) errorBody {
	tb.Helper()
	if r.code != code || r.header.Get("Content-Type") != "application/json" {
		tb.Fatalf("answer = %v (Content-Type %q), want %d application/json", r, r.header.Get("Content-Type"), code)
	}
	body := decode[errorBody](tb, r)
	if body.Code != grpcCode || body.Message == "" || body.Details == nil {
		tb.Errorf("error body = %+v, want code %d, a message and details", body, grpcCode)
	}
	if infos := body.errorInfos(); len(infos) != 1 || infos[0]["reason"] == "" || infos[0]["domain"] != apierr.Domain {
		tb.Errorf("error body = %+v, want exactly one google.rpc.ErrorInfo with a reason in domain %s", body, apierr.Domain)
	}
	return body
}

// errorInfos returns the google.rpc.ErrorInfo entries of details.
func (b errorBody) errorInfos() []map[string]any {
	var out []map[string]any
	for _, d := range b.Details {
		if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" {
			out = append(out, d)
		}
	}
	return out
}

// reason returns the reason of the body's first ErrorInfo.
func (b errorBody) reason() string {
	if infos := b.errorInfos(); len(infos) > 0 {
		reason, _ := infos[0]["reason"].(string)
		return reason
	}
	return ""
}

// testBadRequests: client mistakes get a clear 4xx in JSON, never a 500.
func testBadRequests(t *testing.T, e *env) {
	tests := []struct {
		name         string
		method, path string
		body         string
		wantHTTP     int
		wantCode     int // gRPC code in the body
		wantMessage  string
		wantReason   apierr.Reason
	}{
		{"unknown_field", http.MethodPost, "/v1/stocks:upsert", `{"stocks":[],"limit_prise":"1"}`, 400, 3, `unknown field "limit_prise"`, apierr.MalformedRequest},
		{"malformed_json", http.MethodPost, "/v1/stocks:upsert", `{"stocks":[`, 400, 3, "", apierr.MalformedRequest},
		{"wrong_type", http.MethodPost, "/v1/stocks:upsert", `{"stocks":[{"symbol":"ZZZ","market_cap":true}]}`, 400, 3, "invalid value for int64 field", apierr.MalformedRequest},
		{"wrong_type_in_query", http.MethodGet, "/v1/stocks?page_size=many", "", 400, 3, "page_size", apierr.MalformedRequest},
		{"unknown_path", http.MethodGet, "/v1/nothing/here", "", 404, 5, "no route for GET /v1/nothing/here", apierr.RouteNotFound},
		{"unknown_top_level_path", http.MethodGet, "/robots.txt", "", 404, 5, "", apierr.RouteNotFound},
		{"wrong_method", http.MethodPut, "/v1/stocks/AAPL", `{}`, 405, 12, "method PUT not allowed", apierr.MethodNotAllowed},
		{"wrong_method_on_own_route", http.MethodPost, "/health", "", 405, 12, "", apierr.MethodNotAllowed},
		{"form_body_is_no_get", http.MethodPost, "/v1/stocks", "page_size=1", 405, 12, "", apierr.MethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r response
			if tt.name == "form_body_is_no_get" {
				r = e.gw.do(t, tt.method, tt.path, tt.body, "Content-Type", "application/x-www-form-urlencoded")
			} else {
				r = e.gw.do(t, tt.method, tt.path, tt.body)
			}
			body := wantError(t, r, tt.wantHTTP, tt.wantCode)
			if !strings.Contains(body.Message, tt.wantMessage) {
				t.Errorf("message = %q, want it to contain %q", body.Message, tt.wantMessage)
			}
			if got := body.reason(); got != string(tt.wantReason) {
				t.Errorf("reason = %q, want %q", got, tt.wantReason)
			}
		})
	}
}

// testBodyTooLarge: bodies over MAX_REQUEST_BYTES get 413, whether their length is declared
// (refused before reading) or not (chunked: cut off at the limit).
func testBodyTooLarge(t *testing.T, e *env) {
	const limit = 4 << 20 // the default MAX_REQUEST_BYTES
	var big bytes.Buffer
	big.WriteString(`{"stocks":[`)
	for i := 0; big.Len() < limit+(1<<20); i++ {
		fmt.Fprintf(&big, `{"symbol":"S%06d","name":"%s"},`, i, strings.Repeat("x", 100))
	}
	big.WriteString(`{"symbol":"LAST"}]}`)
	tests := []struct {
		name    string
		chunked bool
	}{
		{"declared_length", false},
		{"chunked", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body io.Reader = bytes.NewReader(big.Bytes())
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.gw.url+"/v1/stocks:upsert", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/json")
			r := e.gw.send(t, req)
			body413 := wantError(t, r, http.StatusRequestEntityTooLarge, 8)
			if want := fmt.Sprintf("request body larger than %d bytes", limit); body413.Message != want {
				t.Errorf("message = %q, want %q", body413.Message, want)
			}
			if got := body413.reason(); got != string(apierr.RequestTooLarge) {
				t.Errorf("reason = %q, want %s", got, apierr.RequestTooLarge)
			}
		})
	}
}

// testValidationDetails: a service's field violations reach the client in details, beside
// the ErrorInfo.
func testValidationDetails(t *testing.T, e *env) {
	body := wantError(t, e.gw.do(t, http.MethodGet, "/v1/stocks/not-a-symbol", ""), http.StatusBadRequest, 3)
	if len(body.Details) != 2 || body.reason() != string(apierr.InvalidField) {
		t.Fatalf("details = %v, want an INVALID_FIELD google.rpc.ErrorInfo and a google.rpc.BadRequest", body.Details)
	}
	d := body.Details[1]
	if d["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
		t.Errorf("details[1][@type] = %v, want type.googleapis.com/google.rpc.BadRequest", d["@type"])
	}
	violations, _ := d["field_violations"].([]any)
	if len(violations) != 1 {
		t.Fatalf("field_violations = %v, want one", d["field_violations"])
	}
	v := violations[0].(map[string]any)
	if diff := cmp.Diff("symbol", v["field"]); diff != "" || !strings.Contains(v["description"].(string), "A-Z") {
		t.Errorf("violation = %v, want field \"symbol\" and the symbol rule", v)
	}
}
