// Package api serves pgfleet.interview.v1's QuestionBankService and InterviewService over
// the store, scoring answers with package evaluate. NewQuestionBank and NewInterviews build
// the two servers from one Deps: the service's shared parts (app.Base) and the evaluator.
// Answers and completions append their events (events.go) to the service's outbox in their
// transactions; WatchSession and WatchInterviewEvents (watch.go) read them back.
// Validate and Policy (reads for any caller with a token, bank changes for the ingest and
// admin roles; handlers keep candidates to their own sessions) go to app.Start, whose
// interceptors run them before each handler.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// Deps are what the servers run on.
type Deps struct {
	app.Base
	Evaluator evaluate.Evaluator // scores answers (Interviews only)
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
	return base{pool: d.Pool, store: store.New(d.DB), retry: d.Retry, log: d.Log, lists: newLists(d.TokenKey)}
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
	eval   evaluate.Evaluator
	outbox *outbox.Outbox // Deps.Base.Outbox: answers and completions append their events
}

// NewInterviews returns the interview session server. d.Outbox must be set
// (app.Options.Outbox).
func NewInterviews(d Deps) *Interviews {
	return &Interviews{base: newBase(d), eval: d.Evaluator, outbox: d.Outbox}
}

// grpcError turns a store error into a status; what every service shares goes to app.Status.
// Refusals the session's state gives (late answer, too few questions) are *apierr.Error
// where they are found.
func (b *base) grpcError(ctx context.Context, err error) error {
	var missing *store.NotFoundError
	switch {
	case errors.As(err, &missing):
		reason := apierr.QuestionNotFound
		if missing.Kind == "session" {
			reason = apierr.SessionNotFound
		}
		return apierr.New(reason, missing.Error(), map[string]string{missing.Field: fmt.Sprint(missing.Key)})
	case errors.Is(err, store.ErrNotFound):
		return apierr.New(apierr.NotFound, err.Error(), nil)
	case errors.Is(err, store.ErrConflict):
		return apierr.New(apierr.AlreadyExists, err.Error(), nil)
	}
	if qerr := questionError(err, 0); qerr != nil {
		return qerr
	}
	return app.Status(ctx, b.log, err)
}

// questionError is the status of a write refused because of the question's state: an etag
// that is no longer current (AIP-154) or sessions that use it; nil for any other error.
// id (0: unknown) goes to the metadata.
func questionError(err error, id int64) error {
	var md map[string]string
	if id != 0 {
		md = map[string]string{"question_id": strconv.FormatInt(id, 10)}
	}
	switch {
	case errors.Is(err, store.ErrStale):
		return apierr.New(apierr.StaleEtag, err.Error()+": read it again and retry", md)
	case errors.Is(err, store.ErrInUse):
		return apierr.New(apierr.QuestionInUse, err.Error(), md)
	}
	return nil
}
