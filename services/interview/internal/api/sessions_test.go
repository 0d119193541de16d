package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
)

// bankOf creates n questions of category, difficulty 1 + i%5, keys prefixed by prefix.
func (e env) bankOf(t testing.TB, prefix, category string, n int) []*interviewv1.Question {
	t.Helper()
	qs := make([]*interviewv1.Question, n)
	for i := range qs {
		qs[i] = question(fmt.Sprintf("%s-%02d", prefix, i), category, int32(1+i%5))
	}
	return e.create(t, qs...)
}

// questionIDs returns the question ids of a session, in order.
func questionIDs(s *interviewv1.Session) []int64 {
	var ids []int64
	for _, q := range s.GetQuestions() {
		ids = append(ids, q.GetQuestionId())
	}
	return ids
}

func TestInterviews_StartSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("criteria", func(t *testing.T) {
		t.Parallel()
		qs := e.create(t,
			question("crit-sql-1", "Crit-SQL", 1), question("crit-sql-2", "Crit-SQL", 2), question("crit-sql-2b", "Crit-SQL", 2),
			question("crit-sql-3", "Crit-SQL", 3), question("crit-sql-4", "Crit-SQL", 4), question("crit-sql-5", "Crit-SQL", 5),
			question("crit-go-2", "Crit-Go", 2), question("crit-go-3", "Crit-Go", 3), question("crit-go-4", "Crit-Go", 4),
			question("crit-pg-2", "Crit-PG", 2),
		)
		byID := map[int64]*interviewv1.Question{}
		for _, q := range qs {
			byID[q.GetId()] = q
		}
		criteria := &interviewv1.Criteria{Categories: []string{"Crit-SQL", "Crit-Go"}, MinDifficulty: 2, MaxDifficulty: 3, Count: 4}
		for range 5 { // random picks: look at a few
			s := e.start(t, "crit@example.com", criteria)
			if s.GetId() <= 0 || s.GetCandidate() != "crit@example.com" || s.GetState() != interviewv1.SessionState_SESSION_STATE_IN_PROGRESS ||
				s.GetCreateTime() == nil || s.GetCompleteTime() != nil || s.GetSummary() != nil {
				t.Errorf("StartSession = %v, want a new in-progress session of crit@example.com", s)
			}
			if diff := cmp.Diff(criteria, s.GetCriteria(), protocmp.Transform()); diff != "" {
				t.Errorf("criteria mismatch (-want +got):\n%s", diff)
			}
			if len(s.GetQuestions()) != 4 {
				t.Fatalf("StartSession gave %d questions, want 4", len(s.GetQuestions()))
			}
			seen := map[int64]bool{}
			for i, sq := range s.GetQuestions() {
				q := byID[sq.GetQuestionId()]
				want := &interviewv1.SessionQuestion{Position: int32(i + 1), QuestionId: q.GetId(), Text: q.GetText(),
					Category: q.GetCategory(), Difficulty: q.GetDifficulty()}
				if diff := cmp.Diff(want, sq, protocmp.Transform()); diff != "" {
					t.Errorf("question %d mismatch (-want +got):\n%s", i, diff)
				}
				if q.GetCategory() == "Crit-PG" || q.GetDifficulty() < 2 || q.GetDifficulty() > 3 {
					t.Errorf("question %q (%s, difficulty %d) does not match %v", q.GetKey(), q.GetCategory(), q.GetDifficulty(), criteria)
				}
				if seen[q.GetId()] {
					t.Errorf("question %q asked twice in session %d", q.GetKey(), s.GetId())
				}
				seen[q.GetId()] = true
			}
		}
	})

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t) // defaults match every category: a bank of its own
		e.bankOf(t, "dflt", "Defaults", 7)
		s := e.start(t, "dflt@example.com", nil)
		want := &interviewv1.Criteria{MinDifficulty: 1, MaxDifficulty: 5, Count: 5}
		if diff := cmp.Diff(want, s.GetCriteria(), protocmp.Transform()); diff != "" {
			t.Errorf("criteria mismatch (-want +got):\n%s", diff)
		}
		if got := len(s.GetQuestions()); got != 5 {
			t.Errorf("StartSession with count 0 gave %d questions, want 5", got)
		}
	})

	t.Run("unseen_first", func(t *testing.T) {
		t.Parallel()
		bank := e.bankOf(t, "unseen", "Unseen", 6)
		criteria := &interviewv1.Criteria{Categories: []string{"Unseen"}, Count: 3}
		first := questionIDs(e.start(t, "seen@example.com", criteria))
		second := questionIDs(e.start(t, "seen@example.com", criteria))
		all := append(slices.Clone(first), second...)
		slices.Sort(all)
		var want []int64
		for _, q := range bank {
			want = append(want, q.GetId())
		}
		if diff := cmp.Diff(want, all); diff != "" {
			t.Errorf("two sessions of 3 from a bank of 6 (first %v, second %v) do not cover it (-want +got):\n%s", first, second, diff)
		}
		// Seen questions are only put last: a third session still gets its 3.
		if got := len(e.start(t, "seen@example.com", criteria).GetQuestions()); got != 3 {
			t.Errorf("third session has %d questions, want 3", got)
		}
	})

	t.Run("too_few_questions", func(t *testing.T) {
		t.Parallel()
		e.create(t, question("few-1", "Few", 1), question("few-2", "Few", 2), question("few-5", "Few", 5))
		tests := []struct {
			criteria *interviewv1.Criteria
			wantMsg  string
		}{
			{&interviewv1.Criteria{Categories: []string{"Few"}, Count: 4}, "only 3 questions match"},
			{&interviewv1.Criteria{Categories: []string{"Few"}, MinDifficulty: 2, MaxDifficulty: 4, Count: 2}, "only 1 questions match"},
			{&interviewv1.Criteria{Categories: []string{"None such"}, Count: 1}, "only 0 questions match"},
		}
		for _, tt := range tests {
			_, err := e.interviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{Candidate: "few@example.com", Criteria: tt.criteria})
			wantStatus(t, err, codes.FailedPrecondition, tt.wantMsg)
			apptest.WantReason(t, err, apierr.NotEnoughQuestions, map[string]string{"requested": strconv.Itoa(int(tt.criteria.GetCount()))})
		}
		// Exactly as many as asked for is enough.
		e.start(t, "few@example.com", &interviewv1.Criteria{Categories: []string{"Few"}, MinDifficulty: 2, MaxDifficulty: 5, Count: 2})
	})
}

