package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/services/interview/internal/api"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's interview service: both APIs on a real server over a fresh database.
type env struct {
	bank       interviewv1.QuestionBankServiceClient
	interviews interviewv1.InterviewServiceClient
	pool       *pgxpool.Pool // the service's database, for checking rows
	addr       string        // the server's gRPC address, for a connection of a test's own
	// userBank and userInterviews call with no token but the call's own (authtest.As).
	userBank       interviewv1.QuestionBankServiceClient
	userInterviews interviewv1.InterviewServiceClient
}

// newEnv starts the interview service with the rubric evaluator only (no EVALUATOR_URL).
func newEnv(t testing.TB) env {
	t.Helper()
	return newEnvWith(t, evaluate.Config{})
}

// newEnvWith starts the interview service's server as the binary does (apptest.StartServer:
// its interceptors, retries and locks at their defaults), with the evaluator cfg describes,
// on a fresh database.
func newEnvWith(t testing.TB, cfg evaluate.Config) env {
	t.Helper()
	opts := app.Options{Name: "interview", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}
	svc, conn := apptest.StartServer(t, opts, nil, func(svc *app.Service) []string {
		deps := api.Deps{Base: svc.Base, Evaluator: evaluate.New(cfg, &http.Client{}, svc.Server.Registry())}
		interviewv1.RegisterQuestionBankServiceServer(svc.Server, api.NewQuestionBank(deps))
		interviewv1.RegisterInterviewServiceServer(svc.Server, api.NewInterviews(deps))
		return []string{interviewv1.QuestionBankService_ServiceDesc.ServiceName, interviewv1.InterviewService_ServiceDesc.ServiceName}
	})
	userConn := apptest.Dial(t, svc.Server.GRPCAddr())
	return env{bank: interviewv1.NewQuestionBankServiceClient(conn), interviews: interviewv1.NewInterviewServiceClient(conn), pool: svc.Pool, addr: svc.Server.GRPCAddr(),
		userBank: interviewv1.NewQuestionBankServiceClient(userConn), userInterviews: interviewv1.NewInterviewServiceClient(userConn)}
}

// wantStatus fails the test unless err carries code and a message containing msg.
func wantStatus(t testing.TB, err error, code codes.Code, msg string) {
	t.Helper()
	apptest.WantCode(t, err, code)
	if got := status.Convert(err).Message(); !strings.Contains(got, msg) {
		t.Fatalf("error message = %q, want one containing %q", got, msg)
	}
}

// wantViolation fails the test unless err is INVALID_ARGUMENT with a BadRequest violation
// on field.
func wantViolation(t testing.TB, err error, field string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("error = %v, want code InvalidArgument", err)
	}
	var fields []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			if v.GetField() == field {
				return
			}
			fields = append(fields, v.GetField())
		}
	}
	t.Fatalf("error = %v: violations on %q, want one on %q", err, fields, field)
}

// point is a rubric point of weight w met by any of keywords.
func point(description string, w int32, keywords ...string) *interviewv1.RubricPoint {
	return &interviewv1.RubricPoint{Description: description, Weight: w, Keywords: keywords}
}

// question returns a valid question; its rubric has one point met by the word "answer".
func question(key, category string, difficulty int32, tags ...string) *interviewv1.Question {
	return &interviewv1.Question{
		Key: key, Text: "Question " + key + "?", Category: category, Difficulty: difficulty, Tags: tags,
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{point("mentions the answer of "+key, 1, "answer")}},
	}
}

// create stores questions through CreateQuestion and returns them as stored.
func (e env) create(t testing.TB, qs ...*interviewv1.Question) []*interviewv1.Question {
	t.Helper()
	var out []*interviewv1.Question
	for _, q := range qs {
		resp, err := e.bank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{Question: q})
		if err != nil {
			t.Fatalf("CreateQuestion(%q): %v", q.GetKey(), err)
		}
		out = append(out, resp.GetQuestion())
	}
	return out
}

// start opens a session for candidate through StartSession.
func (e env) start(t testing.TB, candidate string, c *interviewv1.Criteria) *interviewv1.Session {
	t.Helper()
	resp, err := e.interviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: candidate, Criteria: c})
	if err != nil {
		t.Fatalf("StartSession(%q, %v): %v", candidate, c, err)
	}
	return resp.GetSession()
}

// answer submits an answer that must be accepted.
func (e env) answer(t testing.TB, sessionID, questionID int64, text string) *interviewv1.SubmitAnswerResponse {
	t.Helper()
	resp, err := e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{
		SessionId: sessionID, QuestionId: questionID, Answer: text})
	if err != nil {
		t.Fatalf("SubmitAnswer(%d, %d): %v", sessionID, questionID, err)
	}
	return resp
}

// storedAnswers counts the answers stored for a session.
func (e env) storedAnswers(t testing.TB, sessionID int64) int {
	t.Helper()
	var n int
	err := e.pool.QueryRow(t.Context(),
		`SELECT count(*) FROM interview.session_questions WHERE session_id = $1 AND answer IS NOT NULL`, sessionID).Scan(&n)
	if err != nil {
		t.Fatalf("count answers: %v", err)
	}
	return n
}
