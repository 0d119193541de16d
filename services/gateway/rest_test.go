package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// decode unmarshals a JSON answer into a generic value, failing the test on bad JSON.
func decode[T any](tb testing.TB, r response) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		tb.Fatalf("answer is not the JSON expected: %v; %v", err, r)
	}
	return v
}

// testGetStock checks the JSON shape: proto field names, int64 as a string, RFC 3339 times.
func testGetStock(t *testing.T, e *env) {
	r := e.gw.do(t, http.MethodGet, "/v1/stocks/AAPL", "")
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v1/stocks/AAPL = %v, %q; want 200 application/json", r, r.header.Get("Content-Type"))
	}
	got := decode[map[string]map[string]any](t, r)["stock"]
	for _, field := range []string{"create_time", "update_time"} {
		s, _ := got[field].(string)
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			t.Errorf("stock.%s = %v, want an RFC 3339 time", field, got[field])
		}
		delete(got, field)
	}
	want := map[string]any{
		"symbol": "AAPL", "name": "Apple Inc.", "sector": "Technology", "industry": "Consumer Electronics",
		"exchange": "NASDAQ", "currency": "USD", "market_cap": "3000000000000",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /v1/stocks/AAPL mismatch (-want +got):\n%s", diff)
	}

	// Decimals are strings too, and so is int64 volume.
	r = e.gw.do(t, http.MethodGet, "/v1/stocks/AAPL/prices?page_size=1", "")
	prices := decode[struct {
		Prices []map[string]any `json:"prices"`
	}](t, r).Prices
	if r.code != http.StatusOK || len(prices) != 1 {
		t.Fatalf("GET /v1/stocks/AAPL/prices?page_size=1 = %v, want one price", r)
	}
	if p := prices[0]; p["close"] != "100.25" || p["volume"] != "1000" {
		t.Errorf("first price = %v, want close \"100.25\" and volume \"1000\" as strings", p)
	}
}

// testListStocksPaged follows next_page_token through a filtered list sorted by market cap.
func testListStocksPaged(t *testing.T, e *env) {
	q := url.Values{
		"filter":    {`sector = "Technology"`},
		"order_by":  {"market_cap desc"},
		"page_size": {"4"},
	}
	var got []string
	pages := 0
	for {
		r := e.gw.do(t, http.MethodGet, "/v1/stocks?"+q.Encode(), "")
		if r.code != http.StatusOK {
			t.Fatalf("GET /v1/stocks page %d = %v", pages, r)
		}
		page := decode[struct {
			Stocks []struct {
				Symbol string `json:"symbol"`
			} `json:"stocks"`
			NextPageToken string `json:"next_page_token"`
		}](t, r)
		pages++
		for _, s := range page.Stocks {
			got = append(got, s.Symbol)
		}
		if page.NextPageToken == "" {
			break
		}
		if pages > techStocks {
			t.Fatal("next_page_token never ends")
		}
		q.Set("page_token", page.NextPageToken)
	}
	if diff := cmp.Diff(techSymbols, got); diff != "" {
		t.Errorf("Technology stocks by market cap mismatch (-want +got):\n%s", diff)
	}
	if want := (techStocks + 3) / 4; pages != want {
		t.Errorf("pages = %d, want %d", pages, want)
	}
}

