package main

import (
	"context"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestOutage stops the database under the real service, with its default retry and breaker
// settings: every call, from the first (while the retrier still retries refused
// connections) to the last (once the breaker has opened), answers UNAVAILABLE with reason
// DATABASE_UNAVAILABLE, never ABORTED (issue 11: the first calls of an outage were reported
// as concurrency conflicts).
func TestOutage(t *testing.T) {
	t.Parallel()
	cluster := pgtest.NewCluster(t)
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":  cluster.NewDBURL(t),
		"DRAIN_TIMEOUT": "2s",
	})
	apptest.AwaitHealth(t, svc.Conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)
	bank, iv := interviewv1.NewQuestionBankServiceClient(svc.Conn), interviewv1.NewInterviewServiceClient(svc.Conn)
	question := func(key string) *interviewv1.Question {
		return &interviewv1.Question{Key: key, Text: "What does a LEFT JOIN keep?", Category: "SQL", Difficulty: 2,
			Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{{Description: "all left rows", Weight: 1, Keywords: []string{"all rows"}}}}}
	}
	if _, err := bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{
		Questions: []*interviewv1.Question{question("sql-joins-01")}}); err != nil {
		t.Fatalf("BulkImportQuestions: %v", err)
	}
	start, err := iv.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: "ada@example.com",
		Criteria: &interviewv1.Criteria{Count: 1}})
	if err != nil {
		t.Fatalf("StartSession: %v", err)
	}
	sess := start.GetSession()
	qid := sess.GetQuestions()[0].GetQuestionId()

	cluster.StopUntilCleanup(t)
	apptest.RequireUnavailable(t, 3,
		apptest.Call{Name: "GetQuestion", Do: func(ctx context.Context) error {
			_, err := bank.GetQuestion(ctx, &interviewv1.GetQuestionRequest{QuestionId: qid})
			return err
		}},
		apptest.Call{Name: "ListQuestions", Do: func(ctx context.Context) error {
			_, err := bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{})
			return err
		}},
		apptest.Call{Name: "StartSession", Do: func(ctx context.Context) error {
			_, err := iv.StartSession(ctx, &interviewv1.StartSessionRequest{Criteria: &interviewv1.Criteria{Count: 1}})
			return err
		}},
		apptest.Call{Name: "SubmitAnswer", Do: func(ctx context.Context) error {
			_, err := iv.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sess.GetId(), QuestionId: qid, Answer: "all rows"})
			return err
		}},
		apptest.Call{Name: "NextQuestion", Do: func(ctx context.Context) error {
			_, err := iv.NextQuestion(ctx, &interviewv1.NextQuestionRequest{SessionId: sess.GetId()})
			return err
		}},
		apptest.Call{Name: "GetSession", Do: func(ctx context.Context) error {
			_, err := iv.GetSession(ctx, &interviewv1.GetSessionRequest{SessionId: sess.GetId()})
			return err
		}},
		apptest.Call{Name: "ListSessions", Do: func(ctx context.Context) error {
			_, err := iv.ListSessions(ctx, &interviewv1.ListSessionsRequest{})
			return err
		}},
		apptest.Call{Name: "CompleteSession", Do: func(ctx context.Context) error {
			_, err := iv.CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: sess.GetId()})
			return err
		}},
		apptest.Call{Name: "CreateQuestion", Do: func(ctx context.Context) error {
			_, err := bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: question("sql-joins-02")})
			return err
		}},
		apptest.Call{Name: "BulkImportQuestions", Do: func(ctx context.Context) error {
			_, err := bank.BulkImportQuestions(ctx, &interviewv1.BulkImportQuestionsRequest{Questions: []*interviewv1.Question{question("sql-joins-03")}})
			return err
		}},
	)
}
