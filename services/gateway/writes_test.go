package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/auth"
)

// restQuestion is the part of a question's JSON the write tests look at.
type restQuestion struct {
	ID       string `json:"id"`
	Key      string `json:"key"`
	Text     string `json:"text"`
	Category string `json:"category"`
	Etag     string `json:"etag"`
}

// testPatchQuestion: an etag-guarded PATCH /v1/questions/{question.id} works as the document
// says (defect 4 of issue 11). Without an update_mask query parameter the gateway derives the
// mask from the body, so it names etag, and, for a question sent back whole as read, id,
// key, times and rubric.points too: the update applies, and a stale etag is 409.
func testPatchQuestion(t *testing.T, e *env) {
	as := bearer(t, "patch-editor@example.com", auth.RoleIngest)
	question := func(r response) restQuestion {
		t.Helper()
		return decode[struct {
			Question restQuestion `json:"question"`
		}](t, r).Question
	}
	r := e.gw.do(t, http.MethodPost, "/v1/questions", `{"key":"patch-rest-01","text":"What is a join?","category":"SQL",
		"difficulty":2,"rubric":{"points":[{"description":"combines rows","weight":1,"keywords":["rows"]}]}}`, as...)
	q := question(r)
	if r.code != http.StatusOK || q.ID == "" || q.Etag == "" {
		t.Fatalf("POST /v1/questions = %v, want a question with an id and an etag", r)
	}
	path := "/v1/questions/" + q.ID
	etag, _ := json.Marshal(q.Etag) // an etag is quoted, e.g. "\"1\""

	// No update_mask parameter: the mask is [etag, text].
	body := `{"text":"What does an inner join return?","etag":` + string(etag) + `}`
	r = e.gw.do(t, http.MethodPatch, path, body, as...)
	got := question(r)
	if r.code != http.StatusOK || got.Text != "What does an inner join return?" || got.Category != "SQL" || got.Etag == q.Etag {
		t.Fatalf("PATCH %s %s = %v, want 200 with the new text, the category kept and a new etag", path, body, r)
	}
	r = e.gw.do(t, http.MethodPatch, path, body, as...) // the etag it was read with: stale now
	wantError(t, r, http.StatusConflict, 10)            // ABORTED

	// ?update_mask=text: only the text changes, the category in the body is not applied.
	etag, _ = json.Marshal(got.Etag)
	body = `{"text":"What does a left join return?","category":"Not applied","etag":` + string(etag) + `}`
	r = e.gw.do(t, http.MethodPatch, path+"?update_mask=text", body, as...)
	masked := question(r)
	if r.code != http.StatusOK || masked.Text != "What does a left join return?" || masked.Category != "SQL" || masked.Etag == got.Etag {
		t.Fatalf("PATCH %s?update_mask=text %s = %v, want 200 with the new text only and a new etag", path, body, r)
	}

	// The question as GET returns it, one field edited, sent back whole.
	r = e.gw.do(t, http.MethodGet, path, "", as...)
	var read struct {
		Question map[string]any `json:"question"`
	}
	if err := json.Unmarshal(r.body, &read); err != nil || r.code != http.StatusOK {
		t.Fatalf("GET %s = %v", path, r)
	}
	read.Question["difficulty"] = 3
	whole, _ := json.Marshal(read.Question)
	r = e.gw.do(t, http.MethodPatch, path, string(whole), as...)
	if got := question(r); r.code != http.StatusOK || got.Key != "patch-rest-01" || got.Text != masked.Text || got.Etag == masked.Etag {
		t.Fatalf("PATCH %s with the question as read = %v, want 200 and a new etag", path, r)
	}
	r = e.gw.do(t, http.MethodPatch, path, string(whole), as...)
	wantError(t, r, http.StatusConflict, 10)
}

// testIdempotentCreates: a create repeated with its request_id over REST answers the first
// result, in the body (StartSession) or in the query (CreateQuestion, whose body is the
// question); the same request_id for another request is 409.
func testIdempotentCreates(t *testing.T, e *env) {
	as := bearer(t, "idempotent-rest@example.com", auth.RoleIngest)
	sessionID := func(r response) string {
		t.Helper()
		return decode[struct {
			Session struct {
				ID string `json:"id"`
			} `json:"session"`
		}](t, r).Session.ID
	}
	const start = `{"criteria":{"categories":["SQL"],"count":2},"request_id":"rest-start-1"}`
	first := e.gw.do(t, http.MethodPost, "/v1/sessions", start, as...)
	again := e.gw.do(t, http.MethodPost, "/v1/sessions", start, as...)
	if first.code != http.StatusOK || again.code != http.StatusOK || sessionID(first) == "" || sessionID(again) != sessionID(first) {
		t.Errorf("POST /v1/sessions twice with one request_id = %v then %v, want the same session", first, again)
	}
	r := e.gw.do(t, http.MethodPost, "/v1/sessions", `{"criteria":{"categories":["SQL"],"count":1},"request_id":"rest-start-1"}`, as...)
	wantError(t, r, http.StatusConflict, 6) // ALREADY_EXISTS

	const create = `{"key":"idempotent-rest-01","text":"Why?","category":"SQL","difficulty":1,
		"rubric":{"points":[{"description":"because","weight":1,"keywords":["because"]}]}}`
	first = e.gw.do(t, http.MethodPost, "/v1/questions?request_id=rest-create-1", create, as...)
	again = e.gw.do(t, http.MethodPost, "/v1/questions?request_id=rest-create-1", create, as...)
	id := func(r response) string {
		return decode[struct {
			Question restQuestion `json:"question"`
		}](t, r).Question.ID
	}
	if first.code != http.StatusOK || again.code != http.StatusOK || id(first) == "" || id(again) != id(first) {
		t.Errorf("POST /v1/questions?request_id=... twice = %v then %v, want the same question", first, again)
	}
}
