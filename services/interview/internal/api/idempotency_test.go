package api_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
)

// concurrentCalls is how many identical creations race in the concurrency tests.
const concurrentCalls = 16

// concurrently runs f from n goroutines released together and returns their results.
func concurrently[T any](n int, f func() (T, error)) ([]T, []error) {
	out, errs := make([]T, n), make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i], errs[i] = f()
		})
	}
	close(start)
	wg.Wait()
	return out, errs
}

// count runs a count(*) query on the service's database.
func (e env) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(t.Context(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// wantReused fails the test unless err is ALREADY_EXISTS naming the reused request_id.
func wantReused(t testing.TB, err error, requestID string) {
	t.Helper()
	wantStatus(t, err, codes.AlreadyExists, `request_id "`+requestID+`" was already used for a different request`)
}

// TestQuestionBank_CreateQuestion_RequestID: with a request_id, a repeat of CreateQuestion
// by the same caller returns the first question and creates nothing, however many race; the
// same request_id for another question is ALREADY_EXISTS; without one, each call creates.
func TestQuestionBank_CreateQuestion_RequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	editor := authtest.As(t, "editor@example.com", auth.RoleIngest)
	create := func(ctx context.Context, q *interviewv1.Question, rid string) (*interviewv1.CreateQuestionResponse, error) {
		return e.userBank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: q, RequestId: rid}, editor)
	}
	countKey := func(t *testing.T, prefix string) int {
		return e.count(t, `SELECT count(*) FROM interview.questions WHERE key LIKE $1 || '%'`, prefix)
	}

	t.Run("repeated", func(t *testing.T) {
		t.Parallel()
		first, err := create(t.Context(), question("rid-repeated", "SQL", 2, "joins"), "rep-1")
		if err != nil {
			t.Fatalf("CreateQuestion: %v", err)
		}
		// An update between the calls: a repeat returns the question as it is now, not a
		// conflict, though its stored fields no longer match the request's.
		updated, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{
			Question: &interviewv1.Question{Id: first.GetQuestion().GetId(), Text: "Edited?"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}}})
		if err != nil {
			t.Fatal(err)
		}
		in := question("rid-repeated", "SQL", 2, "joins")
		in.Etag = `"42"` // ignored on create, so not part of the request
		again, err := create(t.Context(), in, "rep-1")
		if err != nil {
			t.Fatalf("CreateQuestion again: %v", err)
		}
		if diff := cmp.Diff(updated.GetQuestion(), again.GetQuestion(), protocmp.Transform()); diff != "" {
			t.Errorf("repeat mismatch, want the first question as it is now (-want +got):\n%s", diff)
		}
		if n := countKey(t, "rid-repeated"); n != 1 {
			t.Errorf("%d questions after a repeat, want 1", n)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		resps, errs := concurrently(concurrentCalls, func() (*interviewv1.CreateQuestionResponse, error) {
			return create(t.Context(), question("rid-concurrent", "SQL", 3), "conc-1")
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: CreateQuestion = %v", i, err)
			}
			if diff := cmp.Diff(resps[0], resps[i], protocmp.Transform()); diff != "" {
				t.Errorf("call %d answered otherwise than call 0 (-0 +%d):\n%s", i, i, diff)
			}
		}
		if n := countKey(t, "rid-concurrent"); n != 1 {
			t.Errorf("%d questions after %d concurrent calls with one request_id, want 1", n, concurrentCalls)
		}
	})

	t.Run("reused_for_another_question", func(t *testing.T) {
		t.Parallel()
		if _, err := create(t.Context(), question("rid-reused", "SQL", 1), "reused-1"); err != nil {
			t.Fatal(err)
		}
		edits := map[string]func(q *interviewv1.Question){
			"key":        func(q *interviewv1.Question) { q.Key = "rid-reused-2" },
			"text":       func(q *interviewv1.Question) { q.Text = "Another?" },
			"difficulty": func(q *interviewv1.Question) { q.Difficulty = 2 },
			"tags":       func(q *interviewv1.Question) { q.Tags = []string{"new"} },
			"rubric":     func(q *interviewv1.Question) { q.Rubric.Points[0].Keywords = []string{"other"} },
		}
		for field, edit := range edits {
			q := question("rid-reused", "SQL", 1)
			edit(q)
			_, err := create(t.Context(), q, "reused-1")
			if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), `request_id "reused-1"`) {
				t.Errorf("CreateQuestion(other %s, same request_id) = %v, want ALREADY_EXISTS naming the request_id", field, err)
			}
		}
		// A taken key under a request_id not used yet is the key's conflict.
		_, err := create(t.Context(), question("rid-reused", "SQL", 1), "reused-2")
		wantStatus(t, err, codes.AlreadyExists, `question "rid-reused"`)
		if n := countKey(t, "rid-reused"); n != 1 {
			t.Errorf("%d questions, want 1", n)
		}
	})

	t.Run("scoped_to_the_caller", func(t *testing.T) {
		t.Parallel()
		other := authtest.As(t, "other-editor@example.com", auth.RoleIngest)
		if _, err := create(t.Context(), question("rid-scope-1", "SQL", 1), "shared"); err != nil {
			t.Fatal(err)
		}
		q, err := e.userBank.CreateQuestion(t.Context(), &interviewv1.CreateQuestionRequest{
			Question: question("rid-scope-2", "SQL", 1), RequestId: "shared"}, other)
		if err != nil || q.GetQuestion().GetKey() != "rid-scope-2" {
			t.Errorf("another caller's CreateQuestion with the same request_id = %v, %v; want its own question", q, err)
		}
	})

	t.Run("without_request_id", func(t *testing.T) {
		t.Parallel()
		for _, key := range []string{"rid-none-1", "rid-none-2"} {
			if _, err := create(t.Context(), question(key, "SQL", 1), ""); err != nil {
				t.Fatalf("CreateQuestion(%s): %v", key, err)
			}
		}
		_, err := create(t.Context(), question("rid-none-1", "SQL", 1), "")
		wantStatus(t, err, codes.AlreadyExists, `question "rid-none-1"`)
		if n := countKey(t, "rid-none-"); n != 2 {
			t.Errorf("%d questions after two creations without request_id, want 2", n)
		}
	})
}

