package api_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/validate/validatetest"
	"github.com/pgfleet/pgfleet/services/interview/internal/api"
)

// TestOwnership: a candidate is who their token says, reaches only their own sessions (and
// their streams), and finds another's session refused exactly as a missing one; the question
// bank is read with any token and changed only by an editor.
func TestOwnership(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.bankOf(t, "own", "SQL", 4)
	ada, bob := authtest.As(t, "ada@example.com"), authtest.As(t, "bob@example.com")

	resp, err := e.userInterviews.StartSession(ctx, &interviewv1.StartSessionRequest{Criteria: &interviewv1.Criteria{Count: 2}}, ada)
	if err != nil {
		t.Fatal(err)
	}
	sess := resp.GetSession()
	if sess.GetCandidate() != "ada@example.com" {
		t.Errorf("candidate = %q, want the token's subject", sess.GetCandidate())
	}
	_, err = e.userInterviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "ada@example.com"}, bob)
	apptest.WantCode(t, err, codes.PermissionDenied) // bob cannot start one in ada's name
	bobResp, err := e.userInterviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "bob@example.com", Criteria: &interviewv1.Criteria{Count: 1}}, bob)
	if err != nil {
		t.Fatal(err)
	}

	sid, qid := sess.GetId(), sess.GetQuestions()[0].GetQuestionId()
	calls := []struct {
		name string
		call func(ctx context.Context, sid int64, opt grpc.CallOption) error
	}{
		{"NextQuestion", func(ctx context.Context, sid int64, opt grpc.CallOption) error {
			_, err := e.userInterviews.NextQuestion(ctx, &interviewv1.NextQuestionRequest{SessionId: sid}, opt)
			return err
		}},
		{"SubmitAnswer", func(ctx context.Context, sid int64, opt grpc.CallOption) error {
			_, err := e.userInterviews.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: qid, Answer: "the answer"}, opt)
			return err
		}},
		{"GetSession", func(ctx context.Context, sid int64, opt grpc.CallOption) error {
			_, err := e.userInterviews.GetSession(ctx, &interviewv1.GetSessionRequest{SessionId: sid}, opt)
			return err
		}},
		{"WatchSession", func(ctx context.Context, sid int64, opt grpc.CallOption) error {
			ctx, cancel := context.WithCancel(ctx) // the first message is enough
			defer cancel()
			stream, err := e.userInterviews.WatchSession(ctx, &interviewv1.WatchSessionRequest{SessionId: sid}, opt)
			if err == nil {
				_, err = stream.Recv()
			}
			return err
		}},
		{"CompleteSession", func(ctx context.Context, sid int64, opt grpc.CallOption) error {
			_, err := e.userInterviews.CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: sid}, opt)
			return err
		}},
	}
	const missing = 1 << 40
	for _, c := range calls { // bob's calls first: ada's CompleteSession closes the session
		other := status.Convert(c.call(ctx, sid, bob))
		absent := status.Convert(c.call(ctx, missing, bob))
		if other.Code() != codes.NotFound || absent.Code() != codes.NotFound {
			t.Errorf("%s by another candidate: %v; on a missing session: %v; want NotFound for both", c.name, other.Err(), absent.Err())
		}
		if got, want := other.Message(), strings.ReplaceAll(absent.Message(), strconv.Itoa(missing), strconv.FormatInt(sid, 10)); got != want {
			t.Errorf("%s: another's session says %q, a missing one %q: they must not differ", c.name, got, absent.Message())
		}
		// Nor may the machine-readable part differ.
		apptest.WantReason(t, other.Err(), apierr.SessionNotFound, map[string]string{"session_id": strconv.FormatInt(sid, 10)})
		apptest.WantReason(t, absent.Err(), apierr.SessionNotFound, map[string]string{"session_id": strconv.Itoa(missing)})
		apptest.WantCode(t, c.call(ctx, sid, grpc.EmptyCallOption{}), codes.Unauthenticated)
	}
	if n := e.storedAnswers(t, sid); n != 0 {
		t.Fatalf("%d answers stored after bob's calls, want 0", n)
	}
	for _, c := range calls {
		if err := c.call(ctx, sid, ada); err != nil {
			t.Errorf("%s by the candidate: %v", c.name, err)
		}
	}

	// ListSessions: one's own, even when filtering for another's; an admin sees all.
	list := func(opt grpc.CallOption, filter string) []int64 {
		t.Helper()
		resp, err := e.userInterviews.ListSessions(ctx, &interviewv1.ListSessionsRequest{Filter: filter}, opt)
		if err != nil {
			t.Fatalf("ListSessions: %v", err)
		}
		var ids []int64
		for _, s := range resp.GetSessions() {
			ids = append(ids, s.GetId())
		}
		return ids
	}
	bobSid := bobResp.GetSession().GetId()
	for _, tc := range []struct {
		name string
		opt  grpc.CallOption
		flt  string
		want []int64
	}{
		{"ada", ada, "", []int64{sid}},
		{"bob filtering for ada's", bob, `candidate = "ada@example.com"`, nil},
		{"admin", authtest.As(t, "ops@example.com", "admin"), "", []int64{sid, bobSid}},
	} {
		if got := list(tc.opt, tc.flt); !slices.Equal(got, tc.want) {
			t.Errorf("ListSessions as %s = %v, want %v", tc.name, got, tc.want)
		}
	}

	// The question bank: read with any token, changed only with role ingest or admin.
	if _, err := e.userBank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{}, bob); err != nil {
		t.Errorf("ListQuestions with a user token: %v", err)
	}
	_, err = e.userBank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{})
	apptest.WantCode(t, err, codes.Unauthenticated)
	q := question("by-bob", "SQL", 1)
	_, err = e.userBank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: q}, bob)
	apptest.WantCode(t, err, codes.PermissionDenied)
	if _, err := e.userBank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: q}, authtest.As(t, "loader", "ingest")); err != nil {
		t.Errorf("CreateQuestion with role ingest: %v", err)
	}
}

// TestValidate_everyMethod does for validation what Policy does for access: every RPC of the
// service has a case in Validate (an empty one when there is nothing to check), and a
// request without one is refused.
func TestValidate_everyMethod(t *testing.T) {
	t.Parallel()
	validatetest.EveryMethod(t, api.Validate, interviewv1.File_pgfleet_interview_v1_interview_proto)
}

// TestRoutes_everyMethod: every RPC says where it reads, and no write reads on a replica.
func TestRoutes_everyMethod(t *testing.T) {
	t.Parallel()
	if err := api.Routes.Check(interviewv1.File_pgfleet_interview_v1_interview_proto); err != nil {
		t.Error(err)
	}
}
