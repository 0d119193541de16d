package api

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// StartSession picks questions for a candidate (unseen ones first) and opens a session.
func (s *Interviews) StartSession(ctx context.Context, req *interviewv1.StartSessionRequest) (*interviewv1.StartSessionResponse, error) {
	p := auth.Caller(ctx)
	candidate := req.GetCandidate()
	switch {
	case candidate == "":
		candidate = p.Subject
	case !p.Owns(candidate):
		return nil, apierr.Newf(apierr.SubjectMismatch, map[string]string{"field": "candidate", "subject": p.Subject},
			"candidate must be the token's subject %q, or empty", p.Subject)
	}
	lo, hi, count := criteria(req.GetCriteria())
	cats := req.GetCriteria().GetCategories()
	want := store.Session{Candidate: candidate, Categories: cats, MinDifficulty: lo, MaxDifficulty: hi, QuestionCount: count}
	r := store.Request{Scope: candidate, ID: req.GetRequestId()}
	var sess store.Session
	var qs []store.SessionQuestion
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		sess, err = s.openSession(ctx, st, want, r)
		if err != nil {
			return err
		}
		qs, err = st.SessionQuestions(ctx, sess.ID)
		return err
	})
	if errors.Is(err, store.ErrRequestReused) {
		err = reusedRequestID(r.ID)
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.StartSessionResponse{Session: toSession(sess, qs)}, nil
}

// openSession picks questions for want and stores a session asking them, once per request
// r: a repeat returns the first session, before picking, so it works even if too few
// questions match by now.
func (s *Interviews) openSession(ctx context.Context, st *store.Store, want store.Session, r store.Request) (store.Session, error) {
	if r.ID != "" {
		sess, err := st.SessionByRequest(ctx, r, want)
		if !errors.Is(err, store.ErrNotFound) {
			return sess, err
		}
	}
	ids, err := st.PickQuestions(ctx, want.Candidate, want.Categories, want.MinDifficulty, want.MaxDifficulty, want.QuestionCount)
	if err != nil {
		return store.Session{}, err
	}
	if int32(len(ids)) < want.QuestionCount {
		return store.Session{}, apierr.Newf(apierr.NotEnoughQuestions,
			map[string]string{"available": strconv.Itoa(len(ids)), "requested": strconv.Itoa(int(want.QuestionCount))},
			"only %d questions match categories %v and difficulty %d to %d; asked for %d",
			len(ids), want.Categories, want.MinDifficulty, want.MaxDifficulty, want.QuestionCount)
	}
	return st.CreateSession(ctx, want, r, ids) // or a concurrent repeat's session

}