func TestInterviews_NextQuestion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "walk", "Walk", 3)
	s := e.start(t, "walk@example.com", &interviewv1.Criteria{Count: 3})
	qs := s.GetQuestions()

	next := func(wantQuestion *interviewv1.SessionQuestion, wantRemaining int32) {
		t.Helper()
		resp, err := e.interviews.NextQuestion(t.Context(), &interviewv1.NextQuestionRequest{SessionId: s.GetId()})
		if err != nil {
			t.Fatalf("NextQuestion: %v", err)
		}
		want := &interviewv1.NextQuestionResponse{Question: wantQuestion, Remaining: wantRemaining}
		if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
			t.Errorf("NextQuestion mismatch (-want +got):\n%s", diff)
		}
	}
	answer := func(q *interviewv1.SessionQuestion, wantRemaining int32) {
		t.Helper()
		if got := e.answer(t, s.GetId(), q.GetQuestionId(), "an answer").GetRemaining(); got != wantRemaining {
			t.Errorf("SubmitAnswer(position %d) remaining = %d, want %d", q.GetPosition(), got, wantRemaining)
		}
	}
	next(qs[0], 3)
	answer(qs[1], 2) // out of order: the first stays next
	next(qs[0], 2)
	answer(qs[0], 1)
	next(qs[2], 1)
	answer(qs[2], 0)
	next(nil, 0)

	if _, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()}); err != nil {
		t.Fatalf("CompleteSession: %v", err)
	}
	_, err := e.interviews.NextQuestion(t.Context(), &interviewv1.NextQuestionRequest{SessionId: s.GetId()})
	apptest.WantCode(t, err, codes.FailedPrecondition)
	_, err = e.interviews.NextQuestion(t.Context(), &interviewv1.NextQuestionRequest{SessionId: s.GetId() + 1000})
	apptest.WantCode(t, err, codes.NotFound)
}

