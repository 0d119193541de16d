package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestWatchEvents_resume runs two interview processes on one database and a consumer of
// WatchEvents that hops between them, resuming from its last cursor each time: after a few
// messages, and when the process it reads from is stopped (its drain ends the stream) while
// the other goes on writing. Whichever process sequences the events, and whichever serves
// the consumer, it receives every event, in commit order, none missing.
func TestWatchEvents_resume(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := apptest.Build(dir, "github.com/pgfleet/pgfleet/services/interview"); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewDBURL(t)
	procs := []*apptest.Process{
		apptest.StartProcess(t, filepath.Join(dir, "interview"), "DATABASE_URL="+db),
		apptest.StartProcess(t, filepath.Join(dir, "interview"), "DATABASE_URL="+db),
	}
	var clients []interviewv1.InterviewServiceClient
	for _, p := range procs {
		clients = append(clients, interviewv1.NewInterviewServiceClient(apptest.Dial(t, p.Addr, authtest.Admin(t))))
	}
	bank := interviewv1.NewQuestionBankServiceClient(apptest.Dial(t, procs[0].Addr, authtest.Admin(t)))
	const perSession = 3
	var qs []*interviewv1.Question
	for i := range perSession {
		qs = append(qs, &interviewv1.Question{Key: fmt.Sprintf("resume-%d", i), Text: "What does a LEFT JOIN keep?", Category: "SQL",
			Difficulty: 2, Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{{Description: "all left rows", Weight: 1, Keywords: []string{"all rows"}}}}})
	}
	if _, err := bank.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: qs}); err != nil {
		t.Fatal(err)
	}

	const sessions = 9 // three rounds of three
	want := sessions * (perSession + 1)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	consumed := make(chan []string, 1)
	go func() { consumed <- consume(ctx, t, clients, want) }()

	// interview runs a whole session, its calls spread over the processes in up. They wait
	// for a connection (a restarted process's, say) rather than fail fast.
	ready := grpc.WaitForReady(true)
	interview := func(up ...int) {
		t.Helper()
		c := func(i int) interviewv1.InterviewServiceClient { return clients[up[i%len(up)]] }
		start, err := c(0).StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "ada@example.com", Criteria: &interviewv1.Criteria{Count: perSession}}, ready)
		if err != nil {
			t.Fatalf("StartSession: %v", err)
		}
		sid := start.GetSession().GetId()
		for i, q := range start.GetSession().GetQuestions() {
			if _, err := c(i+1).SubmitAnswer(ctx, &interviewv1.SubmitAnswerRequest{SessionId: sid, QuestionId: q.GetQuestionId(), Answer: "all rows"}, ready); err != nil {
				t.Fatalf("SubmitAnswer: %v", err)
			}
		}
		if _, err := c(perSession+1).CompleteSession(ctx, &interviewv1.CompleteSessionRequest{SessionId: sid}, ready); err != nil {
			t.Fatalf("CompleteSession: %v", err)
		}
	}
	for range sessions / 3 {
		interview(0, 1)
	}
	procs[0].Stop(t) // its sequencer and its feed go; process 1 carries on alone
	for range sessions / 3 {
		interview(1)
	}
	procs[0].Start(t)
	for range sessions / 3 {
		interview(1, 0)
	}

	var got []string
	select {
	case got = <-consumed:
	case <-ctx.Done():
		t.Fatalf("consumer: %v", ctx.Err())
	}
	pool, err := pgxpool.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var table []string
	pgtest.Poll(t, "every event sequenced", func() bool {
		rows, err := pool.Query(ctx, `SELECT id::text FROM interview.outbox WHERE position IS NOT NULL ORDER BY position`)
		if err != nil {
			t.Fatal(err)
		}
		table = table[:0]
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			table = append(table, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return len(table) == want
	})
	// At least once: a resumed stream may repeat; without the repeats, it is the outbox.
	var firsts []string
	for _, id := range got {
		if !slices.Contains(firsts, id) {
			firsts = append(firsts, id)
		}
	}
	if !slices.Equal(firsts, table) {
		t.Errorf("consumer received %d events (%d distinct), the outbox holds %d: not the same sequence\nreceived %q\noutbox   %q",
			len(got), len(firsts), len(table), firsts, table)
	}
}

// consume reads WatchEvents from the oldest event until it has received want distinct events,
// and returns their ids in the order received. It resumes from its last cursor on the other
// process after every few messages, and whenever a stream ends (a process stopping).
func consume(ctx context.Context, t *testing.T, clients []interviewv1.InterviewServiceClient, want int) []string {
	var (
		got    []string
		seen   = map[string]bool{}
		cursor string
	)
	for i := 0; len(seen) < want; i++ {
		if ctx.Err() != nil {
			t.Errorf("consumer: %d of %d events when %v", len(seen), want, ctx.Err())
			return got
		}
		sctx, cancel := context.WithCancel(ctx) // ends the stream when this turn ends
		stream, err := clients[i%len(clients)].WatchEvents(sctx, &interviewv1.WatchEventsRequest{Cursor: cursor, FromOldest: cursor == ""})
		if err != nil {
			cancel()
			continue // that process is down: the other one
		}
		for msgs := 0; msgs < 3 && len(seen) < want; msgs++ {
			resp, err := stream.Recv()
			if err != nil {
				if c := status.Code(err); c != codes.Unavailable && c != codes.Canceled {
					t.Errorf("consumer: WatchEvents: %v, want UNAVAILABLE at most (a process stopping)", err)
				}
				break
			}
			for _, ev := range resp.GetEvents() {
				got = append(got, ev.GetId())
				seen[ev.GetId()] = true
			}
			cursor = resp.GetCursor()
		}
		cancel()
	}
	return got
}
