package api_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/services/interview/internal/api"
	"github.com/pgfleet/pgfleet/services/interview/internal/evaluate"
	"github.com/pgfleet/pgfleet/services/interview/migrations"
)

// TestRouting proves the interview service's read routing by data on a primary and a hot
// standby (apptest.Routing): its subtests share the pair and run in order.
func TestRouting(t *testing.T) {
	c := pgtest.NewReplicatedCluster(t)
	rep := startReplicated(t, c, nil)
	bank, interviews := interviewv1.NewQuestionBankServiceClient(rep.Conn), interviewv1.NewInterviewServiceClient(rep.Conn)
	ctx := t.Context()
	s := &seededInterview{settle: func(ctx context.Context) error { return sequenced(ctx, rep.Svc) }}
	for _, q := range []*interviewv1.Question{question("kept", "SQL", 2), question("deleted", "Rust", 2), question("also-asked", "SQL", 2)} {
		resp, err := bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: q})
		if err != nil {
			t.Fatal(err)
		}
		s.questions = append(s.questions, resp.GetQuestion().GetId())
	}
	sess, err := interviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "first",
		Criteria: &interviewv1.Criteria{Categories: []string{"SQL"}, Count: 2}, RequestId: "first"})
	if err != nil {
		t.Fatal(err)
	}
	s.session = sess.GetSession().GetId()
	next, err := interviews.NextQuestion(ctx, &interviewv1.NextQuestionRequest{SessionId: s.session})
	if err != nil {
		t.Fatal(err)
	}
	asked := next.GetQuestion().GetQuestionId()

	routing := apptest.Routing{
		Routes: api.Routes,
		Files:  []protoreflect.FileDescriptor{interviewv1.File_pgfleet_interview_v1_interview_proto},
		Reads:  s.reads(rep.Conn),
		Writes: []apptest.WriteCall{
			{Method: interviewv1.QuestionBankService_CreateQuestion_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: question("created", "Go", 3)}, opts...)
				return err
			}},
			{Method: interviewv1.QuestionBankService_UpdateQuestion_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := bank.UpdateQuestion(ctx, &interviewv1.UpdateQuestionRequest{Question: &interviewv1.Question{Id: s.questions[0], Text: "Rewritten?"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}}}, opts...)
				return err
			}},
			{Method: interviewv1.QuestionBankService_DeleteQuestion_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := bank.DeleteQuestion(ctx, &interviewv1.DeleteQuestionRequest{QuestionId: s.questions[1]}, opts...)
				return err
			}},
			{Method: interviewv1.QuestionBankService_BulkImportQuestions_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := bank.BulkImportQuestions(ctx, &interviewv1.BulkImportQuestionsRequest{Questions: []*interviewv1.Question{question("imported", "Go", 1)}}, opts...)
				return err
			}},
			{Method: interviewv1.InterviewService_StartSession_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := interviews.StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "second",
					Criteria: &interviewv1.Criteria{Count: 1}, RequestId: "second"}, opts...)
				return err
			}},
			{Method: interviewv1.InterviewService_SubmitAnswer_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := interviews.SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: s.session, QuestionId: asked, Answer: "the answer"}, opts...)
				return err
			}},
			{Method: interviewv1.InterviewService_CompleteSession_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := interviews.CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: s.session}, opts...)
				return err
			}},
		},
	}
	t.Run("routes by data and read-your-writes", func(t *testing.T) { routing.Run(t, rep) })

	t.Run("lag past MAX_REPLICA_LAG: reads on the primary, back on the standby after replay", func(t *testing.T) {
		env := maps.Clone(rep.Env)
		env["MAX_REPLICA_LAG"] = "500ms"
		lagging := startReplicated(t, c, env)
		read := s.reads(lagging.Conn)[interviewv1.QuestionBankService_ListQuestions_FullMethodName]
		var n atomic.Int64
		apptest.ProveLag(t, lagging, read, func(ctx context.Context) error {
			_, err := bank.CreateQuestion(ctx, &interviewv1.CreateQuestionRequest{Question: question("lag-"+strconv.FormatInt(n.Add(1), 10), "Go", 2)})
			return err
		})
	})

	t.Run("read-your-writes with the standby replaying", func(t *testing.T) {
		apptest.ProveReadYourWrites(t, rep, s.reads(rep.Conn)[interviewv1.QuestionBankService_GetQuestion_FullMethodName],
			func(ctx context.Context, marker string, opts ...grpc.CallOption) error {
				_, err := bank.UpdateQuestion(ctx, &interviewv1.UpdateQuestionRequest{Question: &interviewv1.Question{Id: s.questions[0], Text: marker + "?"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"text"}}}, opts...)
				return err
			})
	})

	t.Run("standby stopped under a read load: no read fails", func(t *testing.T) {
		var reads []apptest.ReadCall
		for m, read := range s.reads(rep.Conn) {
			if api.Routes[m] == replica.Replica {
				reads = append(reads, read)
			}
		}
		apptest.ProveReplicaDown(t, rep, reads...)
	})
}

