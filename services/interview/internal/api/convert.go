package api

import (
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

func toQuestion(q store.Question) *interviewv1.Question {
	out := &interviewv1.Question{
		Id: q.ID, Key: q.Key, Text: q.Text, Category: q.Category, Difficulty: q.Difficulty, Tags: q.Tags,
		Rubric: &interviewv1.Rubric{}, Etag: etag(q.Version),
		CreateTime: timestamppb.New(q.CreateTime), UpdateTime: timestamppb.New(q.UpdateTime),
	}
	for _, p := range q.Rubric.Points {
		out.Rubric.Points = append(out.Rubric.Points, &interviewv1.RubricPoint{
			Description: p.Description, Weight: int32(p.Weight), Keywords: p.Keywords})
	}
	return out
}

func fromQuestion(q *interviewv1.Question) store.Question {
	out := store.Question{
		ID: q.GetId(), Key: q.GetKey(), Text: q.GetText(), Category: q.GetCategory(),
		Difficulty: q.GetDifficulty(), Tags: q.GetTags(),
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	for _, p := range q.GetRubric().GetPoints() {
		out.Rubric.Points = append(out.Rubric.Points, store.Point{
			Description: p.GetDescription(), Weight: int(p.GetWeight()), Keywords: p.GetKeywords()})
	}
	return out
}

// etag renders a question's version; it is opaque to clients.
func etag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// parseEtag reads an etag back; "" means none was sent.
func parseEtag(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	if len(s) < 3 || s[0] != '"' || s[len(s)-1] != '"' {
		return 0, false
	}
	v, err := strconv.ParseInt(s[1:len(s)-1], 10, 64)
	return v, err == nil && v > 0
}

func toSession(s store.Session, qs []store.SessionQuestion) *interviewv1.Session {
	out := &interviewv1.Session{
		Id: s.ID, Candidate: s.Candidate, State: interviewv1.SessionState(interviewv1.SessionState_value[s.State]),
		Criteria:   &interviewv1.Criteria{Categories: s.Categories, MinDifficulty: s.MinDifficulty, MaxDifficulty: s.MaxDifficulty, Count: s.QuestionCount},
		CreateTime: timestamppb.New(s.CreateTime),
	}
	if s.CompleteTime != nil {
		out.CompleteTime = timestamppb.New(*s.CompleteTime)
	}
	if len(s.Summary) > 0 {
		out.Summary = decodeSummary(s.Summary)
	}
	for _, q := range qs {
		out.Questions = append(out.Questions, toSessionQuestion(q))
	}
	return out
}

// toSessionQuestion shows a question as asked: its rubric stays hidden.
func toSessionQuestion(q store.SessionQuestion) *interviewv1.SessionQuestion {
	out := &interviewv1.SessionQuestion{Position: q.Position, QuestionId: q.QuestionID, Text: q.Text,
		Category: q.Category, Difficulty: q.Difficulty}
	if q.Answer != nil {
		out.Answer = &interviewv1.Answer{Text: *q.Answer, Evaluation: &interviewv1.Evaluation{
			Score: deref(q.Score), PointsMet: q.Met, PointsMissed: q.Missed, Evaluator: deref(q.Evaluator),
			FallbackReason: deref(q.Fallback), Feedback: deref(q.Feedback)}}
		if q.SubmitTime != nil {
			out.Answer.SubmitTime = timestamppb.New(*q.SubmitTime)
		}
	}
	return out
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// evalRubric converts a stored rubric for the evaluator.
func evalRubric(r store.Rubric) evaluate.Rubric {
	out := evaluate.Rubric{}
	for _, p := range r.Points {
		out.Points = append(out.Points, evaluate.Point{Description: p.Description, Weight: p.Weight, Keywords: p.Keywords})
	}
	return out
}

// toEvaluation names the points an evaluator met and missed.
func toEvaluation(r evaluate.Result, rubric store.Rubric) store.Evaluation {
	e := store.Evaluation{Score: r.Score, Evaluator: r.Evaluator, FallbackReason: r.Fallback, Feedback: r.Feedback}
	for _, i := range r.Met {
		e.PointsMet = append(e.PointsMet, rubric.Points[i].Description)
	}
	for _, i := range r.Missed {
		e.PointsMissed = append(e.PointsMissed, rubric.Points[i].Description)
	}
	return e
}

func protoEvaluation(e store.Evaluation) *interviewv1.Evaluation {
	return &interviewv1.Evaluation{Score: e.Score, PointsMet: e.PointsMet, PointsMissed: e.PointsMissed,
		Evaluator: e.Evaluator, FallbackReason: e.FallbackReason, Feedback: e.Feedback}
}
