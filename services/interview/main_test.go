package main

import (
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestRun starts the real binary's run on an empty database and takes one question through
// a whole interview: import, start, next, answer, complete.
func TestRun(t *testing.T) {
	t.Parallel()
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":       pgtest.NewDBURL(t),
		"DB_HEALTH_INTERVAL": "200ms",
		"DRAIN_TIMEOUT":      "2s",
	})
	conn := svc.Conn
	apptest.AwaitHealth(t, conn, interviewv1.InterviewService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING, 30*time.Second)

	bank := interviewv1.NewQuestionBankServiceClient(conn)
	if _, err := bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: []*interviewv1.Question{{
		Key: "sql-joins-01", Text: "What does a LEFT JOIN keep?", Category: "SQL", Difficulty: 2, Tags: []string{"sql"},
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{{Description: "all rows of the left table", Weight: 1, Keywords: []string{"all rows"}}}},
	}}}); err != nil {
		t.Fatalf("BulkImportQuestions: %v", err)
	}
	iv := interviewv1.NewInterviewServiceClient(conn)
	start, err := iv.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: "ada@example.com",
		Criteria: &interviewv1.Criteria{Count: 1}})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	sid := start.GetSession().GetId()
	next, err := iv.NextQuestion(t.Context(), &interviewv1.NextQuestionRequest{SessionId: sid})
	if err != nil {
		t.Fatalf("NextQuestion: %v", err)
	}
	ans, err := iv.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{SessionId: sid,
		QuestionId: next.GetQuestion().GetQuestionId(), Answer: "It keeps all rows of the left table."})
	if err != nil || ans.GetEvaluation().GetScore() != 100 || ans.GetEvaluation().GetEvaluator() != "rubric" {
		t.Fatalf("SubmitAnswer = %v, %v; want a rubric score of 100", ans, err)
	}
	sum, err := iv.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: sid})
	if err != nil || sum.GetSummary().GetOverallScore() != 100 || sum.GetSummary().GetAnswered() != 1 {
		t.Fatalf("CompleteSession = %v, %v; want overall 100 with 1 answered", sum, err)
	}
}