// joinQuestion is scored by two points of weights 1 and 3.
func joinQuestion(key, category string) *interviewv1.Question {
	return &interviewv1.Question{Key: key, Text: "Compare inner and outer joins.", Category: category, Difficulty: 2,
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
			point("inner join keeps matches", 1, "inner join"),
			point("outer join keeps unmatched rows", 3, "outer join", "left join"),
		}}}
}

// ignoreFeedback leaves out the evaluator's comments, which are free text.
var ignoreFeedback = protocmp.IgnoreFields(&interviewv1.Evaluation{}, "feedback")

func TestInterviews_SubmitAnswer_Rubric(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	tests := []struct {
		name   string
		answer string
		want   *interviewv1.Evaluation
	}{
		{name: "all_points", answer: "An INNER JOIN keeps matching rows; a Left Join also keeps the unmatched left rows.",
			want: &interviewv1.Evaluation{Score: 100, PointsMet: []string{"inner join keeps matches", "outer join keeps unmatched rows"},
				Evaluator: "rubric", FallbackReason: "not configured"}},
		{name: "weighted_part", answer: "An inner join keeps only the matching rows.",
			want: &interviewv1.Evaluation{Score: 25, PointsMet: []string{"inner join keeps matches"},
				PointsMissed: []string{"outer join keeps unmatched rows"}, Evaluator: "rubric", FallbackReason: "not configured"}},
		{name: "heavy_part", answer: "outer join: unmatched rows too",
			want: &interviewv1.Evaluation{Score: 75, PointsMet: []string{"outer join keeps unmatched rows"},
				PointsMissed: []string{"inner join keeps matches"}, Evaluator: "rubric", FallbackReason: "not configured"}},
		{name: "nothing", answer: "I do not know.",
			want: &interviewv1.Evaluation{Score: 0, PointsMissed: []string{"inner join keeps matches", "outer join keeps unmatched rows"},
				Evaluator: "rubric", FallbackReason: "not configured"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			category := fmt.Sprintf("Rubric-%d", i)
			q := e.create(t, joinQuestion(fmt.Sprintf("rubric-%d", i), category))[0]
			s := e.start(t, "rubric@example.com", &interviewv1.Criteria{Categories: []string{category}, Count: 1})
			resp := e.answer(t, s.GetId(), q.GetId(), tt.answer)
			want := &interviewv1.SubmitAnswerResponse{Evaluation: tt.want, Remaining: 0}
			if diff := cmp.Diff(want, resp, protocmp.Transform(), ignoreFeedback); diff != "" {
				t.Errorf("SubmitAnswer(%q) mismatch (-want +got):\n%s", tt.answer, diff)
			}
			got, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
			if err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			stored := got.GetSession().GetQuestions()[0].GetAnswer()
			if stored.GetText() != tt.answer || stored.GetSubmitTime() == nil {
				t.Errorf("stored answer = %q at %v, want %q with a submit time", stored.GetText(), stored.GetSubmitTime(), tt.answer)
			}
			if diff := cmp.Diff(resp.GetEvaluation(), stored.GetEvaluation(), protocmp.Transform()); diff != "" {
				t.Errorf("stored evaluation differs from the one returned (-returned +stored):\n%s", diff)
			}
		})
	}
}

