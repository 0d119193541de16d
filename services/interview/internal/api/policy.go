package api

import (
	"context"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/services/interview/internal/store"
)

// editors may change the question bank.
var editors = auth.Roles(auth.RoleIngest, auth.RoleAdmin)

// Policy: reading the question bank needs a token (its rubrics are what answers are scored
// against, not for the public); changing it needs the ingest or admin role. Sessions need a
// token, and the handlers keep each candidate to their own (see getSession); WatchSession too,
// as GetSession. WatchInterviewEvents streams every candidate's events: role service or admin.
var Policy = auth.Policy{
	interviewv1.QuestionBankService_ServiceDesc.ServiceName:            auth.Authenticated,
	interviewv1.QuestionBankService_CreateQuestion_FullMethodName:      editors,
	interviewv1.QuestionBankService_UpdateQuestion_FullMethodName:      editors,
	interviewv1.QuestionBankService_DeleteQuestion_FullMethodName:      editors,
	interviewv1.QuestionBankService_BulkImportQuestions_FullMethodName: editors,
	interviewv1.InterviewService_ServiceDesc.ServiceName:               auth.Authenticated,
	// Every candidate's answers and summaries: for the fleet's services and operators.
	interviewv1.InterviewService_WatchInterviewEvents_FullMethodName: auth.Roles(auth.RoleService, auth.RoleAdmin),
}

// getSession is store.GetSession for the caller: another candidate's session is refused
// exactly as a missing one is, so ids reveal nothing; an admin reaches every session.
func getSession(ctx context.Context, st *store.Store, id int64, lock store.RowLock) (store.Session, error) {
	sess, err := st.GetSession(ctx, id, lock)
	if err == nil && !auth.Caller(ctx).Owns(sess.Candidate) {
		return store.Session{}, &store.NotFoundError{Kind: "session", Field: "session_id", Key: id}
	}
	return sess, err
}
