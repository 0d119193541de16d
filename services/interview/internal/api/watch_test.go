package api_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// The service's event types.
const (
	answerEvaluated  = "pgfleet.interview.v1.AnswerEvaluated"
	sessionCompleted = "pgfleet.interview.v1.SessionCompleted"
)

// watchTimeout bounds a test's wait for a stream's message: generous, for a busy machine; a
// stream that stays silent past it is a failure, not a slow pass.
const watchTimeout = 2 * time.Minute

// outboxRow is an event as the outbox table holds it.
type outboxRow struct {
	Type    string
	Payload []byte
}

// events returns session sid's events in the outbox table, sequenced or not (an event is
// there from its transaction's commit on), in the order they were appended.
func (e env) events(t testing.TB, sid int64) []outboxRow {
	t.Helper()
	rows, err := e.pool.Query(t.Context(), `SELECT type, payload FROM interview.outbox
		WHERE aggregatetype = 'session' AND aggregateid = $1 ORDER BY append_seq`, strconv.FormatInt(sid, 10))
	if err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.Type, &r.Payload); err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("read the outbox: %v", err)
	}
	return out
}

// eventTypes returns the types of rows.
func eventTypes(rows []outboxRow) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Type)
	}
	return out
}

// decode unmarshals an event's payload into m, which it returns.
func decode[M proto.Message](t testing.TB, r outboxRow, m M) M {
	t.Helper()
	if err := proto.Unmarshal(r.Payload, m); err != nil {
		t.Fatalf("decode %s: %v", r.Type, err)
	}
	return m
}

// getSession returns a session as GetSession does, as an admin.
func (e env) getSession(t testing.TB, sid int64) *interviewv1.Session {
	t.Helper()
	resp, err := e.interviews.GetSession(t.Context(), &interviewv1.GetSessionRequest{SessionId: sid})
	if err != nil {
		t.Fatalf("GetSession(%d): %v", sid, err)
	}
	return resp.GetSession()
}

// TestEvents_atomicity: an answer scored and stored emits exactly one AnswerEvaluated in its
// transaction; a repeated answer, an answer to a completed session and a repeated completion
// emit nothing; the first completion emits one SessionCompleted.
func TestEvents_atomicity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.bankOf(t, "atom", "Atom", 3)
	s := e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"Atom"}, Count: 3})
	sid, qids := s.GetId(), questionIDs(s)

	scored := e.answer(t, sid, qids[0], "the answer")
	rows := e.events(t, sid)
	if got := eventTypes(rows); !cmp.Equal(got, []string{answerEvaluated}) {
		t.Fatalf("events after one answer = %q, want one %s", got, answerEvaluated)
	}
	asked := e.getSession(t, sid).GetQuestions()[0]
	want := &interviewv1.AnswerEvaluated{SessionId: sid, Candidate: "ada@example.com", Position: 1, QuestionId: qids[0],
		Answer: &interviewv1.Answer{Text: "the answer", Evaluation: scored.GetEvaluation(), SubmitTime: asked.GetAnswer().GetSubmitTime()}}
	if diff := cmp.Diff(want, decode(t, rows[0], &interviewv1.AnswerEvaluated{}), protocmp.Transform()); diff != "" {
		t.Errorf("AnswerEvaluated mismatch (-want +got):\n%s", diff)
	}

	_, err := e.interviews.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: qids[0], Answer: "again"})
	apptest.WantReason(t, err, apierr.AlreadyAnswered, map[string]string{
		"session_id": strconv.FormatInt(sid, 10), "question_id": strconv.FormatInt(qids[0], 10)})
	var summaries []*interviewv1.Summary
	for range 2 {
		resp, err := e.interviews.CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: sid})
		if err != nil {
			t.Fatalf("CompleteSession: %v", err)
		}
		summaries = append(summaries, resp.GetSummary())
	}
	_, err = e.interviews.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: qids[1], Answer: "late answer"})
	apptest.WantReason(t, err, apierr.SessionCompleted, map[string]string{"session_id": strconv.FormatInt(sid, 10)})

	rows = e.events(t, sid)
	if got := eventTypes(rows); !cmp.Equal(got, []string{answerEvaluated, sessionCompleted}) {
		t.Fatalf("events = %q, want %s then one %s", got, answerEvaluated, sessionCompleted)
	}
	// The session as completed, its summary as CompleteSession returned it both times; its
	// questions' answers went out with AnswerEvaluated.
	done := e.getSession(t, sid)
	done.Questions = nil
	got := decode(t, rows[1], &interviewv1.SessionCompleted{}).GetSession()
	if diff := cmp.Diff(done, got, protocmp.Transform()); diff != "" {
		t.Errorf("SessionCompleted's session mismatch (-want +got):\n%s", diff)
	}
	for i, sum := range summaries {
		if diff := cmp.Diff(sum, got.GetSummary(), protocmp.Transform()); diff != "" {
			t.Errorf("CompleteSession #%d's summary differs from the event's (-call +event):\n%s", i+1, diff)
		}
	}
}