// TestInterviews_StartSession_RequestID: with a request_id, a repeat of StartSession for the
// same candidate returns the first session with its questions and opens no other; the same
// request_id with other criteria is ALREADY_EXISTS; without one, each call opens a session.
func TestInterviews_StartSession_RequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "idem", "Idem", 10)
	start := func(ctx context.Context, candidate string, c *interviewv1.Criteria, rid string) (*interviewv1.StartSessionResponse, error) {
		return e.userInterviews.StartSession(ctx, &interviewv1.StartSessionRequest{Criteria: c, RequestId: rid},
			authtest.As(t, candidate))
	}
	countSessions := func(t *testing.T, candidate string) int {
		return e.count(t, `SELECT count(*) FROM interview.sessions WHERE candidate = $1`, candidate)
	}
	countAsked := func(t *testing.T, candidate string) int {
		return e.count(t, `SELECT count(*) FROM interview.session_questions sq JOIN interview.sessions s ON s.id = sq.session_id
			WHERE s.candidate = $1`, candidate)
	}
	criteria := &interviewv1.Criteria{Categories: []string{"Idem"}, Count: 3}

	t.Run("repeated", func(t *testing.T) {
		t.Parallel()
		const who = "repeat@example.com"
		first, err := start(t.Context(), who, criteria, "start-1")
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		s := first.GetSession()
		e.answer(t, s.GetId(), s.GetQuestions()[0].GetQuestionId(), "the answer")
		// The same request in other words: defaults spelled out, the candidate named, an
		// admin for the candidate. Each returns the session as it is now, with its answer.
		same := []struct {
			name string
			call func() (*interviewv1.StartSessionResponse, error)
		}{
			{"same", func() (*interviewv1.StartSessionResponse, error) { return start(t.Context(), who, criteria, "start-1") }},
			{"defaults_spelled_out", func() (*interviewv1.StartSessionResponse, error) {
				c := proto.Clone(criteria).(*interviewv1.Criteria)
				c.MinDifficulty, c.MaxDifficulty = 1, 5
				return start(t.Context(), who, c, "start-1")
			}},
			{"admin_for_the_candidate", func() (*interviewv1.StartSessionResponse, error) {
				return e.interviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: who, Criteria: criteria, RequestId: "start-1"})
			}},
		}
		for _, tt := range same {
			again, err := tt.call()
			if err != nil {
				t.Fatalf("%s: StartSession again: %v", tt.name, err)
			}
			got := again.GetSession()
			if got.GetId() != s.GetId() || !cmp.Equal(questionIDs(got), questionIDs(s)) || got.GetQuestions()[0].GetAnswer() == nil {
				t.Errorf("%s: StartSession again = session %d asking %v; want the first, %d asking %v, with its answer",
					tt.name, got.GetId(), questionIDs(got), s.GetId(), questionIDs(s))
			}
		}
		if n, asked := countSessions(t, who), countAsked(t, who); n != 1 || asked != 3 {
			t.Errorf("%d sessions asking %d questions after repeats, want 1 asking 3", n, asked)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		t.Parallel()
		const who = "concurrent@example.com"
		resps, errs := concurrently(concurrentCalls, func() (*interviewv1.StartSessionResponse, error) {
			return start(t.Context(), who, criteria, "start-1")
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: StartSession = %v", i, err)
			}
			if diff := cmp.Diff(resps[0], resps[i], protocmp.Transform()); diff != "" {
				t.Errorf("call %d answered otherwise than call 0 (-0 +%d):\n%s", i, i, diff)
			}
		}
		if n, asked := countSessions(t, who), countAsked(t, who); n != 1 || asked != 3 {
			t.Errorf("%d sessions asking %d questions after %d concurrent calls with one request_id, want 1 asking 3",
				n, asked, concurrentCalls)
		}
	})

	t.Run("reused_for_other_criteria", func(t *testing.T) {
		t.Parallel()
		const who = "reused@example.com"
		if _, err := start(t.Context(), who, criteria, "start-1"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*interviewv1.Criteria{
			{Categories: []string{"Idem"}, Count: 4},
			{Categories: []string{"Idem"}, Count: 3, MinDifficulty: 2},
			{Categories: []string{"Idem"}, Count: 3, MaxDifficulty: 4},
			{Count: 3},
			{Categories: []string{"Idem", "Other"}, Count: 3},
		} {
			_, err := start(t.Context(), who, c, "start-1")
			wantReused(t, err, "start-1")
		}
		if n := countSessions(t, who); n != 1 {
			t.Errorf("%d sessions, want 1", n)
		}
	})

	t.Run("scoped_to_the_candidate", func(t *testing.T) {
		t.Parallel()
		a, err := start(t.Context(), "scope-a@example.com", criteria, "shared")
		if err != nil {
			t.Fatal(err)
		}
		b, err := start(t.Context(), "scope-b@example.com", criteria, "shared")
		if err != nil {
			t.Fatalf("another candidate's StartSession with the same request_id: %v", err)
		}
		if a.GetSession().GetId() == b.GetSession().GetId() || b.GetSession().GetCandidate() != "scope-b@example.com" {
			t.Errorf("second candidate's session = %v, want a new one of its own", b.GetSession())
		}
	})

	t.Run("without_request_id", func(t *testing.T) {
		t.Parallel()
		const who = "no-rid@example.com"
		for range 2 {
			if _, err := start(t.Context(), who, criteria, ""); err != nil {
				t.Fatalf("StartSession: %v", err)
			}
		}
		if n := countSessions(t, who); n != 2 {
			t.Errorf("%d sessions after two starts without request_id, want 2", n)
		}
	})
}

