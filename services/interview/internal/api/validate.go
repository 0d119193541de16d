package api

import (
	"fmt"
	"regexp"
	"strings"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// Limits of questions and sessions.
const (
	maxText        = 5000
	maxCategory    = 100
	maxTags        = 20
	maxTag         = 50
	maxPoints      = 20
	maxDescription = 500
	maxWeight      = 100
	maxKeywords    = 20
	maxKeyword     = 100
	maxImport      = 1000
	maxCandidate   = 200
	maxAnswer      = 20000
	maxCount       = 50
	maxType        = 200 // bytes of an event type in a WatchInterviewEvents request
)

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,99}$`)

// Validate checks a request before its handler runs (the server's validation interceptor
// calls it). Lists leave filter, order_by and page_token to pkg/query.
// A request without a case is refused (validate.NoRule): every RPC has one, says
// TestValidate_everyMethod (auth_test.go).
func Validate(req any) error {
	var v validate.Violations
	switch r := req.(type) {
	case *interviewv1.CreateQuestionRequest:
		checkQuestion(&v, fromQuestion(r.GetQuestion()), "question")
		v.RequestID("request_id", r.GetRequestId(), false)
	case *interviewv1.GetQuestionRequest:
		checkID(&v, "question_id", r.GetQuestionId())
	case *interviewv1.UpdateQuestionRequest:
		checkID(&v, "question.id", r.GetQuestion().GetId())
		_, ok := parseEtag(r.GetQuestion().GetEtag())
		v.Check(ok, "question.etag", "must be the etag of a question as read, e.g. \"\\\"3\\\"\"")
		checkMask(&v, r.GetUpdateMask().GetPaths())
	case *interviewv1.DeleteQuestionRequest:
		checkID(&v, "question_id", r.GetQuestionId())
		_, ok := parseEtag(r.GetEtag())
		v.Check(ok, "etag", "must be the etag of a question as read")
	case *interviewv1.BulkImportQuestionsRequest:
		qs := r.GetQuestions()
		if !v.Check(len(qs) > 0 && len(qs) <= maxImport, "questions", "must hold 1 to %d questions, got %d", maxImport, len(qs)) {
			break
		}
		seen := map[string]int{}
		for i, q := range qs {
			field := fmt.Sprintf("questions[%d]", i)
			checkQuestion(&v, fromQuestion(q), field)
			if j, dup := seen[q.GetKey()]; dup {
				v.Add(field+".key", "%q repeats questions[%d]", q.GetKey(), j)
			}
			seen[q.GetKey()] = i
		}
	case *interviewv1.StartSessionRequest:
		if c := r.GetCandidate(); c != "" { // empty: the caller
			if v.Check(strings.TrimSpace(c) != "" && len(c) <= maxCandidate, "candidate", "must be 1 to %d characters", maxCandidate) {
				v.Text("candidate", c, validate.SingleLine)
			}
		}
		cr := r.GetCriteria()
		v.Check(cr.GetMinDifficulty() >= 0 && cr.GetMinDifficulty() <= 5, "criteria.min_difficulty", "must be 1 to 5, or 0 for 1")
		v.Check(cr.GetMaxDifficulty() >= 0 && cr.GetMaxDifficulty() <= 5, "criteria.max_difficulty", "must be 1 to 5, or 0 for 5")
		lo, hi, _ := criteria(cr)
		v.Check(lo <= hi, "criteria.max_difficulty", "must not be below min_difficulty")
		v.Check(cr.GetCount() >= 0 && cr.GetCount() <= maxCount, "criteria.count", "must be 1 to %d, or 0 for 5", maxCount)
		for i, c := range cr.GetCategories() {
			field := fmt.Sprintf("criteria.categories[%d]", i)
			if v.Check(c != "" && len(c) <= maxCategory, field, "must be 1 to %d characters", maxCategory) {
				v.Text(field, c, validate.SingleLine)
			}
		}
		v.RequestID("request_id", r.GetRequestId(), false)
	case *interviewv1.NextQuestionRequest:
		checkID(&v, "session_id", r.GetSessionId())
	case *interviewv1.SubmitAnswerRequest:
		checkID(&v, "session_id", r.GetSessionId())
		checkID(&v, "question_id", r.GetQuestionId())
		a := r.GetAnswer()
		if v.Check(strings.TrimSpace(a) != "" && len(a) <= maxAnswer, "answer", "must be 1 to %d characters, not blank", maxAnswer) {
			v.Text("answer", a, validate.MultiLine)
		}
	case *interviewv1.CompleteSessionRequest:
		checkID(&v, "session_id", r.GetSessionId())
	case *interviewv1.GetSessionRequest:
		checkID(&v, "session_id", r.GetSessionId())
	case *interviewv1.WatchSessionRequest:
		checkID(&v, "session_id", r.GetSessionId())
	case *interviewv1.WatchInterviewEventsRequest:
		// Which types and cursors exist is events.Serve's to say; these are the bounds.
		if v.Check(len(r.GetTypes()) <= events.MaxTypes, "types", "at most %d, got %d", events.MaxTypes, len(r.GetTypes())) {
			for i, t := range r.GetTypes() {
				field := fmt.Sprintf("types[%d]", i)
				if v.Check(t != "" && len(t) <= maxType, field, "must be 1 to %d characters, an event type such as %q", maxType, eventTypes[0]) {
					v.Text(field, t, validate.SingleLine)
				}
			}
		}
		if c := r.GetCursor(); v.Check(len(c) <= events.MaxCursorLen, "cursor", "at most %d bytes, got %d", events.MaxCursorLen, len(c)) {
			v.Text("cursor", c, validate.SingleLine)
		}
	case *interviewv1.ListQuestionsRequest, *interviewv1.ListSessionsRequest:
		// filter, order_by, page_size and page_token: pkg/query's.
	default:
		return validate.NoRule(req)
	}
	return v.Err()
}

// validateQuestion checks a whole question, as it will be stored.
func validateQuestion(q store.Question, field string) error {
	var v validate.Violations
	checkQuestion(&v, q, field)
	return v.Err()
}

func checkQuestion(v *validate.Violations, q store.Question, field string) {
	f := func(name string) string { return field + "." + name }
	v.Check(keyPattern.MatchString(q.Key), f("key"), "must be 1 to 100 of a-z, 0-9 and '-', starting with a letter or digit, got %q", q.Key)
	if v.Check(strings.TrimSpace(q.Text) != "" && len(q.Text) <= maxText, f("text"), "must be 1 to %d characters", maxText) {
		v.Text(f("text"), q.Text, validate.MultiLine)
	}
	if v.Check(strings.TrimSpace(q.Category) != "" && len(q.Category) <= maxCategory, f("category"), "must be 1 to %d characters", maxCategory) {
		v.Text(f("category"), q.Category, validate.SingleLine)
	}
	v.Check(q.Difficulty >= 1 && q.Difficulty <= 5, f("difficulty"), "must be 1 to 5, got %d", q.Difficulty)
	v.Check(len(q.Tags) <= maxTags, f("tags"), "at most %d", maxTags)
	seen := map[string]bool{}
	for i, t := range q.Tags {
		field := fmt.Sprintf("%s[%d]", f("tags"), i)
		if v.Check(t != "" && len(t) <= maxTag && strings.ToLower(t) == t && !seen[t], field,
			"must be 1 to %d lowercase characters, each tag once, got %q", maxTag, t) {
			v.Text(field, t, validate.SingleLine)
		}
		seen[t] = true
	}
	points := q.Rubric.Points
	if !v.Check(len(points) > 0 && len(points) <= maxPoints, f("rubric.points"), "must hold 1 to %d points", maxPoints) {
		return
	}
	for i, p := range points {
		pf := fmt.Sprintf("%s[%d]", f("rubric.points"), i)
		if v.Check(strings.TrimSpace(p.Description) != "" && len(p.Description) <= maxDescription, pf+".description", "must be 1 to %d characters", maxDescription) {
			v.Text(pf+".description", p.Description, validate.MultiLine)
		}
		v.Check(p.Weight >= 1 && p.Weight <= maxWeight, pf+".weight", "must be 1 to %d, got %d", maxWeight, p.Weight)
		if v.Check(len(p.Keywords) > 0 && len(p.Keywords) <= maxKeywords, pf+".keywords", "must hold 1 to %d words or phrases", maxKeywords) {
			for j, k := range p.Keywords {
				field := fmt.Sprintf("%s.keywords[%d]", pf, j)
				if v.Check(strings.TrimSpace(k) != "" && len(k) <= maxKeyword, field, "must be 1 to %d characters", maxKeyword) {
					v.Text(field, k, validate.SingleLine)
				}
			}
		}
	}
}

func checkID(v *validate.Violations, field string, id int64) {
	v.Check(id > 0, field, "is required and must be positive, got %d", id)
}

// criteria returns the criteria with defaults filled in.
func criteria(c *interviewv1.Criteria) (lo, hi, count int32) {
	lo, hi, count = c.GetMinDifficulty(), c.GetMaxDifficulty(), c.GetCount()
	if lo == 0 {
		lo = 1
	}
	if hi == 0 {
		hi = 5
	}
	if count == 0 {
		count = 5
	}
	return lo, hi, count
}
