package api_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
)

// TestText_refused: text with a NUL byte (which PostgreSQL refuses in text: SQLSTATE 22021,
// an INTERNAL error) or another control character is INVALID_ARGUMENT with a violation on
// its field, and writes nothing; a question's text and an answer may span lines.
func TestText_refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bank := e.bankOf(t, "text", "SQL", 2)
	session := e.start(t, "", &interviewv1.Criteria{Count: 2, Categories: []string{"SQL"}})
	create := func(edit func(*interviewv1.Question)) func() error {
		return func() error {
			q := question("zz-text", "SQL", 1)
			edit(q)
			_, err := e.bank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{Question: q})
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"text_nul", create(func(q *interviewv1.Question) { q.Text = "What\x00?" }), "question.text"},
		{"text_escape", create(func(q *interviewv1.Question) { q.Text = "\x1b[2J" }), "question.text"},
		{"category_nul", create(func(q *interviewv1.Question) { q.Category = "\x00" }), "question.category"},
		{"category_newline", create(func(q *interviewv1.Question) { q.Category = "SQL\n" }), "question.category"},
		{"tag_nul", create(func(q *interviewv1.Question) { q.Tags = []string{"a\x00"} }), "question.tags[0]"},
		{"rubric_description_nul", create(func(q *interviewv1.Question) { q.Rubric.Points[0].Description = "\x00" }),
			"question.rubric.points[0].description"},
		{"rubric_keyword_control", create(func(q *interviewv1.Question) { q.Rubric.Points[0].Keywords = []string{"key\x01word"} }),
			"question.rubric.points[0].keywords[0]"},
		{"import_category_nul", func() error {
			q := question("zz-import", "a\x00", 1)
			_, err := e.bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: []*interviewv1.Question{q}})
			return err
		}, "questions[0].category"},
		{"update_text_nul", func() error {
			q := proto.Clone(bank[0]).(*interviewv1.Question)
			q.Text = "\x00"
			_, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{Question: q})
			return err
		}, "question.text"},
		{"session_category_nul", func() error {
			_, err := e.interviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{
				Criteria: &interviewv1.Criteria{Categories: []string{"SQL\x00"}}})
			return err
		}, "criteria.categories[0]"},
		{"candidate_nul", func() error {
			_, err := e.interviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: "ada\x00@example.com",
				Criteria: &interviewv1.Criteria{Count: 1}})
			return err
		}, "candidate"},
		{"answer_nul", func() error {
			_, err := e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{SessionId: session.GetId(),
				QuestionId: session.GetQuestions()[0].GetQuestionId(), Answer: "the answer\x00"})
			return err
		}, "answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantViolation(t, tt.call(), tt.field)
		})
	}
	if n := e.count(t, "SELECT count(*) FROM interview.questions WHERE key LIKE 'zz-%' OR text <> 'Question ' || key || '?'"); n != 0 {
		t.Errorf("%d questions written", n)
	}
	if n := e.count(t, "SELECT count(*) FROM interview.sessions"); n != 1 {
		t.Errorf("sessions = %d, want 1", n)
	}
	if n := e.storedAnswers(t, session.GetId()); n != 0 {
		t.Errorf("answers = %d, want 0", n)
	}

	// Tabs and line breaks are text of questions and answers.
	e.create(t, &interviewv1.Question{Key: "zz-lines", Text: "Two lines:\n\tfirst\r\n\tsecond", Category: "SQL", Difficulty: 1,
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{point("covers\nboth", 1, "first")}}})
	e.answer(t, session.GetId(), session.GetQuestions()[0].GetQuestionId(), "first line\nsecond line")
}
