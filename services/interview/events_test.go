package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestWatchInterviewEvents_resume runs two interview processes on one database and two consumers of
// WatchInterviewEvents: one hops between the processes after every few messages, resuming from its last
// cursor each time, while sessions run; the other reads from the first process until it
// stops (its drain ends the stream with UNAVAILABLE SHUTTING_DOWN), resumes on the second
// while it carries on alone, and on the first again once it is back. Whichever process
// sequences the events and whichever serves the consumer, each receives every event, in
// commit order, none missing.
func TestWatchInterviewEvents_resume(t *testing.T) {
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

	const rounds, perRound = 3, 3 // sessions
	const roundEvents = perRound * (perSession + 1)
	want := rounds * roundEvents
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	var hopper sync.WaitGroup
	var hopped *reader
	hopper.Go(func() { hopped = hop(ctx, t, clients, want) })
	t.Cleanup(hopper.Wait) // after the deferred cancel, on a failure too: it reports before t ends

	// round runs perRound whole sessions, their calls spread over the processes in up. They
	// wait for a connection (a restarted process's) rather than fail fast.
	ready := grpc.WaitForReady(true)
	round := func(up ...int) {
		t.Helper()
		c := func(i int) interviewv1.InterviewServiceClient { return clients[up[i%len(up)]] }
		for range perRound {
			start, err := c(0).StartSession(ctx, &interviewv1.StartSessionRequest{Candidate: "ada@example.com",
				Criteria: &interviewv1.Criteria{Count: perSession}}, ready)
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
	}

	held := &reader{seen: map[string]bool{}}
	stream := held.open(ctx, t, clients[0])
	round(0, 1)
	held.readUntil(t, stream, roundEvents)
	procs[0].Stop(t) // its sequencer and its feed go; process 1 carries on alone
	_, err := stream.Recv()
	if status.Code(err) != codes.Unavailable || apierr.ReasonOf(err) != apierr.ShuttingDown {
		t.Errorf("stream of a stopping process = %v (reason %q), want UNAVAILABLE SHUTTING_DOWN", err, apierr.ReasonOf(err))
	}
	round(1)
	held.readUntil(t, held.open(ctx, t, clients[1]), 2*roundEvents)
	procs[0].Start(t)
	round(1, 0)
	held.readUntil(t, held.open(ctx, t, clients[0]), want)

	hopper.Wait()
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
		table, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return len(table) == want
	})
	for name, r := range map[string]*reader{"held": held, "hopping": hopped} {
		// At least once: a resumed stream may repeat; without the repeats, it is the outbox.
		if got := r.firsts(); !slices.Equal(got, table) {
			t.Errorf("%s consumer received %d events (%d distinct), the outbox holds %d: not the same sequence\nreceived %q\noutbox   %q",
				name, len(r.ids), len(got), len(table), got, table)
		}
		t.Logf("%s consumer: %d events, %d distinct, over %d streams", name, len(r.ids), len(r.seen), r.streams)
	}
}

// reader is a consumer of WatchInterviewEvents: what it received and the cursor to resume from.
type reader struct {
	ids     []string // event ids as received, repeats included
	seen    map[string]bool
	cursor  string
	streams int
}

// open starts a stream on c from the reader's cursor, or from the oldest event; it ends with ctx.
func (r *reader) open(ctx context.Context, t *testing.T, c interviewv1.InterviewServiceClient) grpc.ServerStreamingClient[interviewv1.WatchInterviewEventsResponse] {
	t.Helper()
	stream, err := c.WatchInterviewEvents(ctx, &interviewv1.WatchInterviewEventsRequest{Cursor: r.cursor, FromOldest: r.cursor == ""}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatalf("WatchInterviewEvents: %v", err)
	}
	r.streams++
	return stream
}

// receive takes one message.
func (r *reader) receive(stream grpc.ServerStreamingClient[interviewv1.WatchInterviewEventsResponse]) error {
	resp, err := stream.Recv()
	if err != nil {
		return err
	}
	for _, ev := range resp.GetEvents() {
		r.ids = append(r.ids, ev.GetId())
		r.seen[ev.GetId()] = true
	}
	r.cursor = resp.GetCursor()
	return nil
}

// readUntil receives until the reader has n distinct events.
func (r *reader) readUntil(t *testing.T, stream grpc.ServerStreamingClient[interviewv1.WatchInterviewEventsResponse], n int) {
	t.Helper()
	for len(r.seen) < n {
		if err := r.receive(stream); err != nil {
			t.Fatalf("WatchInterviewEvents after %d of %d events: %v", len(r.seen), n, err)
		}
	}
}

// firsts returns the ids received without repeats, in the order first received.
func (r *reader) firsts() []string {
	var out []string
	done := map[string]bool{}
	for _, id := range r.ids {
		if !done[id] {
			out = append(out, id)
			done[id] = true
		}
	}
	return out
}

// hop reads WatchInterviewEvents from the oldest event until it has want distinct events, resuming
// from its last cursor on the other process after every few messages, and whenever a stream
// ends (a process stopping) or cannot start (a process stopped).
func hop(ctx context.Context, t *testing.T, clients []interviewv1.InterviewServiceClient, want int) *reader {
	r := &reader{seen: map[string]bool{}}
	for i := 0; len(r.seen) < want; i++ {
		if ctx.Err() != nil {
			t.Errorf("hopping consumer: %d of %d events when %v", len(r.seen), want, ctx.Err())
			return r
		}
		sctx, cancel := context.WithCancel(ctx) // ends the stream when this turn ends
		stream, err := clients[i%len(clients)].WatchInterviewEvents(sctx, &interviewv1.WatchInterviewEventsRequest{Cursor: r.cursor, FromOldest: r.cursor == ""})
		if err != nil {
			cancel()
			continue // that process is down: the other one
		}
		r.streams++
		for msgs := 0; msgs < 3 && len(r.seen) < want; msgs++ {
			if err := r.receive(stream); err != nil {
				if status.Code(err) != codes.Unavailable {
					t.Errorf("hopping consumer: WatchInterviewEvents: %v, want UNAVAILABLE at most (a process stopping)", err)
				}
				break
			}
		}
		cancel()
	}
	return r
}