// seededInterview is TestRouting's data: three questions (the second, in a category of its
// own, deleted by the writes) and a session of the other two, its first question asked.
type seededInterview struct {
	questions []int64
	session   int64
	// settle returns once the events committed so far are sequenced and the server has read
	// them, so that where a WatchInterviewEvents stream starts says what was written.
	settle func(ctx context.Context) error
}

// sequenced returns once every event in svc's outbox has a position and svc's outbox has
// read up to the last one, or when ctx ends.
func sequenced(ctx context.Context, svc *app.Service) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		var pending int
		err := svc.Pool.QueryRow(ctx, `SELECT count(*) FROM interview.outbox WHERE position IS NULL`).Scan(&pending)
		if err != nil {
			return err
		}
		last, err := outbox.Last(ctx, svc.Pool, "interview")
		if err != nil {
			return err
		}
		if pending == 0 && svc.Outbox.Head() == last {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("outbox not settled (%d events without a position, head %d of %d): %w", pending, svc.Outbox.Head(), last, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// reads calls each read of the interview service over conn, on the seeded data.
func (s *seededInterview) reads(conn *grpc.ClientConn) map[string]apptest.ReadCall {
	bank, interviews := interviewv1.NewQuestionBankServiceClient(conn), interviewv1.NewInterviewServiceClient(conn)
	return map[string]apptest.ReadCall{
		interviewv1.QuestionBankService_GetQuestion_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := bank.GetQuestion(ctx, &interviewv1.GetQuestionRequest{QuestionId: s.questions[0]}, opts...)
			return apptest.Seen(resp), err
		},
		interviewv1.QuestionBankService_ListQuestions_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := bank.ListQuestions(ctx, &interviewv1.ListQuestionsRequest{}, opts...)
			return apptest.Seen(resp), err
		},
		interviewv1.InterviewService_GetSession_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := interviews.GetSession(ctx, &interviewv1.GetSessionRequest{SessionId: s.session}, opts...)
			return apptest.Seen(resp), err
		},
		interviewv1.InterviewService_ListSessions_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := interviews.ListSessions(ctx, &interviewv1.ListSessionsRequest{}, opts...)
			return apptest.Seen(resp), err
		},
		interviewv1.InterviewService_WatchSession_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			ctx, cancel := context.WithCancel(ctx) // the first message: the session now
			defer cancel()
			stream, err := interviews.WatchSession(ctx, &interviewv1.WatchSessionRequest{SessionId: s.session}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			resp, err := stream.Recv()
			return apptest.Seen(resp), err
		},
		interviewv1.InterviewService_WatchInterviewEvents_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			if err := s.settle(ctx); err != nil {
				return "", err
			}
			ctx, cancel := context.WithCancel(ctx) // the first message: where the events stand now
			defer cancel()
			stream, err := interviews.WatchInterviewEvents(ctx, &interviewv1.WatchInterviewEventsRequest{}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			resp, err := stream.Recv()
			return apptest.Seen(resp), err
		},
		interviewv1.InterviewService_NextQuestion_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := interviews.NextQuestion(ctx, &interviewv1.NextQuestionRequest{SessionId: s.session}, opts...)
			if status.Code(err) == codes.FailedPrecondition { // the session completed: what the data says
				return status.Convert(err).Message(), nil
			}
			return apptest.Seen(resp), err
		},
	}
}

// startReplicated starts the interview service's server on c (apptest.StartReplicated), with
// the rubric evaluator only, and env.
func startReplicated(t *testing.T, c *pgtest.ReplicatedCluster, env map[string]string) *apptest.Replicated {
	t.Helper()
	opts := app.Options{Name: "interview", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}
	return apptest.StartReplicated(t, c, opts, env, func(svc *app.Service) []string {
		deps := api.Deps{Base: svc.Base, Evaluator: evaluate.New(evaluate.Config{}, &http.Client{}, svc.Server.Registry())}
		interviewv1.RegisterQuestionBankServiceServer(svc.Server, api.NewQuestionBank(deps))
		interviewv1.RegisterInterviewServiceServer(svc.Server, api.NewInterviews(deps))
		return []string{interviewv1.QuestionBankService_ServiceDesc.ServiceName, interviewv1.InterviewService_ServiceDesc.ServiceName}
	})
}
