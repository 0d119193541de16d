package main

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRun starts the real binary's run on an empty database and takes one question through
// a whole interview: import, start, next, answer, complete.
func TestRun(t *testing.T) {
	t.Parallel()
	grpcAddr := freeAddr(t)
	env := envconfig.MapLookuper(map[string]string{
		"DATABASE_URL":       pgtest.NewDBURL(t),
		"GRPC_ADDR":          grpcAddr,
		"METRICS_ADDR":       freeAddr(t),
		"DB_HEALTH_INTERVAL": "200ms",
		"DRAIN_TIMEOUT":      "2s",
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.DiscardHandler), env) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	hc := healthpb.NewHealthClient(conn)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: interviewv1.InterviewService_ServiceDesc.ServiceName})
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("not SERVING after 30s: %v %v", resp, err)
		}
	}

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
