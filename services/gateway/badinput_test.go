package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/go-cmp/cmp"

	"github.com/pgfleet/pgfleet/pkg/auth"
)

// The generated bad-input pass (issue 11, "Contract tests"): every operation of the OpenAPI
// document the gateway serves is called with requests derived from the document alone:
//
//   - the valid request: path parameters from the fixture (an existing portfolio of the
//     caller, AAPL, ...), required query parameters, a body holding the schema's required
//     properties with sample values (badInputSamples), as the user or, where the user
//     is refused (403), as an admin, so that the variants below reach the services'
//     validation and handlers, not only the token check;
//   - variants of it, one thing wrong in each: every path parameter, every query parameter
//     of the operation, and every property of the body (nested ones too) given a wrong
//     JSON type, an out-of-range or huge number, a bad decimal, a NUL byte, a control
//     character, invalid UTF-8, a long or 1 MiB string, left out (when required), or
//     joined by an unknown one; filters naming each field of the listed resource with such
//     literals; damaged page tokens; whole bodies that are not JSON, empty, or followed by
//     more data. Each is sent with the caller's token, and all but the variants of single
//     body properties also without one.
//
// Every answer must be below 500 (the fleet is up: a 503 is a defect too), have a status the
// document lists for the operation, and match the document as checkContract holds every
// answer to it; an error must be the API's error JSON with one ErrorInfo. The valid requests
// run first, one at a time (some move money or create rows; each must succeed); the
// variants then run a few at a time, and must leave the data they could reach exactly as it
// was. A variant of a write carries the valid request's request_id, so one a service takes
// for valid is a repeat that changes nothing. Failures are reported as one table, so the
// whole picture is visible at once. Nothing is random: the same requests in the same order
// every run.

// badInputWorkers is how many variants are in flight at once.
const badInputWorkers = 4

// badInputUser is the ordinary caller of the pass; badInputAdmin its admin.
const (
	badInputUser  = "badinput@example.com"
	badInputAdmin = "badinput-admin@pgfleet.test"
)