// NextQuestion returns the first unanswered question of an open session.
func (s *Interviews) NextQuestion(ctx context.Context, req *interviewv1.NextQuestionRequest) (*interviewv1.NextQuestionResponse, error) {
	sess, qs, err := s.read(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if sess.State != store.InProgress {
		return nil, s.grpcError(ctx, apierr.Newf(apierr.SessionCompleted, sessionMetadata(sess.ID), "session %d is completed", sess.ID))
	}
	resp := &interviewv1.NextQuestionResponse{}
	for _, q := range qs {
		if q.Answer == nil {
			if resp.Question == nil {
				resp.Question = toSessionQuestion(q)
			}
			resp.Remaining++
		}
	}
	return resp, nil
}

// SubmitAnswer scores an answer and stores it, once per question, while the session is open;
// an AnswerEvaluated event commits with it.
// Scoring happens outside the transaction: a remote evaluator may take seconds, and nothing
// should hold a row lock that long; the store re-checks everything when saving.
func (s *Interviews) SubmitAnswer(ctx context.Context, req *interviewv1.SubmitAnswerRequest) (*interviewv1.SubmitAnswerResponse, error) {
	sid, qid := req.GetSessionId(), req.GetQuestionId()
	sess, qs, err := s.read(ctx, sid)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	var asked *store.SessionQuestion
	for i := range qs {
		if qs[i].QuestionID == qid {
			asked = &qs[i]
		}
	}
	switch {
	case sess.State != store.InProgress:
		return nil, s.grpcError(ctx, lateAnswer(sid))
	case asked == nil:
		return nil, s.grpcError(ctx, validate.Field("question_id", "question %d is not part of session %d", qid, sid))
	case asked.Answer != nil:
		return nil, s.grpcError(ctx, answered(sid, qid))
	}
	result, err := s.eval.Evaluate(ctx, evaluate.Request{QuestionID: qid, Question: asked.Text,
		Category: asked.Category, Rubric: evalRubric(asked.Rubric), Answer: req.GetAnswer()})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	eval := toEvaluation(result, asked.Rubric)
	var remaining int32
	err = s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		cur, err := getSession(ctx, st, sid, store.ShareLock)
		if err != nil {
			return err
		}
		if cur.State != store.InProgress {
			return lateAnswer(sid)
		}
		submitted, saved, err := st.SaveAnswer(ctx, sid, qid, req.GetAnswer(), eval)
		if err != nil {
			return err
		}
		if !saved {
			return answered(sid, qid) // a concurrent call answered it first
		}
		if remaining, err = st.Unanswered(ctx, sid); err != nil {
			return err
		}
		ev, err := sessionEvent(sid, &interviewv1.AnswerEvaluated{SessionId: sid, Candidate: cur.Candidate,
			Position: asked.Position, QuestionId: qid, Answer: &interviewv1.Answer{Text: req.GetAnswer(),
				Evaluation: protoEvaluation(eval), SubmitTime: timestamppb.New(submitted)}})
		if err != nil {
			return err
		}
		return s.outbox.Append(ctx, tx, ev)
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	s.outbox.Committed()
	return &interviewv1.SubmitAnswerResponse{Evaluation: protoEvaluation(eval), Remaining: remaining}, nil
}

func lateAnswer(sid int64) error {
	return apierr.Newf(apierr.SessionCompleted, sessionMetadata(sid), "session %d is completed: it takes no more answers", sid)
}

// sessionMetadata is the ErrorInfo metadata of errors about a session.
func sessionMetadata(sid int64) map[string]string {
	return map[string]string{"session_id": strconv.FormatInt(sid, 10)}
}

func answered(sid, qid int64) error {
	return apierr.Newf(apierr.AlreadyAnswered, map[string]string{"session_id": strconv.FormatInt(sid, 10),
		"question_id": strconv.FormatInt(qid, 10)}, "answer to question %d in session %d: already exists", qid, sid)
}

// CompleteSession closes a session and stores its summary, with a SessionCompleted event;
// completing it again returns the same summary and emits nothing.
func (s *Interviews) CompleteSession(ctx context.Context, req *interviewv1.CompleteSessionRequest) (*interviewv1.CompleteSessionResponse, error) {
	sid := req.GetSessionId()
	var summary *interviewv1.Summary
	var completed bool // by this call, not before: only then is there an event
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		completed = false // a retried transaction starts over
		st := s.store.WithTx(tx)
		// FOR UPDATE waits for answers being saved; under READ COMMITTED the questions read
		// next then include them.
		sess, err := getSession(ctx, st, sid, store.UpdateLock)
		if err != nil {
			return err
		}
		if sess.State == store.Completed {
			summary = decodeSummary(sess.Summary)
			return nil
		}
		qs, err := st.SessionQuestions(ctx, sid)
		if err != nil {
			return err
		}
		summary = summarize(qs)
		raw, err := encodeSummary(summary)
		if err != nil {
			return fmt.Errorf("encode summary: %w", err)
		}
		done, ok, err := st.CompleteSession(ctx, sid, raw)
		if err != nil {
			return err
		}
		if !ok { // cannot happen under the row lock taken above
			return fmt.Errorf("complete session %d: no longer in progress", sid)
		}
		// The session without its questions: their answers went out with AnswerEvaluated.
		ev, err := sessionEvent(sid, &interviewv1.SessionCompleted{Session: toSession(done, nil)})
		if err != nil {
			return err
		}
		completed = true
		return s.outbox.Append(ctx, tx, ev)
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	if completed {
		s.outbox.Committed()
	}
	return &interviewv1.CompleteSessionResponse{Summary: summary}, nil
}

// GetSession returns a session with its questions and answers.
func (s *Interviews) GetSession(ctx context.Context, req *interviewv1.GetSessionRequest) (*interviewv1.GetSessionResponse, error) {
	sess, qs, err := s.read(ctx, req.GetSessionId())
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.GetSessionResponse{Session: toSession(sess, qs)}, nil
}

// read returns a session and its questions from one snapshot.
func (s *Interviews) read(ctx context.Context, id int64) (store.Session, []store.SessionQuestion, error) {
	var sess store.Session
	var qs []store.SessionQuestion
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
		st := s.store.WithTx(tx)
		if sess, err = getSession(ctx, st, id, store.NoLock); err != nil {
			return err
		}
		qs, err = st.SessionQuestions(ctx, id)
		return err
	})
	return sess, qs, err
}

// ListSessions returns a page of sessions, without their questions.
func (s *Interviews) ListSessions(ctx context.Context, req *interviewv1.ListSessionsRequest) (*interviewv1.ListSessionsResponse, error) {
	// A candidate sees only their own sessions; the token is bound to whose list it pages.
	candidate := ""
	if p := auth.Caller(ctx); !p.Admin() {
		candidate = p.Subject
	}
	read := func(ctx context.Context, q *query.Query) ([]store.Session, error) {
		return s.store.ListSessions(ctx, candidate, q)
	}
	sessions, next, err := query.List(ctx, s.retry, &s.lists.sessions, query.RequestOf(req, candidate), read,
		func(r store.Session) *interviewv1.Session { return toSession(r, nil) })
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.ListSessionsResponse{Sessions: sessions, NextPageToken: next}, nil
}
