package api

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"slices"

	"github.com/jackc/pgx/v5"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// updatable are the fields UpdateQuestion's mask may name to change them; an empty mask
// means all of them.
var updatable = []string{"text", "category", "difficulty", "tags", "rubric"}

// unchanging are the other fields a mask may name, to no effect: id names the question, etag
// guards the update, the times are the server's (AIP-203 ignores output-only fields in a
// request), and key is immutable: named, it must equal the stored key. A client that PATCHes
// a question as it read it, without an update_mask parameter, names them all: the gateway
// derives the mask from the fields present in the body.
var unchanging = []string{"id", "key", "etag", "create_time", "update_time"}

// maskPaths are the paths checkMask accepts. "rubric.points" is "rubric", its only field,
// as the gateway names it when the body holds a rubric.
var maskPaths = slices.Concat(updatable, []string{"rubric.points"}, unchanging)

// CreateQuestion adds a question, once per request_id of the caller: a repeat returns the
// question the first call created, as it is now.
func (s *QuestionBank) CreateQuestion(ctx context.Context, req *interviewv1.CreateQuestionRequest) (*interviewv1.CreateQuestionResponse, error) {
	in := fromQuestion(req.GetQuestion())
	r := store.Request{Scope: auth.Caller(ctx).Subject, ID: req.GetRequestId()}
	q, err := s.store.CreateQuestion(ctx, in, r, questionHash(in))
	switch {
	case errors.Is(err, store.ErrRequestReused):
		err = reusedRequestID(r.ID)
	case errors.Is(err, store.ErrConflict):
		err = apierr.New(apierr.QuestionAlreadyExists, err.Error(), map[string]string{"key": in.Key})
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.CreateQuestionResponse{Question: toQuestion(q)}, nil
}

// questionHash is what a creation of q asks, to tell a repeat from another request with the
// same request_id: the fields CreateQuestion stores, encoded by encoding/json in the order of
// the struct below, so equal questions hash equal.
func questionHash(q store.Question) []byte {
	b, _ := json.Marshal(struct { // strings, ints and slices of them always encode
		Key, Text, Category string
		Difficulty          int32
		Tags                []string
		Rubric              store.Rubric
	}{q.Key, q.Text, q.Category, q.Difficulty, q.Tags, q.Rubric})
	h := sha256.Sum256(b)
	return h[:]
}

// reusedRequestID is the error for a request_id already used for a different request.
func reusedRequestID(id string) error {
	return apierr.Newf(apierr.RequestIDReused, map[string]string{"request_id": id},
		"request_id %q was already used for a different request", id)
}

// GetQuestion returns one question.
func (s *QuestionBank) GetQuestion(ctx context.Context, req *interviewv1.GetQuestionRequest) (*interviewv1.GetQuestionResponse, error) {
	var q store.Question
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		q, err = s.store.GetQuestion(ctx, req.GetQuestionId())
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.GetQuestionResponse{Question: toQuestion(q)}, nil
}

// UpdateQuestion applies the masked fields. The version check is in the UPDATE itself, so
// of two concurrent updates sent with one etag, exactly one applies.
func (s *QuestionBank) UpdateQuestion(ctx context.Context, req *interviewv1.UpdateQuestionRequest) (*interviewv1.UpdateQuestionResponse, error) {
	in := fromQuestion(req.GetQuestion())
	version, _ := parseEtag(req.GetQuestion().GetEtag()) // Validate has checked it
	mask := req.GetUpdateMask().GetPaths()
	if len(mask) == 0 {
		mask = updatable
	}
	var out store.Question
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		st := s.store.WithTx(tx)
		// FOR UPDATE: a concurrent update cannot slip in between this read and the write,
		// so without an etag the last write wins instead of failing as stale.
		cur, err := st.LockQuestion(ctx, in.ID)
		if err != nil {
			return err
		}
		want := version
		if want == 0 {
			want = cur.Version // no etag: last write wins, but still atomically
		}
		next := cur
		for _, f := range mask {
			switch f {
			case "text":
				next.Text = in.Text
			case "category":
				next.Category = in.Category
			case "difficulty":
				next.Difficulty = in.Difficulty
			case "tags":
				next.Tags = in.Tags
			case "rubric", "rubric.points":
				next.Rubric = in.Rubric
			case "key":
				if in.Key != cur.Key {
					return validate.Field("question.key", "is immutable: question %d has key %q, got %q; send it unchanged or leave it out", cur.ID, cur.Key, in.Key)
				}
			}
		}
		if err := validateQuestion(next, "question"); err != nil {
			return err
		}
		out, err = st.UpdateQuestion(ctx, next, want)
		return err
	})
	if qerr := questionError(err, in.ID); qerr != nil {
		err = qerr
	}
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.UpdateQuestionResponse{Question: toQuestion(out)}, nil
}

// DeleteQuestion removes a question no session uses.
func (s *QuestionBank) DeleteQuestion(ctx context.Context, req *interviewv1.DeleteQuestionRequest) (*interviewv1.DeleteQuestionResponse, error) {
	version, _ := parseEtag(req.GetEtag())
	if err := s.store.DeleteQuestion(ctx, req.GetQuestionId(), version); err != nil {
		if qerr := questionError(err, req.GetQuestionId()); qerr != nil {
			err = qerr
		}
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.DeleteQuestionResponse{}, nil
}

// ListQuestions returns a page of questions.
func (s *QuestionBank) ListQuestions(ctx context.Context, req *interviewv1.ListQuestionsRequest) (*interviewv1.ListQuestionsResponse, error) {
	questions, next, err := query.List(ctx, s.retry, &s.lists.questions, query.RequestOf(req, ""), s.store.ListQuestions, toQuestion)
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.ListQuestionsResponse{Questions: questions, NextPageToken: next}, nil
}

// BulkImportQuestions upserts questions by key in one transaction.
func (s *QuestionBank) BulkImportQuestions(ctx context.Context, req *interviewv1.BulkImportQuestionsRequest) (*interviewv1.BulkImportQuestionsResponse, error) {
	qs := make([]store.Question, len(req.GetQuestions()))
	for i, q := range req.GetQuestions() {
		qs[i] = fromQuestion(q)
	}
	var inserted, updated int
	err := s.retry.RunTx(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) (err error) {
		inserted, updated, err = s.store.WithTx(tx).ImportQuestions(ctx, qs)
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &interviewv1.BulkImportQuestionsResponse{InsertedCount: int32(inserted), UpdatedCount: int32(updated),
		UnchangedCount: int32(len(qs) - inserted - updated)}, nil
}

// checkMask reports unknown update_mask paths.
func checkMask(v *validate.Violations, paths []string) {
	for _, p := range paths {
		v.Check(slices.Contains(maskPaths, p), "update_mask", "unknown field %q: may name %v to change them, and %v, which change nothing",
			p, updatable, unchanging)
	}
}
