package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/events"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	strType = "google.protobuf.StringValue"
	intType = "google.protobuf.Int64Value"
)

var known = []string{strType, intType}

func start(t *testing.T) (*pgxpool.Pool, *outbox.Outbox) {
	t.Helper()
	pool := pgtest.NewDB(t)
	if _, err := pool.Exec(t.Context(), "CREATE SCHEMA ev;\n"+outbox.Migration(1, "ev").Up); err != nil {
		t.Fatal(err)
	}
	return pool, process(t, pool)
}

// process runs another process's Outbox on pool: its ring starts at the table's end.
func process(t *testing.T, pool *pgxpool.Pool) *outbox.Outbox {
	t.Helper()
	o, err := outbox.New(t.Context(), "ev", pool, outbox.Config{}, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return o
}

func emit(t *testing.T, pool *pgxpool.Pool, o *outbox.Outbox, values ...string) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		for _, v := range values {
			e, err := outbox.NewEvent("thing", v, wrapperspb.String(v))
			if err != nil {
				return err
			}
			if err := o.Append(t.Context(), tx, e); err != nil {
				return err
			}
		}
		ie, err := outbox.NewEvent("thing", "n", wrapperspb.Int64(int64(len(values))))
		if err != nil {
			return err
		}
		return o.Append(t.Context(), tx, ie)
	})
	if err != nil {
		t.Fatal(err)
	}
	o.Committed()
}

type message struct {
	evs    []*opsv1.Event
	cursor string
}

// serve runs Serve in the background; its messages arrive on the channel, its end on the error channel.
func serve(ctx context.Context, o *outbox.Outbox, req events.Request) (<-chan message, <-chan error) {
	msgs, done := make(chan message, 100), make(chan error, 1)
	go func() {
		done <- events.Serve(ctx, o, known, req, func(evs []*opsv1.Event, cursor string) error {
			msgs <- message{evs, cursor}
			return nil
		})
	}()
	return msgs, done
}

// collect reads messages until it has n events.
func collect(t *testing.T, msgs <-chan message, n int) ([]*opsv1.Event, string) {
	t.Helper()
	var (
		all    []*opsv1.Event
		cursor string
	)
	deadline := time.After(time.Minute)
	for len(all) < n {
		select {
		case m := <-msgs:
			all = append(all, m.evs...)
			cursor = m.cursor
		case <-deadline:
			t.Fatalf("%d events of %d after a minute", len(all), n)
		}
	}
	return all, cursor
}

func values(t *testing.T, evs []*opsv1.Event) []string {
	t.Helper()
	var out []string
	for _, e := range evs {
		if e.GetType() != strType {
			continue
		}
		var v wrapperspb.StringValue
		if err := e.GetPayload().UnmarshalTo(&v); err != nil {
			t.Fatalf("payload of %s: %v", e.GetType(), err)
		}
		out = append(out, v.GetValue())
	}
	return out
}

// TestServe_resume: from now, a first message marks the start; from its cursor, a new call
// resumes exactly after the last event handled; types filter; from_oldest replays all.
func TestServe_resume(t *testing.T) {
	t.Parallel()
	pool, o := start(t)
	emit(t, pool, o, "before")
	if err := o.Wait(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	msgs, done := serve(ctx, o, events.Request{Types: []string{strType}})
	first := <-msgs
	if len(first.evs) != 0 || first.cursor == "" {
		t.Fatalf("first message = %d events, cursor %q; want none and a cursor", len(first.evs), first.cursor)
	}
	emit(t, pool, o, "a", "b")
	got, cursor := collect(t, msgs, 2)
	if v := values(t, got); len(v) != 2 || v[0] != "a" || v[1] != "b" {
		t.Fatalf("values = %v, want [a b]", v)
	}
	if got[0].GetId() == "" || got[0].GetAggregateId() != "a" || got[0].GetAggregateType() != "thing" {
		t.Errorf("event fields: %v", got[0])
	}
	// The message's cursor is past the events the filter skipped (the count after b).
	last, _ := outbox.ParseCursor("ev", got[1].GetCursor())
	if pos, err := outbox.ParseCursor("ev", cursor); err != nil || pos != last+1 {
		t.Errorf("message cursor at %d (%v), want %d: past the skipped event", pos, err, last+1)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel = %v", err)
	}

	emit(t, pool, o, "c")
	msgs, _ = serve(t.Context(), o, events.Request{Cursor: cursor})
	got, _ = collect(t, msgs, 2) // c, then its count: every type, none before the cursor
	if v := values(t, got); len(v) != 1 || v[0] != "c" || got[1].GetType() != intType {
		t.Errorf("resumed = %v (%d events), want c then its count", v, len(got))
	}

	msgs, _ = serve(t.Context(), o, events.Request{FromOldest: true, Types: []string{strType}})
	got, _ = collect(t, msgs, 4)
	if v := values(t, got); len(v) != 4 || v[0] != "before" || v[3] != "c" {
		t.Errorf("from oldest = %v", v)
	}
}

// TestServe_badRequest: every refusal is INVALID_ARGUMENT or FAILED_PRECONDITION with its reason.
func TestServe_badRequest(t *testing.T) {
	t.Parallel()
	pool, o := start(t)
	emit(t, pool, o, "x", "y", "z")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := o.Wait(ctx, 3); err != nil {
		t.Fatal(err)
	}
	many := make([]string, 21)
	for i := range many {
		many[i] = strType
	}
	if _, err := outbox.Prune(ctx, pool, "ev", outbox.Retention{Before: 3}); err != nil {
		t.Fatal(err)
	}
	// A process started after the pruning reads old cursors from the table (one whose ring
	// still holds the pruned events serves them: nothing is lost).
	o = process(t, pool)
	for _, tc := range []struct {
		name   string
		req    events.Request
		code   codes.Code
		reason apierr.Reason
	}{
		{"unknown type", events.Request{Types: []string{"pgfleet.stock.v1.Nothing"}}, codes.InvalidArgument, apierr.InvalidField},
		{"duplicate type", events.Request{Types: []string{strType, strType}}, codes.InvalidArgument, apierr.InvalidField},
		{"too many types", events.Request{Types: many}, codes.InvalidArgument, apierr.InvalidField},
		{"garbage cursor", events.Request{Cursor: "not a cursor"}, codes.InvalidArgument, apierr.CursorMalformed},
		{"another schema's cursor", events.Request{Cursor: outbox.Cursor("stock", 1)}, codes.InvalidArgument, apierr.CursorMalformed},
		{"cursor ahead", events.Request{Cursor: outbox.Cursor("ev", 1000)}, codes.InvalidArgument, apierr.CursorMalformed},
		{"pruned cursor", events.Request{Cursor: outbox.Cursor("ev", 0)}, codes.FailedPrecondition, apierr.CursorExpired},
	} {
		err := events.Serve(ctx, o, known, tc.req, func([]*opsv1.Event, string) error { return nil })
		if status.Code(err) != tc.code || apierr.ReasonOf(err) != tc.reason {
			t.Errorf("%s: Serve = %v (reason %q), want %v %s", tc.name, err, apierr.ReasonOf(err), tc.code, tc.reason)
		}
	}
}