// testBadInput runs the generated bad-input pass against the fleet and its gateway.
func testBadInput(t *testing.T, e *env) {
	doc := servedDocument(t, e.gw)
	fx := newBadInputFixture(t, e)
	ops := operations(doc)
	// A client of its own, which shows a redirect instead of following it.
	pass := &badInputPass{url: e.gw.url, fx: fx, client: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	t.Cleanup(pass.client.CloseIdleConnections)

	// The valid requests, in a fixed order: GETs, then writes (deletions last).
	var valid []outcome
	for _, o := range ops {
		out := o.sendValid(t, pass)
		valid = append(valid, out)
		if out.code/100 != 2 {
			t.Errorf("valid %s %s as %q = %d %.300s; want 2xx (fix the sample, or the bad-input variants test nothing)",
				o.method, out.call.path, out.call.as, out.code, out.body)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	before := fx.snapshot(t, e.gw)
	var calls []*call
	for _, o := range ops {
		calls = append(calls, o.variants(fx)...)
	}
	results := pass.sendAll(t, calls)
	after := fx.snapshot(t, e.gw)

	all := slices.Concat(valid, results)
	reportBadInput(t, len(ops), len(valid), all)
	if diff := cmp.Diff(before, after); diff != "" {
		var accepted []string
		for _, r := range results {
			if r.code/100 == 2 {
				accepted = append(accepted, fmt.Sprintf("  %s %s [%s] as %q", r.call.op.method, r.call.op.path, r.call.mutation, r.call.as))
			}
		}
		t.Errorf("the bad-input variants changed data (-before +after):\n%s\nvariants answered 2xx:\n%s", diff, strings.Join(accepted, "\n"))
	}
}

// servedDocument loads the OpenAPI 3 document the gateway serves. (A gateway serving only
// OpenAPI 2 would take openapi2conv.ToV3 of /openapi.json here; the rest reads OpenAPI 3.)
func servedDocument(t *testing.T, g *testGateway) *openapi3.T {
	t.Helper()
	r := g.do(t, http.MethodGet, "/openapi.v3.json", "")
	if r.code != http.StatusOK {
		t.Fatalf("GET /openapi.v3.json = %v", r)
	}
	doc, err := openapi3.NewLoader().LoadFromData(r.body)
	if err != nil {
		t.Fatalf("load /openapi.v3.json: %v", err)
	}
	return doc
}

// badInputFixture is the data the valid requests name, made for the pass.
type badInputFixture struct {
	tokens map[string][]string // identity ("user", "admin") -> Authorization header pair

	userID, portfolio string
	session           string // in progress: answered, asked for its next question
	sessionQuestion   string // a question of session
	sessionToComplete string
	question          string // a seed question, read
	questionToChange  string // updated, then deleted
	ingestionRun      string // a queued run of job bad-input-job, read
	runToCancel       string // another, cancelled
}

// Stocks made for the pass: one written by the valid upserts, one deleted.
const (
	badInputStock   = "ZZBAD"
	badInputDeleted = "ZZDEL"
)

func newBadInputFixture(t *testing.T, e *env) *badInputFixture {
	t.Helper()
	fx := &badInputFixture{tokens: map[string][]string{
		"user":  bearer(t, badInputUser),
		"admin": bearer(t, badInputAdmin, auth.RoleAdmin),
	}}
	user, admin := fx.tokens["user"], fx.tokens["admin"]
	fx.portfolio = newPortfolio(t, e, badInputUser, "100000")
	fx.userID = decode[struct {
		Portfolio struct {
			UserID string `json:"user_id"`
		} `json:"portfolio"`
	}](t, e.gw.do(t, http.MethodGet, "/v1/portfolios/"+fx.portfolio, "", user...)).Portfolio.UserID

	mustOK := func(r response, what string) response {
		t.Helper()
		if r.code != http.StatusOK {
			t.Fatalf("%s = %v", what, r)
		}
		return r
	}
	mustOK(e.gw.do(t, http.MethodPost, "/v1/stocks:upsert", fmt.Sprintf(
		`{"stocks":[{"symbol":%q,"name":"Bad Input Corp."},{"symbol":%q,"name":"Deleted Corp."}]}`,
		badInputStock, badInputDeleted), admin...), "upsert the pass's stocks")

	type session struct {
		Session struct {
			ID        string `json:"id"`
			Questions []struct {
				QuestionID string `json:"question_id"`
			} `json:"questions"`
		} `json:"session"`
	}
	start := `{"criteria":{"categories":["SQL"],"count":2}}`
	s := decode[session](t, mustOK(e.gw.do(t, http.MethodPost, "/v1/sessions", start, user...), "start a session")).Session
	if len(s.Questions) == 0 {
		t.Fatalf("session %s has no questions", s.ID)
	}
	fx.session, fx.sessionQuestion = s.ID, s.Questions[0].QuestionID
	fx.sessionToComplete = decode[session](t, mustOK(e.gw.do(t, http.MethodPost, "/v1/sessions", start, user...),
		"start a second session")).Session.ID

	type questions struct {
		Questions []struct {
			ID string `json:"id"`
		} `json:"questions"`
	}
	fx.question = decode[questions](t, mustOK(e.gw.do(t, http.MethodGet, "/v1/questions?page_size=1", "", admin...),
		"list questions")).Questions[0].ID
	fx.questionToChange = decode[struct {
		Question struct {
			ID string `json:"id"`
		} `json:"question"`
	}](t, mustOK(e.gw.do(t, http.MethodPost, "/v1/questions", `{"key":"bad-input-victim","text":"Changed, then deleted?",
		"category":"Bad input","difficulty":1,"rubric":{"points":[{"description":"Yes","weight":1,"keywords":["yes"]}]}}`, admin...),
		"create the question to change")).Question.ID

	// Ingestion: a job read, updated and run; one deleted; two queued runs (the fleet runs no
	// leader), one read and one cancelled.
	for _, id := range []string{"bad-input-job", "bad-input-del"} {
		mustOK(e.gw.do(t, http.MethodPost, "/v1/ingestionJobs", `{"job_id":"`+id+`","source":"INGESTION_SOURCE_FILES","schedule":"@daily"}`, admin...),
			"create ingestion job "+id)
	}
	type run struct {
		Run struct {
			RunID string `json:"run_id"`
		} `json:"run"`
	}
	fx.ingestionRun = decode[run](t, mustOK(e.gw.do(t, http.MethodPost, "/v1/ingestionJobs/bad-input-job:run", `{}`, admin...), "run")).Run.RunID
	fx.runToCancel = decode[run](t, mustOK(e.gw.do(t, http.MethodPost, "/v1/ingestionJobs/bad-input-job:run", `{}`, admin...), "run")).Run.RunID
	return fx
}

// pathSample is the valid value of path parameter name of operation id.
func (fx *badInputFixture) pathSample(id, name string) string {
	switch id + " " + name {
	case "StockService_DeleteStock symbol":
		return badInputDeleted
	case "QuestionBankService_UpdateQuestion question_id", "QuestionBankService_DeleteQuestion question_id":
		return fx.questionToChange
	case "InterviewService_CompleteSession session_id":
		return fx.sessionToComplete
	case "StockService_DeleteIngestionJob job_id":
		return "bad-input-del"
	case "StockService_CancelIngestionRun run_id":
		return fx.runToCancel
	}
	switch name {
	case "portfolio_id":
		return fx.portfolio
	case "user_id":
		return fx.userID
	case "session_id":
		return fx.session
	case "question_id":
		return fx.question
	case "symbol":
		return "AAPL"
	case "job_id":
		return "bad-input-job"
	case "run_id":
		return fx.ingestionRun
	}
	return ""
}

// bodySample is the valid value of body property name of operation id: the schema says a
// symbol is a string, not which one exists. Properties of an operation's body that are
// required or listed in badInputOptional are sent; the others only in variants.
func (fx *badInputFixture) bodySample(id, name string) (any, bool) {
	switch id + " " + name {
	case "StockService_UpsertStocks symbol", "StockService_UpsertRecommendations symbol", "StockService_IngestPrices symbol":
		return badInputStock, true
	case "PortfolioService_CreatePortfolio name":
		return "Bad input", true
	case "StockService_CreateIngestionJob job_id":
		return "bad-input-new", true
	case "StockService_CreateIngestionJob source":
		return "INGESTION_SOURCE_FILES", true
	case "StockService_CreateIngestionJob schedule":
		return "@daily", true
	case "PortfolioService_ListPortfolioValues start_time":
		return time.Now().UTC().AddDate(0, 0, -30).Format(time.RFC3339), true
	case "PortfolioService_ListPortfolioValues end_time":
		return time.Now().UTC().AddDate(0, 0, 2).Format(time.RFC3339), true
	}
	switch name {
	case "request_id":
		return "bad-input-" + id, true
	case "question_id":
		return fx.sessionQuestion, true
	}
	v, ok := badInputSamples[name]
	return v, ok
}

// badInputSamples are the valid values of body properties by name, where the schema's type
// is not enough.
var badInputSamples = map[string]any{
	"symbol":       "AAPL",
	"quantity":     "1",
	"amount":       "1",
	"name":         "Bad Input Corp.",
	"email":        "badinput-new@example.com",
	"display_name": "Bad Input",
	"currency":     "USD",
	"key":          "bad-input-q",
	"text":         "What does a left join return?",
	"category":     "SQL",
	"difficulty":   1,
	"description":  "Unmatched rows too",
	"weight":       1,
	"keywords":     []any{"unmatched"},
	"answer":       "Only matching rows",
	"criteria":     map[string]any{"categories": []any{"SQL"}, "count": 1},
	"source":       "bad-input",
	"open":         "1.5", "high": "1.5", "low": "1.5", "close": "1.5",
	"volume":   "1",
	"time":     "2030-01-02T00:00:00Z",
	"interval": "INTERVAL_WEEK",
}

// badInputOptional are optional properties the valid requests send.
var badInputOptional = map[string]bool{"request_id": true, "criteria": true, "display_name": true, "prices": true}

// badInputBodies are the valid bodies the schema cannot lead to: an update names the
// fields it changes by the fields present.
var badInputBodies = map[string]any{
	"QuestionBankService_UpdateQuestion": map[string]any{"text": "Changed?"},
	"StockService_UpdateIngestionJob":    map[string]any{"paused": true},
}

// snapshot reads what the variants could change: the caller's portfolios, ledger, trades,
// sessions and user; every stock, recommendation and question, and AAPL's latest price. The
// pass's own stock and question are kept by key only: the valid upserts write them, and so
// may variants that are other spellings of a valid request (a number as a JSON string).
func (fx *badInputFixture) snapshot(t *testing.T, g *testGateway) map[string]any {
	t.Helper()
	reads := []struct{ as, path string }{
		{"user", "/v1/portfolios/" + fx.portfolio},
		{"user", "/v1/portfolios/" + fx.portfolio + "/cash-movements?page_size=1000"},
		{"user", "/v1/portfolios/" + fx.portfolio + "/trades?page_size=1000"},
		{"user", "/v1/portfolios?page_size=1000"},
		{"user", "/v1/sessions?page_size=1000"},
		{"user", "/v1/users/" + fx.userID},
		{"", "/v1/stocks?page_size=1000"},
		{"", "/v1/recommendations?page_size=1000"},
		{"", "/v1/prices:latest?symbols=AAPL&symbols=" + badInputStock},
		{"admin", "/v1/questions?page_size=1000"},
		{"admin", "/v1/ingestionJobs?page_size=1000"},
		{"admin", "/v1/ingestionRuns?page_size=1000"},
	}
	var scrub func(v any) any
	scrub = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			if v["symbol"] == badInputStock {
				return map[string]any{"symbol": v["symbol"], "source": v["source"]}
			}
			if v["key"] == badInputSamples["key"] {
				return map[string]any{"key": v["key"]}
			}
			if id, _ := v["job_id"].(string); v["schedule"] != nil && (id == "bad-input-job" || id == "bad-input-new") {
				return map[string]any{"job_id": id} // the valid update and create write them
			}
			out := map[string]any{}
			for k, e := range v {
				out[k] = scrub(e)
			}
			return out
		case []any:
			out := make([]any, len(v))
			for i, e := range v {
				out[i] = scrub(e)
			}
			return out
		}
		return v
	}
	snap := map[string]any{}
	for _, rd := range reads {
		r := g.do(t, http.MethodGet, rd.path, "", fx.tokens[rd.as]...)
		var v any
		if r.code != http.StatusOK || json.Unmarshal(r.body, &v) != nil {
			t.Fatalf("GET %s = %v", rd.path, r)
		}
		snap[rd.path] = scrub(v)
	}
	return snap
}

// operation is one operation of the document, and its valid request once sent.
type operation struct {
	method, path, id string
	op               *openapi3.Operation
	params           []*openapi3.Parameter // path and query, by name
	body             *openapi3.Schema      // nil: no body
	secured          bool

	as        string            // identity the valid request succeeded as ("" for public operations)
	pathVals  map[string]string // valid path parameters
	query     []kv              // valid query parameters
	validBody any               // generic JSON
	pageToken string            // a next_page_token of the operation, if it pages
	listed    *openapi3.Schema  // the listed resource of a list operation
}

type kv struct{ k, v string }

// operations lists the document's operations, reads first, then writes, deletions last.
func operations(doc *openapi3.T) []*operation {
	var ops []*operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := &operation{method: method, path: path, id: op.OperationID, op: op,
				secured: len(doc.Security) > 0}
			if op.Security != nil {
				o.secured = len(*op.Security) > 0
			}
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				o.params = append(o.params, p.Value)
			}
			slices.SortFunc(o.params, func(a, b *openapi3.Parameter) int { return strings.Compare(a.Name, b.Name) })
			if op.RequestBody != nil {
				if mt := op.RequestBody.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					o.body = resolved(mt.Schema)
				}
			}
			if ok := op.Responses.Status(http.StatusOK); ok != nil {
				if mt := ok.Value.Content.Get("application/json"); mt != nil && mt.Schema != nil {
					o.listed = listedResource(resolved(mt.Schema))
				}
			}
			ops = append(ops, o)
		}
	}
	rank := map[string]int{http.MethodGet: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 3, http.MethodDelete: 4}
	slices.SortFunc(ops, func(a, b *operation) int {
		if c := rank[a.method] - rank[b.method]; c != 0 {
			return c
		}
		return strings.Compare(a.path, b.path)
	})
	return ops
}