func TestInterviews_SubmitAnswer_Refused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	qs := e.bankOf(t, "refused", "Refused", 3)
	other := e.create(t, question("refused-other", "Elsewhere", 1))[0]
	s := e.start(t, "refused@example.com", &interviewv1.Criteria{Categories: []string{"Refused"}, Count: 3})
	submit := func(sessionID, questionID int64) error {
		_, err := e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{
			SessionId: sessionID, QuestionId: questionID, Answer: "my answer"})
		return err
	}

	e.answer(t, s.GetId(), qs[0].GetId(), "first answer")
	wantStatus(t, submit(s.GetId(), qs[0].GetId()), codes.AlreadyExists, "already exists")
	apptest.WantReason(t, submit(s.GetId(), qs[0].GetId()), apierr.AlreadyAnswered,
		map[string]string{"session_id": strconv.FormatInt(s.GetId(), 10), "question_id": strconv.FormatInt(qs[0].GetId(), 10)})
	wantViolation(t, submit(s.GetId(), other.GetId()), "question_id")
	apptest.WantCode(t, submit(s.GetId()+1000, qs[1].GetId()), codes.NotFound)

	if _, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()}); err != nil {
		t.Fatalf("CompleteSession: %v", err)
	}
	wantStatus(t, submit(s.GetId(), qs[1].GetId()), codes.FailedPrecondition, "takes no more answers")
	apptest.WantReason(t, submit(s.GetId(), qs[1].GetId()), apierr.SessionCompleted, map[string]string{"session_id": strconv.FormatInt(s.GetId(), 10)})
	if got := e.storedAnswers(t, s.GetId()); got != 1 {
		t.Errorf("session holds %d answers, want 1", got)
	}
	got, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	for _, q := range got.GetSession().GetQuestions() {
		if q.GetQuestionId() == qs[0].GetId() && q.GetAnswer().GetText() != "first answer" {
			t.Errorf("answer to %d = %q, want the first one", q.GetQuestionId(), q.GetAnswer().GetText())
		}
	}
}

func TestInterviews_SubmitAnswer_Concurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	t.Run("same_question", func(t *testing.T) {
		t.Parallel()
		q := e.create(t, joinQuestion("same-question", "Same"))[0]
		s := e.start(t, "same@example.com", &interviewv1.Criteria{Categories: []string{"Same"}, Count: 1})
		const n = 16
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{
					SessionId: s.GetId(), QuestionId: q.GetId(), Answer: fmt.Sprintf("answer %d: inner join", i)})
			})
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch status.Code(err) {
			case codes.OK:
				ok++
			case codes.AlreadyExists:
			default:
				t.Errorf("SubmitAnswer %d: %v, want OK or AlreadyExists", i, err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d concurrent answers to one question were accepted, want 1", ok, n)
		}
		if got := e.storedAnswers(t, s.GetId()); got != 1 {
			t.Errorf("session holds %d answers, want 1", got)
		}
	})

	// Answers racing the completion land either before it (and count in the summary) or
	// not at all.
	for round := range 4 {
		t.Run(fmt.Sprintf("racing_completion_%d", round), func(t *testing.T) {
			t.Parallel()
			category := fmt.Sprintf("Race-%d", round)
			const n = 8
			e.bankOf(t, fmt.Sprintf("race-%d", round), category, n)
			s := e.start(t, "race@example.com", &interviewv1.Criteria{Categories: []string{category}, Count: n})
			errs := make([]error, n)
			var summary *interviewv1.Summary
			var completeErr error
			startLine := make(chan struct{})
			var wg sync.WaitGroup
			for i, q := range s.GetQuestions() {
				wg.Go(func() {
					<-startLine
					_, errs[i] = e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{
						SessionId: s.GetId(), QuestionId: q.GetQuestionId(), Answer: "the answer"})
				})
				if i == n/2 {
					wg.Go(func() {
						<-startLine
						var resp *interviewv1.CompleteSessionResponse
						resp, completeErr = e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()})
						summary = resp.GetSummary()
					})
				}
			}
			close(startLine)
			wg.Wait()
			if completeErr != nil {
				t.Fatalf("CompleteSession: %v", completeErr)
			}
			accepted := 0
			for i, err := range errs {
				switch status.Code(err) {
				case codes.OK:
					accepted++
				case codes.FailedPrecondition:
				default:
					t.Errorf("SubmitAnswer %d: %v, want OK or FailedPrecondition", i, err)
				}
			}
			t.Logf("%d of %d answers landed before the completion", accepted, n)
			stored := e.storedAnswers(t, s.GetId())
			if summary.GetAnswered() != int32(stored) || stored != accepted || summary.GetTotal() != n {
				t.Errorf("summary answered %d of %d; %d answers stored, %d accepted: want all three equal, total %d",
					summary.GetAnswered(), summary.GetTotal(), stored, accepted, n)
			}
			apptest.WantCode(t, func() error {
				_, err := e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{
					SessionId: s.GetId(), QuestionId: s.GetQuestions()[0].GetQuestionId(), Answer: "late"})
				return err
			}(), codes.FailedPrecondition)
			if got := e.storedAnswers(t, s.GetId()); got != stored {
				t.Errorf("after completion the session holds %d answers, want %d", got, stored)
			}
		})
	}
}

