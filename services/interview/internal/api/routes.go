package api

import (
	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// Routes: question bank reads and the list of sessions tolerate the replicas' lag bound, or
// see a write whose consistency token they carry; a session being taken is read on the
// primary, where its answers are written, and so are the Watch streams, which follow the
// outbox there.
var Routes = replica.Routes{
	interviewv1.QuestionBankService_GetQuestion_FullMethodName:         replica.Replica,
	interviewv1.QuestionBankService_ListQuestions_FullMethodName:       replica.Replica,
	interviewv1.InterviewService_ListSessions_FullMethodName:           replica.Replica,
	interviewv1.QuestionBankService_CreateQuestion_FullMethodName:      replica.Primary,
	interviewv1.QuestionBankService_UpdateQuestion_FullMethodName:      replica.Primary,
	interviewv1.QuestionBankService_DeleteQuestion_FullMethodName:      replica.Primary,
	interviewv1.QuestionBankService_BulkImportQuestions_FullMethodName: replica.Primary,
	interviewv1.InterviewService_StartSession_FullMethodName:           replica.Primary,
	interviewv1.InterviewService_GetSession_FullMethodName:             replica.Primary,
	interviewv1.InterviewService_NextQuestion_FullMethodName:           replica.Primary,
	interviewv1.InterviewService_SubmitAnswer_FullMethodName:           replica.Primary,
	interviewv1.InterviewService_CompleteSession_FullMethodName:        replica.Primary,
	interviewv1.InterviewService_WatchSession_FullMethodName:           replica.Primary,
	interviewv1.InterviewService_WatchInterviewEvents_FullMethodName:   replica.Primary,
}