// resolved is the schema s stands for: a property documented as {"allOf": [{"$ref": ...}],
// "description": ...} is its one allOf.
func resolved(s *openapi3.SchemaRef) *openapi3.Schema {
	if s == nil || s.Value == nil {
		return nil
	}
	v := s.Value
	if len(v.AllOf) == 1 && (v.Type == nil || len(*v.Type) == 0) && len(v.Properties) == 0 {
		return v.AllOf[0].Value
	}
	return v
}

// listedResource returns the item schema of the one array of objects in a list response
// that also has next_page_token, or nil.
func listedResource(s *openapi3.Schema) *openapi3.Schema {
	if s == nil || s.Properties["next_page_token"] == nil {
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		if p := s.Properties[name]; p.Value.Type.Is(openapi3.TypeArray) && p.Value.Items != nil {
			if item := resolved(p.Value.Items); item != nil && item.Type.Is(openapi3.TypeObject) {
				return item
			}
		}
	}
	return nil
}

// sendValid sends the operation's valid request, as the user, or as an admin if the user
// is refused, and remembers it; for a list it also keeps a page token.
func (o *operation) sendValid(t *testing.T, pass *badInputPass) outcome {
	t.Helper()
	fx := pass.fx
	o.pathVals = map[string]string{}
	for _, p := range o.params {
		switch {
		case p.In == openapi3.ParameterInPath:
			v := fx.pathSample(o.id, p.Name)
			if v == "" && p.Schema != nil && len(p.Schema.Value.Enum) > 0 {
				v = fmt.Sprint(p.Schema.Value.Enum[0])
			}
			if v == "" {
				t.Fatalf("%s %s: no sample for path parameter %q", o.method, o.path, p.Name)
			}
			o.pathVals[p.Name] = v
		case p.In == openapi3.ParameterInQuery && p.Required:
			v := any("AAPL") // the required ones: symbols, or a sample's (interval)
			if sample, ok := fx.bodySample(o.id, p.Name); ok {
				v = sample
			}
			o.query = append(o.query, kv{p.Name, fmt.Sprint(v)})
		case p.In == openapi3.ParameterInQuery:
			if v, ok := fx.bodySample(o.id, p.Name); ok && badInputOptional[p.Name] {
				o.query = append(o.query, kv{p.Name, fmt.Sprint(v)})
			}
		}
	}
	if o.body != nil {
		if b, ok := badInputBodies[o.id]; ok {
			o.validBody = b
		} else {
			o.validBody = sampleValue(fx, o.id, "", o.body)
		}
	}
	ids := []string{""}
	if o.secured {
		ids = []string{"user", "admin"}
	}
	var out outcome
	for _, as := range ids {
		o.as = as
		out = pass.send(t, o.call("valid"))
		if out.code != http.StatusForbidden {
			break
		}
	}
	if o.hasParam("page_token") && out.code == http.StatusOK {
		c := o.call("page_size=1")
		c.path = o.url(o.pathVals, append(slices.Clone(o.query), kv{"page_size", "1"}))
		var page struct {
			Next string `json:"next_page_token"`
		}
		_ = json.Unmarshal(pass.send(t, c).body, &page)
		o.pageToken = page.Next
	}
	return out
}