// evaluatorConfig is a remote evaluator at url with a breaker that stays closed.
func evaluatorConfig(url string, timeout time.Duration) evaluate.Config {
	return evaluate.Config{URL: url, Timeout: timeout, Breaker: breaker.Config{MinRequests: new(uint32(1000)), FailureRatio: 0.9, OpenTimeout: new(time.Second)}}
}

func TestInterviews_SubmitAnswer_Remote(t *testing.T) {
	t.Parallel()
	const answer = "An inner join keeps matches."
	rubricResult := &interviewv1.Evaluation{Score: 25, PointsMet: []string{"inner join keeps matches"},
		PointsMissed: []string{"outer join keeps unmatched rows"}, Evaluator: "rubric"}

	tests := []struct {
		name         string
		handler      http.HandlerFunc
		want         *interviewv1.Evaluation
		wantFallback string // a word of fallback_reason
	}{
		{
			name: "scored",
			handler: func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				if r.Method != http.MethodPost || !strings.Contains(string(body), answer) {
					http.Error(w, "want a POST carrying the answer", http.StatusBadRequest)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(map[string]any{"score": 88.5, "met": []int{0}, "feedback": "good"})
			},
			want: &interviewv1.Evaluation{Score: 88.5, PointsMet: []string{"inner join keeps matches"},
				PointsMissed: []string{"outer join keeps unmatched rows"}, Evaluator: "remote", Feedback: "good"},
		},
		{
			name: "timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Past the 200ms timeout: the evaluator hangs up first, which r.Context()
				// sees once the body is read.
				_, _ = io.Copy(io.Discard, r.Body)
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
				}
			},
			want: rubricResult, wantFallback: "timeout",
		},
		{
			name:    "server_error",
			handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
			want:    rubricResult, wantFallback: "500",
		},
		{
			name: "not_json",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, "{not json")
			},
			want: rubricResult,
		},
		{
			name: "point_out_of_range",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"score": 50, "met": []int{7}, "feedback": "?"})
			},
			want: rubricResult,
		},
		{
			name: "score_out_of_range",
			handler: func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(map[string]any{"score": 150, "met": []int{0}, "feedback": "?"})
			},
			want: rubricResult,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close)
			e := newEnvWith(t, evaluatorConfig(srv.URL, 200*time.Millisecond))
			q := e.create(t, joinQuestion(fmt.Sprintf("remote-%d", i), "Remote"))[0]
			s := e.start(t, "remote@example.com", &interviewv1.Criteria{Count: 1})
			resp := e.answer(t, s.GetId(), q.GetId(), answer)
			got := resp.GetEvaluation()
			opts := []cmp.Option{protocmp.Transform()}
			if tt.want.GetEvaluator() == "rubric" {
				opts = append(opts, ignoreFeedback, protocmp.IgnoreFields(&interviewv1.Evaluation{}, "fallback_reason"))
				if got.GetFallbackReason() == "" || !strings.Contains(got.GetFallbackReason(), tt.wantFallback) {
					t.Errorf("fallback_reason = %q, want one naming %q", got.GetFallbackReason(), tt.wantFallback)
				}
			}
			if diff := cmp.Diff(tt.want, got, opts...); diff != "" {
				t.Errorf("SubmitAnswer mismatch (-want +got):\n%s", diff)
			}
			read, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
			if err != nil {
				t.Fatalf("GetSession: %v", err)
			}
			stored := read.GetSession().GetQuestions()[0].GetAnswer()
			if stored.GetText() != answer {
				t.Errorf("stored answer = %q, want %q", stored.GetText(), answer)
			}
			if diff := cmp.Diff(got, stored.GetEvaluation(), protocmp.Transform()); diff != "" {
				t.Errorf("stored evaluation differs from the one returned (-returned +stored):\n%s", diff)
			}
		})
	}
}