// testStreamPrices reads the whole price history of AAPL as newline-delimited JSON.
func testStreamPrices(t *testing.T, e *env) {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.gw.url+"/v1/stocks/AAPL/prices:stream?batch_size=100", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.gw.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("GET prices:stream = %d %q, want 200 application/x-ndjson", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	lines, rows := 0, 0
	var last time.Time
	for sc.Scan() {
		var chunk struct {
			Result *struct {
				Prices []struct {
					Time time.Time `json:"time"`
				} `json:"prices"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &chunk); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", lines, err, sc.Bytes())
		}
		noNulls(t, fmt.Sprintf("prices:stream line %d", lines), sc.Bytes())
		if chunk.Error != nil || chunk.Result == nil {
			t.Fatalf("line %d = %s, want a result", lines, sc.Bytes())
		}
		lines++
		for _, p := range chunk.Result.Prices {
			if !p.Time.After(last) {
				t.Fatalf("row %d at %v is not after %v: want oldest first", rows, p.Time, last)
			}
			last = p.Time
			rows++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read stream: %v", err)
	}
	if rows != priceDays || lines != priceDays/100 {
		t.Errorf("stream = %d rows in %d lines, want %d in %d", rows, lines, priceDays, priceDays/100)
	}
}

// testNextQuestion: GET /v1/sessions/{id}:next reaches NextQuestion (GetSession's
// /v1/sessions/{session_id} must not capture "38:next") and answers the session's first
// unanswered question.
func testNextQuestion(t *testing.T, e *env) {
	as := bearer(t, "next-question@example.com")
	r := e.gw.do(t, http.MethodPost, "/v1/sessions", `{"criteria":{"categories":["SQL"],"count":2}}`, as...)
	type question struct {
		Position   int    `json:"position"`
		QuestionID string `json:"question_id"`
	}
	session := decode[struct {
		Session struct {
			ID        string     `json:"id"`
			Questions []question `json:"questions"`
		} `json:"session"`
	}](t, r).Session
	if r.code != http.StatusOK || session.ID == "" || len(session.Questions) != 2 {
		t.Fatalf("POST /v1/sessions = %v, want a session of 2 questions", r)
	}
	r = e.gw.do(t, http.MethodGet, "/v1/sessions/"+session.ID+":next", "", as...)
	got := decode[struct {
		Question  question `json:"question"`
		Remaining int      `json:"remaining"`
	}](t, r)
	if r.code != http.StatusOK || got.Question != session.Questions[0] || got.Remaining != 2 {
		t.Errorf("GET /v1/sessions/%s:next = %v, want question %+v with 2 remaining", session.ID, r, session.Questions[0])
	}
}

// testUnsetFields pins the JSON shape of unset fields: an unset message (a session's
// summary and complete_time before it completes, a question's answer before it is
// answered) is left out, never null; zero scalars and empty lists stay ("cash": "0",
// "positions": []). send checks every answer for nulls; this names the fields.
func testUnsetFields(t *testing.T, e *env) {
	as := bearer(t, "unset-fields@example.com")
	r := e.gw.do(t, http.MethodPost, "/v1/sessions", `{"criteria":{"categories":["SQL"],"count":1}}`, as...)
	id := decode[struct {
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
	}](t, r).Session.ID
	if r.code != http.StatusOK || id == "" {
		t.Fatalf("POST /v1/sessions = %v", r)
	}
	r = e.gw.do(t, http.MethodGet, "/v1/sessions/"+id, "", as...)
	session := decode[struct {
		Session map[string]json.RawMessage `json:"session"`
	}](t, r).Session
	if r.code != http.StatusOK {
		t.Fatalf("GET /v1/sessions/%s = %v", id, r)
	}
	for _, key := range []string{"summary", "complete_time"} {
		if v, ok := session[key]; ok {
			t.Errorf("session.%s = %s, want it left out while the session is in progress", key, v)
		}
	}
	var questions []map[string]json.RawMessage
	if err := json.Unmarshal(session["questions"], &questions); err != nil || len(questions) != 1 {
		t.Fatalf("session.questions = %s, want one question", session["questions"])
	}
	if v, ok := questions[0]["answer"]; ok {
		t.Errorf("questions[0].answer = %s, want it left out before an answer", v)
	}

	portfolio := newPortfolio(t, e, "unset-fields@example.com", "0.01")
	r = e.gw.do(t, http.MethodPost, "/v1/portfolios/"+portfolio+":withdraw", `{"amount":"0.01","request_id":"empty"}`, as...)
	if r.code != http.StatusOK {
		t.Fatalf("withdraw = %v", r)
	}
	r = e.gw.do(t, http.MethodGet, "/v1/portfolios/"+portfolio, "", as...)
	got := decode[struct {
		Portfolio struct {
			Cash *string `json:"cash"`
		} `json:"portfolio"`
		Positions []any `json:"positions"`
	}](t, r)
	if r.code != http.StatusOK || got.Portfolio.Cash == nil || got.Positions == nil {
		t.Errorf("GET /v1/portfolios/%s = %v, want \"cash\" and an empty \"positions\" list present", portfolio, r)
	}
}

// testStreamErrors: the NDJSON export answers like a unary call until its first message:
// an error is the plain error body under its own HTTP status, not an {"error": ...} line
// under 200 or 400, and a known stock with no bars is a 200 NDJSON answer with no lines.
// ListPrices of an unknown symbol is 404 too.
func testStreamErrors(t *testing.T, e *env) {
	tests := []struct {
		name     string
		path     string
		wantHTTP int
		wantCode int // gRPC code of the error body; 0: success
	}{
		{"unknown_symbol", "/v1/stocks/NOPE/prices:stream", http.StatusNotFound, 5},
		{"invalid_symbol", "/v1/stocks/not-a-symbol/prices:stream", http.StatusBadRequest, 3},
		{"bad_query_value", "/v1/stocks/AAPL/prices:stream?batch_size=many", http.StatusBadRequest, 3},
		{"no_bars", "/v1/stocks/XOM/prices:stream", http.StatusOK, 0},
		{"no_bars_in_range", "/v1/stocks/AAPL/prices:stream?end_time=2000-01-01T00:00:00Z", http.StatusOK, 0},
		{"list_unknown_symbol", "/v1/stocks/NOPE/prices", http.StatusNotFound, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.gw.do(t, http.MethodGet, tt.path, "")
			if tt.wantCode == 0 {
				if r.code != tt.wantHTTP || r.header.Get("Content-Type") != "application/x-ndjson" || len(r.body) != 0 {
					t.Errorf("GET %s = %v, Content-Type %q; want 200 application/x-ndjson with no lines", tt.path, r, r.header.Get("Content-Type"))
				}
				return
			}
			wantError(t, r, tt.wantHTTP, tt.wantCode)
			if _, wrapped := decode[map[string]any](t, r)["error"]; wrapped {
				t.Errorf("GET %s = %v, want the error body itself, not wrapped in \"error\"", tt.path, r)
			}
		})
	}
}

// testUnknownQueryParams: a query parameter that names no field of the request is a 400
// naming it in a field violation, on every kind of route (lists, a stream, a route whose
// request is all path, a body route); known ones, in proto or lowerCamel form, still work.
func testUnknownQueryParams(t *testing.T, e *env) {
	tests := []struct {
		name, method, path, body string
		wantBad                  string // the parameter the violation names; "": 200
	}{
		{"list_misspelt", http.MethodGet, "/v1/stocks?page_sise=2", "", "page_sise"},
		{"list_known", http.MethodGet, "/v1/stocks?page_size=2", "", ""},
		{"list_lower_camel", http.MethodGet, "/v1/stocks?pageSize=2", "", ""},
		{"path_only_route", http.MethodGet, "/v1/stocks/AAPL?verbose=1", "", "verbose"},
		{"path_param_repeated", http.MethodGet, "/v1/stocks/AAPL/prices?symbol=AAPL&page_size=1", "", ""},
		{"stream_misspelt", http.MethodGet, "/v1/stocks/AAPL/prices:stream?batch_sise=100", "", "batch_sise"},
		{"stream_known", http.MethodGet, "/v1/stocks/MSFT/prices:stream?batch_size=100", "", ""},
		{"repeated_field", http.MethodGet, "/v1/prices:latest?symbols=AAPL&symbols=MSFT", "", ""},
		{"body_route", http.MethodPost, "/v1/stocks:upsert?dry_run=true", `{"stocks":[]}`, "dry_run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.gw.do(t, tt.method, tt.path, tt.body, bearer(t, "query-admin@example.com", "admin")...)
			if tt.wantBad == "" {
				if r.code != http.StatusOK {
					t.Errorf("%s %s = %v, want 200", tt.method, tt.path, r)
				}
				return
			}
			body := wantError(t, r, http.StatusBadRequest, 3)
			var fields []any
			for _, d := range body.Details {
				if d["@type"] == "type.googleapis.com/google.rpc.BadRequest" {
					for _, v := range d["field_violations"].([]any) {
						fields = append(fields, v.(map[string]any)["field"])
					}
				}
			}
			if diff := cmp.Diff([]any{tt.wantBad}, fields); diff != "" {
				t.Errorf("%s %s field violations mismatch (-want +got):\n%s", tt.method, tt.path, diff)
			}
		})
	}
}

// testListBars reads AAPL's first two weeks of bars (daily closes 100.25, 101.25, ... from
// Monday 2018-01-01, volumes 1000, 1001, ...) resampled to ISO weeks: decimals and int64
// volume as strings, the first bar without a return, the second with 7/106.25 rounded to 10
// places. An unknown symbol is a 404, a missing or unknown interval a 400.
func testListBars(t *testing.T, e *env) {
	path := "/v1/stocks/AAPL/bars?interval=INTERVAL_WEEK&end_time=2018-01-15T00:00:00Z"
	r := e.gw.do(t, http.MethodGet, path, "")
	if r.code != http.StatusOK {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	got := decode[map[string]any](t, r)
	want := map[string]any{"bars": []any{
		map[string]any{"start_time": "2018-01-01T00:00:00Z", "open": "100.25", "high": "106.25", "low": "100.25",
			"close": "106.25", "volume": "7021", "bar_count": float64(7), "simple_return": ""},
		map[string]any{"start_time": "2018-01-08T00:00:00Z", "open": "107.25", "high": "113.25", "low": "107.25",
			"close": "113.25", "volume": "7070", "bar_count": float64(7), "simple_return": "0.0658823529"},
	}, "next_page_token": ""}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET %s mismatch (-want +got):\n%s", path, diff)
	}
	for _, tt := range []struct {
		path               string
		wantHTTP, wantCode int
	}{
		{"/v1/stocks/NOPE/bars?interval=INTERVAL_MONTH", http.StatusNotFound, 5},
		{"/v1/stocks/AAPL/bars", http.StatusBadRequest, 3},
		{"/v1/stocks/AAPL/bars?interval=INTERVAL_YEAR", http.StatusBadRequest, 3},
		{"/v1/stocks/AAPL/bars?interval=INTERVAL_DAY&start_time=2018-02-01T00:00:00Z&end_time=2018-01-01T00:00:00Z", http.StatusBadRequest, 3},
	} {
		wantError(t, e.gw.do(t, http.MethodGet, tt.path, ""), tt.wantHTTP, tt.wantCode)
	}
}

// testRecommendationHistory posts two predictions of one model for AAPL (days apart, versions
// 2026.1 and 2026.2) and a retry of the second through POST /v1/recommendations:upsert, then
// reads GET /v1/recommendations:history: both predictions, newest first, with model_version
// and predict_time in the JSON; the current view holds the second only. A bad filter, order or
// predict_time is a 400.
func testRecommendationHistory(t *testing.T, e *env) {
	admin := bearer(t, "loader", "ingest")
	post := func(version, day, action string) {
		t.Helper()
		body := fmt.Sprintf(`{"recommendations":[{"symbol":"AAPL","source":"gw-history-model","action":%q,"confidence":0.5,`+
			`"model_version":%q,"predict_time":"2026-01-%sT00:00:00Z"}]}`, action, version, day)
		if r := e.gw.do(t, http.MethodPost, "/v1/recommendations:upsert", body, admin...); r.code != http.StatusOK {
			t.Fatalf("POST /v1/recommendations:upsert = %v, want 200", r)
		}
	}
	post("2026.1", "05", "ACTION_BUY")
	post("2026.2", "06", "ACTION_SELL")
	post("2026.2", "06", "ACTION_SELL") // a retry
	path := "/v1/recommendations:history?filter=" + url.QueryEscape(`source = "gw-history-model"`) + "&page_size=1"
	var got []any
	for path != "" {
		r := e.gw.do(t, http.MethodGet, path, "")
		if r.code != http.StatusOK {
			t.Fatalf("GET %s = %v, want 200", path, r)
		}
		page := decode[map[string]any](t, r)
		recs, _ := page["recommendations"].([]any)
		for _, rec := range recs {
			m := rec.(map[string]any)
			if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["record_time"])); err != nil {
				t.Errorf("record_time = %v, want an RFC 3339 time", m["record_time"])
			}
			delete(m, "record_time")
			got = append(got, m)
		}
		path = ""
		if next, _ := page["next_page_token"].(string); next != "" {
			path = "/v1/recommendations:history?filter=" + url.QueryEscape(`source = "gw-history-model"`) + "&page_size=1&page_token=" + url.QueryEscape(next)
		}
	}
	rec := func(version, day, action string) map[string]any {
		return map[string]any{"symbol": "AAPL", "source": "gw-history-model", "model_version": version, "action": action,
			"target_price": "", "confidence": 0.5, "rationale": "", "predict_time": "2026-01-" + day + "T00:00:00Z"}
	}
	if diff := cmp.Diff([]any{rec("2026.2", "06", "ACTION_SELL"), rec("2026.1", "05", "ACTION_BUY")}, got); diff != "" {
		t.Errorf("history mismatch (-want +got):\n%s", diff)
	}
	cur := e.gw.do(t, http.MethodGet, "/v1/recommendations?filter="+url.QueryEscape(`source = "gw-history-model"`), "")
	recs := decode[struct {
		Recommendations []map[string]any `json:"recommendations"`
	}](t, cur).Recommendations
	if cur.code != http.StatusOK || len(recs) != 1 || recs[0]["model_version"] != "2026.2" || recs[0]["predict_time"] != "2026-01-06T00:00:00Z" {
		t.Errorf("GET /v1/recommendations = %v, want the 2026.2 prediction only", cur)
	}
	for _, path := range []string{
		"/v1/recommendations:history?filter=" + url.QueryEscape("confidence > 0.5"),
		"/v1/recommendations:history?order_by=action",
		"/v1/recommendations:history?page_token=nope",
	} {
		wantError(t, e.gw.do(t, http.MethodGet, path, ""), http.StatusBadRequest, 3)
	}
	future := `{"recommendations":[{"symbol":"AAPL","source":"gw-history-model","action":"ACTION_BUY","predict_time":"2999-01-01T00:00:00Z"}]}`
	wantError(t, e.gw.do(t, http.MethodPost, "/v1/recommendations:upsert", future, admin...), http.StatusBadRequest, 3)
}

// testIngestion: the ingestion pipeline's REST routes (the fleet runs no ingestion leader, so
// a run stays queued): a job created, read, listed, patched, run, its run read, listed and
// cancelled, its (empty) quarantine, the job deleted with its runs kept; a reader without
// the ingest role is refused, and bad input is 400, a missing job 404, a second cancel 400.
func testIngestion(t *testing.T, e *env) {
	loader := bearer(t, "loader", "ingest")
	do := func(method, path, body string, want int) map[string]any {
		t.Helper()
		r := e.gw.do(t, method, path, body, loader...)
		if r.code != want {
			t.Fatalf("%s %s = %v, want %d", method, path, r, want)
		}
		return decode[map[string]any](t, r)
	}
	job := do(http.MethodPost, "/v1/ingestionJobs", `{"job_id":"gw-files","source":"INGESTION_SOURCE_FILES","symbols":["AAPL"],"schedule":"30 22 * * 1-5"}`, http.StatusOK)["job"].(map[string]any)
	if job["lookback_days"] != 5.0 || job["max_attempts"] != 3.0 || job["next_run_time"] == nil || job["source"] != "INGESTION_SOURCE_FILES" {
		t.Errorf("created job = %v", job)
	}
	if got := do(http.MethodGet, "/v1/ingestionJobs/gw-files", "", http.StatusOK)["job"].(map[string]any); got["schedule"] != "30 22 * * 1-5" {
		t.Errorf("GET job = %v", got)
	}
	if jobs, _ := do(http.MethodGet, "/v1/ingestionJobs?page_size=1000", "", http.StatusOK)["jobs"].([]any); len(jobs) == 0 {
		t.Errorf("GET /v1/ingestionJobs listed no job")
	}
	patched := do(http.MethodPatch, "/v1/ingestionJobs/gw-files?update_mask=paused,lookback_days", `{"paused":true,"lookback_days":30}`, http.StatusOK)["job"].(map[string]any)
	if patched["paused"] != true || patched["lookback_days"] != 30.0 || patched["next_run_time"] != nil {
		t.Errorf("PATCH job = %v", patched)
	}
	run := do(http.MethodPost, "/v1/ingestionJobs/gw-files:run", `{}`, http.StatusOK)["run"].(map[string]any)
	if run["state"] != "INGESTION_RUN_STATE_QUEUED" || run["trigger"] != "INGESTION_TRIGGER_MANUAL" || run["job_id"] != "gw-files" {
		t.Errorf("run = %v", run)
	}
	id := fmt.Sprint(run["run_id"]) // an int64: a JSON string
	if got := do(http.MethodGet, "/v1/ingestionRuns/"+id, "", http.StatusOK)["run"].(map[string]any); got["run_id"] != run["run_id"] {
		t.Errorf("GET run = %v", got)
	}
	runs, _ := do(http.MethodGet, "/v1/ingestionRuns?job_id=gw-files&filter="+url.QueryEscape("state = INGESTION_RUN_STATE_QUEUED"), "", http.StatusOK)["runs"].([]any)
	if len(runs) != 1 {
		t.Errorf("GET runs = %v", runs)
	}
	if rejects := do(http.MethodGet, "/v1/ingestionRuns/"+id+"/rejects", "", http.StatusOK); len(rejects) != 0 && rejects["rejects"] != nil && len(rejects["rejects"].([]any)) != 0 {
		t.Errorf("GET rejects = %v", rejects)
	}
	if got := do(http.MethodPost, "/v1/ingestionRuns/"+id+":cancel", `{}`, http.StatusOK)["run"].(map[string]any); got["state"] != "INGESTION_RUN_STATE_CANCELLED" {
		t.Errorf("cancel = %v", got)
	}
	wantError(t, e.gw.do(t, http.MethodPost, "/v1/ingestionRuns/"+id+":cancel", `{}`, loader...), http.StatusBadRequest, 9)
	do(http.MethodDelete, "/v1/ingestionJobs/gw-files", "", http.StatusOK)
	wantError(t, e.gw.do(t, http.MethodGet, "/v1/ingestionJobs/gw-files", "", loader...), http.StatusNotFound, 5)
	if runs, _ := do(http.MethodGet, "/v1/ingestionRuns?job_id=gw-files", "", http.StatusOK)["runs"].([]any); len(runs) != 1 {
		t.Errorf("the deleted job's runs = %v, want its one run", runs)
	}

	// Operator data: no token is 401, a token without ingest or admin 403.
	wantError(t, e.gw.do(t, http.MethodGet, "/v1/ingestionRuns", ""), http.StatusUnauthorized, 16)
	wantError(t, e.gw.do(t, http.MethodGet, "/v1/ingestionJobs", "", bearer(t, "reader@example.com")...), http.StatusForbidden, 7)
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/ingestionJobs", `{"job_id":"Bad","source":"INGESTION_SOURCE_FILES","schedule":"@daily"}`},
		{http.MethodPost, "/v1/ingestionJobs", `{"job_id":"gw-bad","source":"INGESTION_SOURCE_FILES","schedule":"every day"}`},
		{http.MethodPatch, "/v1/ingestionJobs/gw-files?update_mask=source", `{"source":"INGESTION_SOURCE_POLYGON"}`},
		{http.MethodGet, "/v1/ingestionRuns/0", ""},
		{http.MethodGet, "/v1/ingestionRuns?filter=" + url.QueryEscape("rows_in > 1"), ""},
	} {
		wantError(t, e.gw.do(t, c.method, c.path, c.body, loader...), http.StatusBadRequest, 3)
	}
}

// testRecommendationScoreboard posts a model's BUY of AAPL at its first bar (2018-01-01, close
// 100.25; the next bar closes 101.25) and another model's BUY after its last bar, then reads
// GET /v1/recommendations:scoreboard at 1 bar against AAPL itself: the first scored once
// (return 1/100.25, excess 0: a miss, hit_rate 0), the second pending, without a hit_rate.
// Bad horizons are a 400, an unknown benchmark a 404.
func testRecommendationScoreboard(t *testing.T, e *env) {
	admin := bearer(t, "loader", "ingest")
	for _, p := range []struct{ source, time string }{{"gw-score-early", "2018-01-01T00:00:00Z"}, {"gw-score-late", "2026-11-01T00:00:00Z"}} {
		body := fmt.Sprintf(`{"recommendations":[{"symbol":"AAPL","source":%q,"action":"ACTION_BUY","confidence":0.5,"model_version":"v1","predict_time":%q}]}`,
			p.source, p.time)
		if r := e.gw.do(t, http.MethodPost, "/v1/recommendations:upsert", body, admin...); r.code != http.StatusOK {
			t.Fatalf("POST /v1/recommendations:upsert = %v, want 200", r)
		}
	}
	path := "/v1/recommendations:scoreboard?horizons_days=1&benchmark_symbol=AAPL&filter=" + url.QueryEscape(`source = "gw-score-*"`)
	r := e.gw.do(t, http.MethodGet, path, "")
	if r.code != http.StatusOK {
		t.Fatalf("GET %s = %v, want 200", path, r)
	}
	got := decode[struct {
		Scores []map[string]any `json:"scores"`
	}](t, r).Scores
	want := []map[string]any{{
		"source": "gw-score-early", "model_version": "v1", "horizon_days": 1.0, "scored_count": "1", "pending_count": "0",
		"hold_count": "0", "unscored_count": "0", "hit_rate": 0.0, "average_return": "0.0099750623", "average_excess_return": "0",
		"first_predict_time": "2018-01-01T00:00:00Z", "last_predict_time": "2018-01-01T00:00:00Z",
	}, {
		"source": "gw-score-late", "model_version": "v1", "horizon_days": 1.0, "scored_count": "0", "pending_count": "1",
		"hold_count": "0", "unscored_count": "0", "average_return": "", "average_excess_return": "",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET %s mismatch (-want +got):\n%s", path, diff)
	}
	for _, path := range []string{
		"/v1/recommendations:scoreboard?horizons_days=0",
		"/v1/recommendations:scoreboard?horizons_days=5&horizons_days=5",
		"/v1/recommendations:scoreboard?filter=" + url.QueryEscape("action = ACTION_BUY"),
	} {
		wantError(t, e.gw.do(t, http.MethodGet, path, ""), http.StatusBadRequest, 3)
	}
	wantError(t, e.gw.do(t, http.MethodGet, "/v1/recommendations:scoreboard?benchmark_symbol=ZZZZ", ""), http.StatusNotFound, 5)
}