func (o *operation) hasParam(name string) bool {
	return slices.ContainsFunc(o.params, func(p *openapi3.Parameter) bool { return p.Name == name })
}

// sampleValue builds a valid value of schema s for property name: the sample if there is
// one, else from the schema, with an object's required (and badInputOptional) properties.
func sampleValue(fx *badInputFixture, id, name string, s *openapi3.Schema) any {
	if v, ok := fx.bodySample(id, name); ok {
		return v
	}
	switch {
	case s.Type.Is(openapi3.TypeObject) || len(s.Properties) > 0:
		m := map[string]any{}
		for _, p := range slices.Sorted(maps.Keys(s.Properties)) {
			ps := resolved(s.Properties[p])
			if ps.ReadOnly || (!slices.Contains(s.Required, p) && !badInputOptional[p]) {
				continue
			}
			if _, ok := fx.bodySample(id, p); !ok && badInputOptional[p] && !slices.Contains(s.Required, p) &&
				!ps.Type.Is(openapi3.TypeArray) {
				continue
			}
			m[p] = sampleValue(fx, id, p, ps)
		}
		return m
	case s.Type.Is(openapi3.TypeArray):
		return []any{sampleValue(fx, id, name, resolved(s.Items))}
	case len(s.Enum) > 0:
		for _, v := range s.Enum {
			if str, ok := v.(string); ok && !strings.HasSuffix(str, "_UNSPECIFIED") {
				return str
			}
		}
		return s.Enum[0]
	case s.Type.Is(openapi3.TypeInteger):
		return 1
	case s.Type.Is(openapi3.TypeNumber):
		return 0.5
	case s.Type.Is(openapi3.TypeBoolean):
		return true
	case s.Format == "date-time":
		return "2030-01-02T00:00:00Z"
	case s.Format == "int64":
		return "1"
	}
	return "x"
}

// call is one request of the pass.
type call struct {
	op       *operation
	mutation string // what differs from the valid request
	as       string // identity: "", "user", "admin", or "bad-token"
	path     string // escaped path and query
	body     []byte
	hasBody  bool
	ctype    string // Content-Type; "" sends none
}

