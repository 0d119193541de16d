// Package api serves pgfleet.interview.v1's QuestionBankService and InterviewService over
// the store, scoring answers with package evaluate.
package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// Deps are what the servers run on.
type Deps struct {
	Pool      *pgxpool.Pool
	Retry     *retry.Retrier
	Evaluator evaluate.Evaluator
	TokenKey  string // signs page tokens; replicas must share it
	Log       *slog.Logger
}

// base is what both servers share.
type base struct {
	pool  *pgxpool.Pool
	store *store.Store
	retry *retry.Retrier
	log   *slog.Logger
	lists lists
}

func newBase(d Deps) base {
	return base{pool: d.Pool, store: store.New(d.Pool), retry: d.Retry, log: d.Log, lists: newLists(d.TokenKey)}
}

// QuestionBank implements interviewv1.QuestionBankServiceServer.
type QuestionBank struct {
	interviewv1.UnimplementedQuestionBankServiceServer
	base
}

// NewQuestionBank returns the question bank server.
func NewQuestionBank(d Deps) *QuestionBank { return &QuestionBank{base: newBase(d)} }

// Interviews implements interviewv1.InterviewServiceServer.
type Interviews struct {
	interviewv1.UnimplementedInterviewServiceServer
	base
	eval evaluate.Evaluator
}

// NewInterviews returns the interview session server.
func NewInterviews(d Deps) *Interviews { return &Interviews{base: newBase(d), eval: d.Evaluator} }

// errState is a request the session's state refuses (late answer, too few questions).
type errState struct{ msg string }

func (e *errState) Error() string { return e.msg }

// grpcError turns a store error into a status; what every service shares goes to app.Status.
func (b *base) grpcError(ctx context.Context, err error) error {
	var st *errState
	switch {
	case errors.As(err, &st):
		return status.Error(codes.FailedPrecondition, st.msg)
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, store.ErrStale):
		return status.Error(codes.Aborted, err.Error()+": read it again and retry") // AIP-154
	case errors.Is(err, store.ErrInUse):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return app.Status(ctx, b.log, err)
}