// After Breaker.MinRequests failures the remote evaluator is not called at all.
func TestInterviews_SubmitAnswer_RemoteCircuitOpen(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		mu.Unlock()
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	cfg := evaluatorConfig(srv.URL, time.Second)
	cfg.Breaker = breaker.Config{MinRequests: new(uint32(2)), FailureRatio: 0.5, OpenTimeout: new(time.Hour)}
	e := newEnvWith(t, cfg)
	e.bankOf(t, "breaker", "Breaker", 3)
	s := e.start(t, "breaker@example.com", &interviewv1.Criteria{Count: 3})
	var reasons []string
	for _, q := range s.GetQuestions() {
		ev := e.answer(t, s.GetId(), q.GetQuestionId(), "the answer").GetEvaluation()
		if ev.GetEvaluator() != "rubric" || ev.GetScore() != 100 {
			t.Errorf("evaluation = %v, want the rubric's 100", ev)
		}
		reasons = append(reasons, ev.GetFallbackReason())
	}
	want := []string{"error: status 503", "error: status 503", "circuit open"}
	if diff := cmp.Diff(want, reasons); diff != "" {
		t.Errorf("fallback reasons mismatch (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Errorf("remote evaluator called %d times, want 2", calls)
	}
}

func TestInterviews_CompleteSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	qs := e.create(t,
		&interviewv1.Question{Key: "sum-s1", Text: "S1?", Category: "SQL", Difficulty: 1, Rubric: &interviewv1.Rubric{
			Points: []*interviewv1.RubricPoint{point("s1 a", 1, "alpha"), point("s1 b", 1, "beta")}}},
		&interviewv1.Question{Key: "sum-s2", Text: "S2?", Category: "SQL", Difficulty: 2, Rubric: &interviewv1.Rubric{
			Points: []*interviewv1.RubricPoint{point("s2 a", 1, "gamma"), point("s2 b", 3, "delta")}}},
		&interviewv1.Question{Key: "sum-g1", Text: "G1?", Category: "Go", Difficulty: 3, Rubric: &interviewv1.Rubric{
			Points: []*interviewv1.RubricPoint{point("g1 a", 1, "epsilon"), point("g1 b", 1, "zeta")}}},
	)
	s := e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"SQL", "Go"}, Count: 3})
	e.answer(t, s.GetId(), qs[0].GetId(), "alpha and beta") // 100
	e.answer(t, s.GetId(), qs[1].GetId(), "delta only")     // 75; g1 unanswered: 0

	want := &interviewv1.Summary{
		OverallScore: 58.33, // (100 + 75 + 0) / 3
		Categories: []*interviewv1.CategoryScore{
			{Category: "Go", Score: 0, Questions: 1},
			{Category: "SQL", Score: 87.5, Questions: 2},
		},
		Strengths: []string{"SQL"},
		Gaps:      []string{"g1 a", "g1 b", "s2 a"},
		Answered:  2, Total: 3,
	}
	for i := range 2 { // completing again returns the same summary
		resp, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()})
		if err != nil {
			t.Fatalf("CompleteSession %d: %v", i+1, err)
		}
		if diff := cmp.Diff(want, resp.GetSummary(), protocmp.Transform()); diff != "" {
			t.Errorf("CompleteSession %d summary mismatch (-want +got):\n%s", i+1, diff)
		}
	}

	resp, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	got := resp.GetSession()
	if got.GetState() != interviewv1.SessionState_SESSION_STATE_COMPLETED || got.GetCompleteTime() == nil {
		t.Errorf("GetSession state %v, complete_time %v: want COMPLETED with a time", got.GetState(), got.GetCompleteTime())
	}
	if diff := cmp.Diff(want, got.GetSummary(), protocmp.Transform()); diff != "" {
		t.Errorf("GetSession summary mismatch (-want +got):\n%s", diff)
	}
	answers := map[int64]string{}
	for _, q := range got.GetQuestions() {
		answers[q.GetQuestionId()] = q.GetAnswer().GetText()
	}
	wantAnswers := map[int64]string{qs[0].GetId(): "alpha and beta", qs[1].GetId(): "delta only", qs[2].GetId(): ""}
	if diff := cmp.Diff(wantAnswers, answers); diff != "" {
		t.Errorf("GetSession answers mismatch (-want +got):\n%s", diff)
	}

	_, err = e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId() + 1000})
	apptest.WantCode(t, err, codes.NotFound)
	_, err = e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId() + 1000})
	apptest.WantCode(t, err, codes.NotFound)
}