// call returns the valid request, named mutation, for the variants to change.
func (o *operation) call(mutation string) *call {
	c := &call{op: o, mutation: mutation, as: o.as, path: o.url(o.pathVals, o.query)}
	if o.validBody != nil {
		c.body, c.hasBody, c.ctype = encodeJSON(o.validBody), true, "application/json"
	}
	return c
}

// url renders the operation's path with path parameters pathVals and query parameters q,
// each escaped (so a NUL byte is sent as %00, an invalid UTF-8 byte as %FF).
func (o *operation) url(pathVals map[string]string, q []kv) string {
	p := o.path
	for name, v := range pathVals {
		p = strings.ReplaceAll(p, "{"+name+"}", url.PathEscape(v))
	}
	for i, x := range q {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		p += sep + url.QueryEscape(x.k) + "=" + url.QueryEscape(x.v)
	}
	return p
}

// raw is JSON text sent as it is: numbers beyond float64, invalid UTF-8, broken syntax.
type raw string

// encodeJSON writes v (generic JSON, with raw tokens) with sorted keys.
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	var enc func(v any)
	enc = func(v any) {
		switch v := v.(type) {
		case raw:
			b.WriteString(string(v))
		case map[string]any:
			b.WriteByte('{')
			for i, k := range slices.Sorted(maps.Keys(v)) {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(k)
				b.WriteByte(':')
				enc(v[k])
			}
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range v {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(e)
			}
			b.WriteByte(']')
		default:
			j, err := json.Marshal(v)
			if err != nil {
				panic(err)
			}
			b.Write(j)
		}
	}
	enc(v)
	return b.Bytes()
}

// set returns a copy of tree with the value at path (map keys and slice indexes) replaced
// by v, or removed if del.
func set(tree any, path []any, v any, del bool) any {
	if len(path) == 0 {
		return v
	}
	switch t := tree.(type) {
	case map[string]any:
		m := maps.Clone(t)
		k := path[0].(string)
		if del && len(path) == 1 {
			delete(m, k)
			return m
		}
		m[k] = set(m[k], path[1:], v, del)
		return m
	case []any:
		s := slices.Clone(t)
		s[path[0].(int)] = set(s[path[0].(int)], path[1:], v, del)
		return s
	}
	panic(fmt.Sprintf("set: %v at %T", path, tree))
}