// TestEvents_answersRaceCompletion: answers submitted while the session is being completed
// either land before the completion, each with its event, or are refused without one. The
// summary, the stored answers and the events agree, and in commit order (positions) every
// AnswerEvaluated comes before the SessionCompleted.
func TestEvents_answersRaceCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 8
	e.bankOf(t, "race", "Race", n)
	s := e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"Race"}, Count: n})
	sid := s.GetId()

	var wg sync.WaitGroup
	var summary *interviewv1.Summary
	for i, qid := range questionIDs(s) {
		wg.Go(func() {
			_, err := e.interviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: qid, Answer: "the answer"})
			if err != nil && apierr.ReasonOf(err) != apierr.SessionCompleted {
				t.Errorf("SubmitAnswer(%d, %d) = %v, want success or SESSION_COMPLETED", sid, qid, err)
			}
		})
		if i == n/2 {
			wg.Go(func() {
				resp, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: sid})
				if err != nil {
					t.Errorf("CompleteSession: %v", err)
				}
				summary = resp.GetSummary()
			})
		}
	}
	wg.Wait()
	answers := e.storedAnswers(t, sid)
	rows := e.events(t, sid)
	count := map[string]int{}
	for _, r := range rows {
		count[r.Type]++
	}
	if count[answerEvaluated] != answers || count[sessionCompleted] != 1 || int(summary.GetAnswered()) != answers {
		t.Fatalf("%d answers stored, summary says %d, events %v: want one %s per answer and one %s",
			answers, summary.GetAnswered(), count, answerEvaluated, sessionCompleted)
	}
	// Commit order: once the sequencer has numbered them all.
	var last string
	pgtest.Poll(t, "every event of the session sequenced", func() bool {
		err := e.pool.QueryRow(t.Context(), `SELECT type FROM interview.outbox WHERE aggregateid = $1
			ORDER BY position DESC NULLS FIRST LIMIT 1`, strconv.FormatInt(sid, 10)).Scan(&last)
		if err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		var unsequenced int
		if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM interview.outbox WHERE position IS NULL`).Scan(&unsequenced); err != nil {
			t.Fatalf("read the outbox: %v", err)
		}
		return unsequenced == 0
	})
	if last != sessionCompleted {
		t.Errorf("the session's last event in commit order is %s, want %s", last, sessionCompleted)
	}
}

// recvUntil receives from a WatchSession stream until a session satisfies done, and returns
// every session received.
func recvUntil(t testing.TB, stream grpc.ServerStreamingClient[interviewv1.WatchSessionResponse], what string,
	done func(*interviewv1.Session) bool) []*interviewv1.Session {
	t.Helper()
	var got []*interviewv1.Session
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchSession, waiting for %s after %d messages: %v", what, len(got), err)
		}
		got = append(got, resp.GetSession())
		if done(resp.GetSession()) {
			return got
		}
	}
}

func completed(s *interviewv1.Session) bool {
	return s.GetState() == interviewv1.SessionState_SESSION_STATE_COMPLETED
}

// TestWatchSession: the candidate's stream starts with the session as GetSession returns it,
// shows an answer's score once it is stored, and ends on the completed session.
func TestWatchSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "watch", "Watch", 2)
	ada := authtest.As(t, "ada@example.com")
	resp, err := e.userInterviews.StartSession(t.Context(), &interviewv1.StartSessionRequest{
		Criteria: &interviewv1.Criteria{Categories: []string{"Watch"}, Count: 2}}, ada)
	if err != nil {
		t.Fatal(err)
	}
	sid, qids := resp.GetSession().GetId(), questionIDs(resp.GetSession())
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	stream, err := e.userInterviews.WatchSession(ctx, &interviewv1.WatchSessionRequest{SessionId: sid}, ada)
	if err != nil {
		t.Fatal(err)
	}
	first := recvUntil(t, stream, "the first message", func(*interviewv1.Session) bool { return true })[0]
	if diff := cmp.Diff(e.getSession(t, sid), first, protocmp.Transform()); diff != "" {
		t.Errorf("first message differs from GetSession (-GetSession +stream):\n%s", diff)
	}

	scored, err := e.userInterviews.SubmitAnswer(t.Context(), &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: qids[0], Answer: "the answer"}, ada)
	if err != nil {
		t.Fatal(err)
	}
	got := recvUntil(t, stream, "the answer", func(s *interviewv1.Session) bool { return s.GetQuestions()[0].GetAnswer() != nil })
	if diff := cmp.Diff(scored.GetEvaluation(), got[len(got)-1].GetQuestions()[0].GetAnswer().GetEvaluation(), protocmp.Transform()); diff != "" {
		t.Errorf("streamed evaluation differs from SubmitAnswer's (-SubmitAnswer +stream):\n%s", diff)
	}

	if _, err := e.userInterviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: sid}, ada); err != nil {
		t.Fatal(err)
	}
	got = recvUntil(t, stream, "the completion", completed)
	if diff := cmp.Diff(e.getSession(t, sid), got[len(got)-1], protocmp.Transform()); diff != "" {
		t.Errorf("completed session differs from GetSession (-GetSession +stream):\n%s", diff)
	}
}

// TestWatchSession_slowReader: a subscriber that reads nothing while a session changes many
// times, each state larger than the stream's flow-control window can hold twice, is
// conflated: once it reads, it gets fewer messages than there were changes, the last one the
// final state, and the server never held a backlog for it (the handler blocks in Send while
// the window is full, then reads the newest state).
func TestWatchSession_slowReader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 20
	e.bankOf(t, "slow", "Slow", n)
	s := e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"Slow"}, Count: n})
	sid := s.GetId()

	// Its own connection, with fixed windows (no BDP growth), so the transport buffers at
	// most 64 KiB that the client has not read.
	slow := interviewv1.NewInterviewServiceClient(apptest.Dial(t, e.addr, authtest.Admin(t),
		grpc.WithInitialWindowSize(1<<16), grpc.WithInitialConnWindowSize(1<<16)))
	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	stream, err := slow.WatchSession(ctx, &interviewv1.WatchSessionRequest{SessionId: sid})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil { // the stream is up: what follows is its to send
		t.Fatal(err)
	}
	answer := "the answer " + strings.Repeat("x", 19000) // every state grows by about 19 kB
	for _, qid := range questionIDs(s) {
		e.answer(t, sid, qid, answer)
	}
	if _, err := e.interviews.CompleteSession(t.Context(), &interviewv1.CompleteSessionRequest{SessionId: sid}); err != nil {
		t.Fatal(err)
	}
	final := e.getSession(t, sid)

	got := recvUntil(t, stream, "the completion", completed)
	if diff := cmp.Diff(final, got[len(got)-1], protocmp.Transform()); diff != "" {
		t.Errorf("last message differs from the final session (-GetSession +stream):\n%s", diff)
	}
	t.Logf("%d messages after the first for %d changes", len(got), n+1) // a few, from before the window filled, and the last
	if changes := n + 1; len(got) >= changes {
		t.Errorf("slow reader got %d messages for %d changes, want fewer (conflated)", len(got), changes)
	}
	for i := 1; i < len(got); i++ { // never a state older than one sent before
		if answered(got[i]) < answered(got[i-1]) {
			t.Errorf("message %d has %d answers, after one with %d", i+1, answered(got[i]), answered(got[i-1]))
		}
	}
}

// answered counts a session's answers.
func answered(s *interviewv1.Session) int {
	n := 0
	for _, q := range s.GetQuestions() {
		if q.GetAnswer() != nil {
			n++
		}
	}
	return n
}

// TestWatch_badInput: ids, types and cursors that break the rules are INVALID_ARGUMENT,
// with the field or the reason that says why.
func TestWatch_badInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	watchErr := func(ctx context.Context, req *interviewv1.WatchSessionRequest) error {
		stream, err := e.interviews.WatchSession(ctx, req)
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	eventsErr := func(ctx context.Context, req *interviewv1.WatchInterviewEventsRequest) error {
		stream, err := e.interviews.WatchInterviewEvents(ctx, req)
		if err == nil {
			_, err = stream.Recv()
		}
		return err
	}
	for _, id := range []int64{0, -1} {
		t.Run("session_id_"+strconv.FormatInt(id, 10), func(t *testing.T) {
			t.Parallel()
			wantViolation(t, watchErr(t.Context(), &interviewv1.WatchSessionRequest{SessionId: id}), "session_id")
		})
	}
	t.Run("session_missing", func(t *testing.T) {
		t.Parallel()
		err := watchErr(t.Context(), &interviewv1.WatchSessionRequest{SessionId: 1 << 40})
		apptest.WantReason(t, err, apierr.SessionNotFound, map[string]string{"session_id": strconv.Itoa(1 << 40)})
	})
	manyTypes := make([]string, 21)
	for i := range manyTypes {
		manyTypes[i] = answerEvaluated
	}
	for _, tc := range []struct {
		name   string
		req    *interviewv1.WatchInterviewEventsRequest
		field  string        // a BadRequest violation on it, or
		reason apierr.Reason // this reason
	}{
		{"too_many_types", &interviewv1.WatchInterviewEventsRequest{Types: manyTypes}, "types", ""},
		{"empty_type", &interviewv1.WatchInterviewEventsRequest{Types: []string{""}}, "types[0]", ""},
		{"long_type", &interviewv1.WatchInterviewEventsRequest{Types: []string{strings.Repeat("a", 201)}}, "types[0]", ""},
		{"control_in_type", &interviewv1.WatchInterviewEventsRequest{Types: []string{"a\x01"}}, "types[0]", ""},
		{"long_cursor", &interviewv1.WatchInterviewEventsRequest{Cursor: strings.Repeat("a", 201)}, "cursor", ""},
		{"control_in_cursor", &interviewv1.WatchInterviewEventsRequest{Cursor: "a\nb"}, "cursor", ""},
		{"unknown_type", &interviewv1.WatchInterviewEventsRequest{Types: []string{"pgfleet.stock.v1.StockChanged"}}, "types[0]", ""},
		{"repeated_type", &interviewv1.WatchInterviewEventsRequest{Types: []string{answerEvaluated, answerEvaluated}}, "types[1]", ""},
		{"malformed_cursor", &interviewv1.WatchInterviewEventsRequest{Cursor: "not-a-cursor"}, "", apierr.CursorMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := eventsErr(t.Context(), tc.req)
			if tc.field != "" {
				wantViolation(t, err, tc.field)
				return
			}
			apptest.WantCode(t, err, codes.InvalidArgument)
			if got := apierr.ReasonOf(err); got != tc.reason {
				t.Errorf("WatchInterviewEvents(%v) reason = %s, want %s", tc.req, got, tc.reason)
			}
		})
	}
}

// TestWatchInterviewEvents_access: every candidate's events are for the fleet's services and
// operators only; a service reads them from the oldest on.
func TestWatchInterviewEvents_access(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.bankOf(t, "acc", "Acc", 1)
	s := e.start(t, "ada@example.com", &interviewv1.Criteria{Categories: []string{"Acc"}, Count: 1})
	e.answer(t, s.GetId(), questionIDs(s)[0], "the answer")

	// recv receives until a message holds events, or an error.
	recv := func(ctx context.Context, opt grpc.CallOption) ([]string, error) {
		stream, err := e.userInterviews.WatchInterviewEvents(ctx, &interviewv1.WatchInterviewEventsRequest{FromOldest: true}, opt)
		if err != nil {
			return nil, err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return nil, err
			}
			var types []string
			for _, ev := range resp.GetEvents() {
				types = append(types, ev.GetType())
			}
			if len(types) > 0 {
				return types, nil
			}
		}
	}
	_, err := recv(t.Context(), authtest.As(t, "ada@example.com"))
	apptest.WantCode(t, err, codes.PermissionDenied)
	_, err = recv(t.Context(), grpc.EmptyCallOption{})
	apptest.WantCode(t, err, codes.Unauthenticated)

	ctx, cancel := context.WithTimeout(t.Context(), watchTimeout)
	defer cancel()
	for _, role := range []string{"service", "admin"} {
		got, err := recv(ctx, authtest.As(t, "fleet", role))
		if err != nil {
			t.Fatalf("WatchInterviewEvents as role %s: %v", role, err)
		}
		if !cmp.Equal(got, []string{answerEvaluated}) {
			t.Errorf("WatchInterviewEvents from the oldest as role %s = %q, want one %s", role, got, answerEvaluated)
		}
	}
}