// TestRequestID_Invalid: a request_id PostgreSQL cannot store (a NUL byte), or holding
// control characters, or too long, is a field violation, never INTERNAL.
func TestRequestID_Invalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "bad-rid", "BadRID", 2)
	calls := map[string]func(ctx context.Context, rid string) error{
		"CreateQuestion": func(ctx context.Context, rid string) error {
			_, err := e.bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: question("bad-rid-new", "SQL", 1), RequestId: rid})
			return err
		},
		"StartSession": func(ctx context.Context, rid string) error {
			_, err := e.interviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "ada@example.com",
				Criteria: &interviewv1.Criteria{Categories: []string{"BadRID"}, Count: 1}, RequestId: rid})
			return err
		},
	}
	ids := map[string]string{
		"nul":      "retry\x00-1",
		"newline":  "retry\n1",
		"escape":   "\x1b[31m",
		"too_long": strings.Repeat("r", 101),
	}
	t.Run("refused", func(t *testing.T) { // returns once its parallel subtests are done
		for method, call := range calls {
			for name, rid := range ids {
				t.Run(method+"_"+name, func(t *testing.T) {
					t.Parallel()
					wantViolation(t, call(t.Context(), rid), "request_id")
				})
			}
		}
	})
	if n := e.count(t, `SELECT count(*) FROM interview.questions`); n != 2 {
		t.Errorf("%d questions after refused calls, want the 2 of the bank", n)
	}
	if n := e.count(t, `SELECT count(*) FROM interview.sessions`); n != 0 {
		t.Errorf("%d sessions after refused calls, want 0", n)
	}
}