// Values of the wrong kind, out of range or at a boundary, by the kind expected.
var (
	mib       = strings.Repeat("x", 1<<20)
	long      = strings.Repeat("A", 10000)
	badString = []struct {
		name string
		v    any
	}{
		{"NUL", "\x00"},
		{"embedded NUL", "a\x00b"},
		{"control U+0001", "\x01"},
		{"escape sequence", "\x1b[31mred"},
		{"DEL", "\x7f"},
		{"C1 control U+0085", "\u0085"},
		{"invalid UTF-8 FF", raw("\"a\xffb\"")},
		{"invalid UTF-8 C328", raw("\"\xc3\x28\"")},
		{"lone surrogate", raw(`"\ud800"`)},
		{"10000 characters", long},
		{"1 MiB", mib},
	}
	badDecimal = []string{"99999999999999999999.9999999", "100000000000000", "99999999999999.999999",
		"0.0000001", "1e400", "1e5", "-0", "NaN", "Infinity", "-1", "0", "1,5", " 1", "0x10", ".", "1.2.3"}
	badTime   = []string{"abc", "0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "10000-01-01T00:00:00Z", "2024-02-30T00:00:00Z", "1e400"}
	badInt64  = []any{"abc", "99999999999999999999", "-9223372036854775808", "9223372036854775807", "1.5", "1e3", raw("1.5"), "-1", "0"}
	badInt32  = []any{"abc", raw("1.5"), raw("2147483648"), raw("-2147483649"), raw("99999999999999999999"), raw("1e400"), raw("-1"), raw("0"), raw("2147483647"), true}
	badNumber = []any{"abc", raw("1e400"), raw("-1e400"), "NaN", "Infinity", "-Infinity", raw("-1"), raw("2"), true}
	badType   = map[string][]any{ // values of other JSON types
		openapi3.TypeString:  {raw("1"), true, map[string]any{}, []any{}},
		openapi3.TypeInteger: {map[string]any{}, []any{}},
		openapi3.TypeNumber:  {map[string]any{}, []any{}},
		openapi3.TypeObject:  {"x", []any{}, raw("1"), true},
		openapi3.TypeArray:   {"x", map[string]any{}, raw("1")},
	}
)

// valueVariants are the wrong values of a property of schema s documented by desc.
func valueVariants(s *openapi3.Schema, name, desc string) []struct {
	name string
	v    any
} {
	type variant = struct {
		name string
		v    any
	}
	var out []variant
	add := func(prefix string, vs ...any) {
		for _, v := range vs {
			out = append(out, variant{fmt.Sprintf("%s %.40q", prefix, fmt.Sprint(v)), v})
		}
	}
	kind := ""
	for _, k := range []string{openapi3.TypeString, openapi3.TypeInteger, openapi3.TypeNumber, openapi3.TypeObject, openapi3.TypeArray} {
		if s.Type.Is(k) {
			kind = k
		}
	}
	if kind == "" && len(s.Enum) > 0 {
		kind = openapi3.TypeString
	}
	switch {
	case len(s.Enum) > 0, s.Format == "int64": // a number is one of their JSON forms
		add("wrong type", true, map[string]any{}, []any{})
	default:
		add("wrong type", badType[kind]...)
	}
	switch {
	case len(s.Enum) > 0:
		add("enum", "NOPE", raw("999"), raw("-1"), raw("1.5"), "")
	case kind == openapi3.TypeString && s.Format == "date-time":
		for _, v := range badTime {
			add("time", v)
		}
	case kind == openapi3.TypeString && s.Format == "int64":
		add("int64", badInt64...)
	case kind == openapi3.TypeString && (strings.Contains(desc, "decimal") || strings.HasSuffix(name, "_price")):
		for _, v := range badDecimal {
			add("decimal", v)
		}
	case kind == openapi3.TypeInteger:
		add("int32", badInt32...)
	case kind == openapi3.TypeNumber:
		add("number", badNumber...)
	}
	if kind == openapi3.TypeString {
		for _, b := range badString {
			out = append(out, variant{b.name, b.v})
		}
	}
	return out
}

// bodyVariants adds a variant of base for each wrong value of each property of the object
// of schema s at path at (base holds an object there).
func bodyVariants(fx *badInputFixture, id string, base any, at []any, s *openapi3.Schema, add func(string, any)) {
	where := func(path []any) string {
		var b strings.Builder
		for _, p := range path {
			switch p := p.(type) {
			case string:
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(p)
			case int:
				fmt.Fprintf(&b, "[%d]", p)
			}
		}
		return b.String()
	}
	add(where(append(at, "zz_unknown"))+": unknown property", set(base, append(slices.Clone(at), "zz_unknown"), raw("1"), false))
	cur, _ := get(base, at).(map[string]any)
	for _, name := range slices.Sorted(maps.Keys(s.Properties)) {
		ref := s.Properties[name]
		ps := resolved(ref)
		if ps == nil || ps.ReadOnly {
			continue
		}
		here := append(slices.Clone(at), name)
		if slices.Contains(s.Required, name) { // null is absent too, for an optional one
			add(where(here)+": missing", set(base, here, nil, true))
			add(where(here)+": null", set(base, here, raw("null"), false))
		}
		desc := ref.Value.Description + " " + ps.Description
		for _, v := range valueVariants(ps, name, desc) {
			add(where(here)+": "+v.name, set(base, here, v.v, false))
		}
		switch {
		case ps.Type.Is(openapi3.TypeObject) || len(ps.Properties) > 0:
			next := base
			if _, ok := cur[name]; !ok {
				next = set(base, here, sampleValue(fx, id, name, ps), false)
			}
			bodyVariants(fx, id, next, here, ps, add)
		case ps.Type.Is(openapi3.TypeArray) && ps.Items != nil:
			items := resolved(ps.Items)
			elems, _ := cur[name].([]any)
			if len(elems) == 0 {
				elems = []any{sampleValue(fx, id, name, items)}
			}
			next := set(base, here, []any{elems[0]}, false)
			add(where(here)+": empty", set(base, here, []any{}, false))
			add(where(here)+": item twice", set(base, here, []any{elems[0], elems[0]}, false))
			add(where(here)+": null item", set(base, here, []any{raw("null")}, false))
			item := append(slices.Clone(here), 0)
			if items.Type.Is(openapi3.TypeObject) || len(items.Properties) > 0 {
				bodyVariants(fx, id, next, item, items, add)
				continue
			}
			for _, v := range valueVariants(items, name, desc) {
				add(where(item)+": "+v.name, set(next, item, v.v, false))
			}
		}
	}
}

// get returns the value at path in tree, or nil.
func get(tree any, path []any) any {
	for _, p := range path {
		switch t := tree.(type) {
		case map[string]any:
			tree = t[p.(string)]
		case []any:
			tree = t[p.(int)]
		default:
			return nil
		}
	}
	return tree
}

// variants are the operation's bad requests, each sent as the valid request's caller and,
// for an operation that needs a token, with none.
func (o *operation) variants(fx *badInputFixture) []*call {
	var out []*call
	add := func(c *call) {
		out = append(out, c)
		if o.secured && c.as != "" {
			anon := *c
			anon.as = ""
			out = append(out, &anon)
		}
	}
	withPath := func(name, mutation, v string) {
		vals := maps.Clone(o.pathVals)
		vals[name] = v
		c := o.call(mutation)
		c.path = o.url(vals, o.query)
		add(c)
	}
	withQuery := func(mutation string, q ...kv) {
		c := o.call(mutation)
		c.path = o.url(o.pathVals, q)
		add(c)
	}
	replaceQuery := func(name string, vs ...string) []kv {
		q := slices.DeleteFunc(slices.Clone(o.query), func(x kv) bool { return x.k == name })
		for _, v := range vs {
			q = append(q, kv{name, v})
		}
		return q
	}

	// Path parameters.
	for _, p := range o.params {
		if p.In != openapi3.ParameterInPath {
			continue
		}
		for _, v := range []string{"abc", "99999999999999999999", "-1", "0", "1.5", "\x00", "a\x00b", "\x01", "\xff",
			"\xc3\x28", " ", "é", ".", "..", strings.Repeat("A", 3000)} {
			withPath(p.Name, fmt.Sprintf("path %s=%.20q", p.Name, v), v)
		}
	}

	// Query parameters: each declared one, then undeclared ones.
	for _, p := range o.params {
		if p.In != openapi3.ParameterInQuery {
			continue
		}
		s := p.Schema.Value
		vals := []string{"\x00", "a\x00b", "\x01", "\xff", strings.Repeat("A", 5000), ""}
		switch {
		case s.Type.Is(openapi3.TypeInteger):
			vals = append(vals, "abc", "1.5", "-1", "0", "1e3", "2147483648", "-2147483649", "99999999999999999999", "1000000")
		case s.Format == "date-time":
			vals = append(vals, badTime...)
		case s.Type.Is(openapi3.TypeArray):
			vals = append(vals, "not a symbol", "aapl")
		}
		for _, v := range vals {
			withQuery(fmt.Sprintf("query %s=%.20q", p.Name, v), replaceQuery(p.Name, v)...)
		}
		withQuery(fmt.Sprintf("query %s twice", p.Name), replaceQuery(p.Name, "1", "2")...)
		if s.Type.Is(openapi3.TypeArray) {
			many := make([]string, 1001)
			for i := range many {
				many[i] = fmt.Sprintf("S%d", i)
			}
			withQuery(fmt.Sprintf("query %s x1001", p.Name), replaceQuery(p.Name, many...)...)
		}
		switch p.Name {
		case "filter":
			for _, f := range o.filterVariants() {
				withQuery(fmt.Sprintf("filter %.40q", f), replaceQuery("filter", f)...)
			}
		case "order_by":
			for _, f := range []string{"zz_unknown", "id desc desc", "id,,id", "id asc, id desc", "\"id\""} {
				withQuery(fmt.Sprintf("order_by %.40q", f), replaceQuery("order_by", f)...)
			}
		case "page_token":
			for _, tok := range o.tokenVariants() {
				withQuery(fmt.Sprintf("page_token %.30q", tok), replaceQuery("page_token", tok)...)
			}
		}
	}
	undeclared := []string{"zz_unknown", "\x00", "\xff", "page_sise"}
	if o.body != nil {
		for name, p := range o.body.Properties {
			if !p.Value.ReadOnly {
				undeclared = append(undeclared, name) // a body field set through the query
			}
		}
	}
	slices.Sort(undeclared)
	for _, name := range undeclared {
		withQuery(fmt.Sprintf("undeclared query %.20q", name), append(slices.Clone(o.query), kv{name, "1"})...)
	}

	// Headers.
	if o.secured {
		c := o.call("token not a JWT")
		c.as = "bad-token"
		out = append(out, c)
	}
	if o.body == nil {
		return out
	}
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		c := o.call(fmt.Sprintf("Content-Type %q", ct))
		c.ctype = ct
		add(c)
	}

	// Whole bodies.
	valid := encodeJSON(o.validBody)
	if len(o.body.Required) > 0 { // else an empty body is a valid one
		c := o.call("body: empty")
		c.body = nil
		add(c)
	}
	for _, b := range []struct{ name, body string }{
		{"not JSON", "not json"},
		{"truncated", string(valid[:len(valid)/2])},
		{"two values", string(valid) + string(valid)},
		{"trailing {}", string(valid) + "{}"},
		{"trailing garbage", string(valid) + " x"},
		{"array", "[]"},
		{"null", "null"},
		{"string", `"x"`},
		{"number", "1"},
		{"byte order mark", "\ufeff" + string(valid)},
		{"duplicate key", `{"zz":1,"zz":2}`},
		{"nested 10000 deep", strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)},
		{"invalid UTF-8 outside strings", "{\xff}"},
	} {
		c := o.call("body: " + b.name)
		c.body = []byte(b.body)
		add(c)
	}
	// Each property, nested ones too. Only as the caller: the gateway decodes a body the same
	// for anyone, and a service checks the token first.
	bodyVariants(fx, o.id, o.validBody, nil, o.body, func(name string, body any) {
		c := o.call("body " + name)
		c.body = encodeJSON(body)
		out = append(out, c)
	})
	return out
}