func TestInterviews_CompleteSession_Empty(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.create(t, joinQuestion("empty-1", "Empty"))
	s := e.start(t, "empty@example.com", &interviewv1.Criteria{Count: 1})
	resp, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()})
	if err != nil {
		t.Fatalf("CompleteSession: %v", err)
	}
	want := &interviewv1.Summary{
		Categories: []*interviewv1.CategoryScore{{Category: "Empty", Score: 0, Questions: 1}},
		Gaps:       []string{"inner join keeps matches", "outer join keeps unmatched rows"},
		Total:      1,
	}
	if diff := cmp.Diff(want, resp.GetSummary(), protocmp.Transform()); diff != "" {
		t.Errorf("summary of an unanswered session mismatch (-want +got):\n%s", diff)
	}
}

func TestInterviews_ListSessions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "list", "List", 2)
	open := func(candidate string, complete bool) *interviewv1.Session {
		s := e.start(t, candidate, &interviewv1.Criteria{Count: 1})
		if complete {
			if _, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: s.GetId()}); err != nil {
				t.Fatalf("CompleteSession: %v", err)
			}
		}
		read, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
		if err != nil {
			t.Fatalf("GetSession: %v", err)
		}
		listed := read.GetSession()
		listed.Questions = nil // lists leave them out
		return listed
	}
	ada1 := open("ada@example.com", true)
	ada2 := open("ada@example.com", false)
	bob := open("bob@example.com", true)
	ada3 := open("ada@example.com", true)

	tests := []struct {
		name            string
		filter, orderBy string
		want            []*interviewv1.Session
	}{
		{name: "all", want: []*interviewv1.Session{ada1, ada2, bob, ada3}},
		{name: "completed_of_ada", filter: `candidate = "ada@example.com" AND state = SESSION_STATE_COMPLETED`,
			want: []*interviewv1.Session{ada1, ada3}},
		{name: "in_progress", filter: `state = SESSION_STATE_IN_PROGRESS`, want: []*interviewv1.Session{ada2}},
		{name: "candidate_desc", orderBy: "candidate desc", want: []*interviewv1.Session{bob, ada3, ada2, ada1}},
		{name: "none", filter: `candidate = "eve@example.com"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, size := range []int32{0, 1} {
				var got []*interviewv1.Session
				token := ""
				for range 10 {
					resp, err := e.interviews.ListSessions(t.Context(), &interviewv1.ListSessionsRequest{
						Filter: tt.filter, OrderBy: tt.orderBy, PageSize: size, PageToken: token})
					if err != nil {
						t.Fatalf("ListSessions(%q, %q, %d): %v", tt.filter, tt.orderBy, size, err)
					}
					got = append(got, resp.GetSessions()...)
					if token = resp.GetNextPageToken(); token == "" {
						break
					}
				}
				if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
					t.Errorf("ListSessions(%q, %q) by pages of %d mismatch (-want +got):\n%s", tt.filter, tt.orderBy, size, diff)
				}
			}
		})
	}
}

func TestInterviews_BadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	start := func(candidate string, c *interviewv1.Criteria) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.interviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: candidate, Criteria: c})
			return err
		}
	}
	submit := func(sessionID, questionID int64, answer string) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.interviews.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sessionID, QuestionId: questionID, Answer: answer})
			return err
		}
	}
	listSessions := func(req *interviewv1.ListSessionsRequest) func(context.Context) error {
		return func(ctx context.Context) error {
			_, err := e.interviews.ListSessions(ctx, req)
			return err
		}
	}
	tests := []struct {
		name      string
		call      func(context.Context) error
		wantField string
	}{
		{"start_blank_candidate", start("   ", nil), "candidate"},
		{"start_long_candidate", start(strings.Repeat("a", 201), nil), "candidate"},
		{"start_count_99", start("ada", &interviewv1.Criteria{Count: 99}), "criteria.count"},
		{"start_negative_count", start("ada", &interviewv1.Criteria{Count: -1}), "criteria.count"},
		{"start_min_above_max", start("ada", &interviewv1.Criteria{MinDifficulty: 4, MaxDifficulty: 2}), "criteria.max_difficulty"},
		{"start_min_6", start("ada", &interviewv1.Criteria{MinDifficulty: 6}), "criteria.min_difficulty"},
		{"start_max_6", start("ada", &interviewv1.Criteria{MaxDifficulty: 6}), "criteria.max_difficulty"},
		{"start_negative_min", start("ada", &interviewv1.Criteria{MinDifficulty: -1}), "criteria.min_difficulty"},
		{"start_empty_category", start("ada", &interviewv1.Criteria{Categories: []string{"SQL", ""}}), "criteria.categories[1]"},
		{"next_no_session", func(ctx context.Context) error {
			_, err := e.interviews.NextQuestion(ctx, &interviewv1.NextQuestionRequest{})
			return err
		}, "session_id"},
		{"submit_no_session", submit(0, 1, "a"), "session_id"},
		{"submit_no_question", submit(1, 0, "a"), "question_id"},
		{"submit_empty_answer", submit(1, 1, ""), "answer"},
		{"submit_blank_answer", submit(1, 1, " \n\t "), "answer"},
		{"submit_long_answer", submit(1, 1, strings.Repeat("a", 20001)), "answer"},
		{"complete_no_session", func(ctx context.Context) error {
			_, err := e.interviews.CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: -3})
			return err
		}, "session_id"},
		{"get_no_session", func(ctx context.Context) error {
			_, err := e.interviews.GetSession(ctx, &interviewv1.GetSessionRequest{})
			return err
		}, "session_id"},
		{"list_unknown_state", listSessions(&interviewv1.ListSessionsRequest{Filter: `state = DONE`}), "filter"},
		{"list_unknown_field", listSessions(&interviewv1.ListSessionsRequest{Filter: `score > 50`}), "filter"},
		{"list_bad_order_by", listSessions(&interviewv1.ListSessionsRequest{OrderBy: "summary"}), "order_by"},
		{"list_negative_page_size", listSessions(&interviewv1.ListSessionsRequest{PageSize: -5}), "page_size"},
		{"list_bad_token", listSessions(&interviewv1.ListSessionsRequest{PageToken: "xyz"}), "page_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wantViolation(t, tt.call(t.Context()), tt.wantField)
		})
	}
}

// A session keeps the questions as they were asked: editing a question afterwards changes
// neither the text a session shows nor the rubric its answers are scored by.
func TestInterviews_QuestionsFrozenAtStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	q := e.create(t, question("frozen-01", "SQL", 2))[0]
	s := e.start(t, "frozen@example.com", &interviewv1.Criteria{Count: 1})

	edited := &interviewv1.Question{Id: q.GetId(), Etag: q.GetEtag(), Text: "Edited?",
		Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{point("says edited", 1, "edited")}}}
	if _, err := e.bank.UpdateQuestion(t.Context(), &interviewv1.UpdateQuestionRequest{Question: edited,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text", "rubric"}}}); err != nil {
		t.Fatalf("UpdateQuestion: %v", err)
	}
	got := e.answer(t, s.GetId(), q.GetId(), "the answer")
	if got.GetEvaluation().GetScore() != 100 {
		t.Errorf("score with the rubric as asked = %v, want 100", got.GetEvaluation().GetScore())
	}
	resp, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: s.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if text := resp.GetSession().GetQuestions()[0].GetText(); text != q.GetText() {
		t.Errorf("session shows %q, want the text as asked, %q", text, q.GetText())
	}
}