// filterVariants are filters that are wrong for their literals: each field of the listed
// resource compared with a NUL byte, invalid UTF-8, a huge number or a bad time, and
// filters too deep or too long.
func (o *operation) filterVariants() []string {
	out := []string{"a AND", `symbol = "`, "(((", strings.Repeat("NOT ", 100) + "x", strings.Repeat("(", 40) + "x" + strings.Repeat(")", 40),
		strings.Repeat(`x = "a" AND `, 300) + `x = "a"`}
	if o.listed == nil {
		return out
	}
	for _, name := range slices.Sorted(maps.Keys(o.listed.Properties)) {
		s := resolved(o.listed.Properties[name])
		switch {
		case len(s.Enum) > 0:
			out = append(out, name+" = NOPE", name+` = "a`+"\x00"+`"`)
		case s.Type.Is(openapi3.TypeString) && s.Format == "date-time":
			out = append(out, name+` > "abc"`, name+` > "10000-01-01T00:00:00Z"`, name+` > "0000-01-01T00:00:00Z"`,
				name+` > timestamp("`+"\x00"+`")`)
		case s.Type.Is(openapi3.TypeString) && s.Format == "int64", s.Type.Is(openapi3.TypeInteger):
			out = append(out, name+" > 99999999999999999999", name+" > -99999999999999999999", name+` = "`+"\x00"+`"`)
		case s.Type.Is(openapi3.TypeNumber):
			out = append(out, name+" > 1e400", name+" > NaN")
		case s.Type.Is(openapi3.TypeString):
			out = append(out, name+` = "a`+"\x00"+`b"`, name+` = "`+"\x00"+`*"`, name+` = "\xff"`, name+` = "`+"\x01"+`"`,
				name+` = "`+strings.Repeat("A", 1900)+`"`, name+` : "`+"\x00"+`"`)
		case s.Type.Is(openapi3.TypeArray):
			out = append(out, name+`:"`+"\x00"+`"`, name+`:"\xff"`)
		}
	}
	return out
}

// tokenVariants are page tokens that are not ones the service issued: garbage, and a real
// one damaged.
func (o *operation) tokenVariants() []string {
	out := []string{"abc", "!!!", "AAAA", "\x00", "\xff", strings.Repeat("A", 5000)}
	if t := o.pageToken; len(t) > 4 {
		flip := []byte(t)
		flip[len(flip)/2] ^= 1
		out = append(out, t[:len(t)-1], t+"A", string(flip), t[:len(t)/2], t+"\x00")
	}
	return out
}

// outcome is the answer to a call, and what is wrong with it ("" for nothing).
type outcome struct {
	call    *call
	code    int
	body    []byte
	problem string
}

// badInputPass sends the pass's calls.
type badInputPass struct {
	url    string
	client *http.Client
	fx     *badInputFixture
}

// send sends c and checks the answer; it reports no failure itself.
func (p *badInputPass) send(tb testing.TB, c *call) outcome {
	var body io.Reader
	if c.hasBody {
		body = bytes.NewReader(c.body)
	}
	out := outcome{call: c}
	req, err := http.NewRequestWithContext(tb.Context(), c.op.method, p.url+c.path, body)
	if err != nil {
		out.problem = "build request: " + err.Error()
		return out
	}
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	switch c.as {
	case "":
	case "bad-token":
		req.Header.Set("Authorization", "Bearer not.a.jwt")
	default:
		req.Header.Set(p.fx.tokens[c.as][0], p.fx.tokens[c.as][1])
	}
	resp, err := p.client.Do(req)
	if err != nil {
		out.problem = "transport: " + err.Error()
		return out
	}
	defer resp.Body.Close()
	out.body, err = readAnswer(resp) // a Watch stream to its first event
	out.code = resp.StatusCode
	if err != nil {
		out.problem = "read answer: " + err.Error()
		return out
	}
	out.problem = checkAnswer(req, resp, out.body, c.op)
	return out
}

// checkAnswer returns what is wrong with an answer, or "".
func checkAnswer(req *http.Request, resp *http.Response, body []byte, o *operation) string {
	code := resp.StatusCode
	switch {
	case code >= 500:
		return "5xx"
	case o.op.Responses.Status(code) == nil:
		return "undocumented status"
	}
	c, err := contract()
	if err != nil {
		return "load the document: " + err.Error()
	}
	if err := c.check(req, code, resp.Header, body); err != nil {
		return "contract: " + err.Error()
	}
	if code >= 400 {
		var e errorBody
		if err := json.Unmarshal(body, &e); err != nil || e.Code == 0 || e.Message == "" {
			return "not the error JSON"
		}
		if n := len(e.errorInfos()); n != 1 {
			return fmt.Sprintf("%d ErrorInfo details, want 1", n)
		}
	}
	if resp.Header.Get("Content-Type") == "application/json" && bytes.Contains(body, []byte("null")) {
		var v any
		if json.Unmarshal(body, &v) == nil && hasNull(v) {
			return "null in the answer"
		}
	}
	return ""
}

func hasNull(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return slices.ContainsFunc(slices.Collect(maps.Values(v)), hasNull)
	case []any:
		return slices.ContainsFunc(v, hasNull)
	}
	return false
}

// sendAll sends calls, badInputWorkers at a time, and returns their outcomes in order.
func (p *badInputPass) sendAll(tb testing.TB, calls []*call) []outcome {
	out := make([]outcome, len(calls))
	next := make(chan int)
	var wg sync.WaitGroup
	for range badInputWorkers {
		wg.Go(func() {
			for i := range next {
				out[i] = p.send(tb, calls[i])
			}
		})
	}
	for i := range calls {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// reportBadInput logs the pass's figures and fails with one table of every bad answer.
func reportBadInput(t *testing.T, nops, nvalid int, all []outcome) {
	t.Helper()
	classes := map[string]int{}
	codes := map[int]int{}
	kinds := map[string]int{}
	var bad []outcome
	for _, o := range all {
		classes[fmt.Sprintf("%dxx", o.code/100)]++
		codes[o.code]++
		if o.problem != "" {
			bad = append(bad, o)
			kind, _, _ := strings.Cut(o.problem, ":")
			kinds[kind]++
		}
	}
	var byCode []string
	for _, c := range slices.Sorted(maps.Keys(codes)) {
		byCode = append(byCode, fmt.Sprintf("%d: %d", c, codes[c]))
	}
	t.Logf("bad-input pass: %d requests over %d operations (%d valid, %d variants); 2xx %d, 3xx %d, 4xx %d, 5xx %d; by status: %s",
		len(all), nops, nvalid, len(all)-nvalid, classes["2xx"], classes["3xx"], classes["4xx"], classes["5xx"], strings.Join(byCode, ", "))
	if len(bad) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d answers are wrong (%v):\n", len(bad), len(all), kinds)
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "METHOD\tPATH\tVARIANT\tAS\tSTATUS\tPROBLEM\tBODY")
	const maxRows = 300
	for i, o := range bad {
		if i == maxRows {
			fmt.Fprintf(w, "... and %d more\n", len(bad)-maxRows)
			break
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%.80s\t%.120s\n", o.call.op.method, o.call.op.path, o.call.mutation,
			cmpOr(o.call.as, "-"), o.code, o.problem, oneLine(o.body))
	}
	w.Flush()
	t.Error(b.String())
}

var spaces = regexp.MustCompile(`\s+`)

func oneLine(b []byte) string { return spaces.ReplaceAllString(strconv.QuoteToASCII(string(b)), " ") }

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
