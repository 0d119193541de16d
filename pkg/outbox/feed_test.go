package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// startOutbox runs an Outbox of schema on a pool of its own (a process of the fleet) until
// the test ends.
func startOutbox(t *testing.T, url, schema string, cfg outbox.Config) *outbox.Outbox {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	o, err := outbox.New(t.Context(), schema, pool, cfg, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done; pool.Close() })
	return o
}

// commit appends events through o in one transaction, then says so.
func commit(t *testing.T, pool *pgxpool.Pool, o *outbox.Outbox, events ...outbox.Event) {
	t.Helper()
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error { return o.Append(t.Context(), tx, events...) }); err != nil {
		t.Fatal(err)
	}
	o.Committed()
}

func typed(typ, payload string) outbox.Event {
	return outbox.Event{AggregateType: "stock", AggregateID: "AAPL", Type: typ, Payload: []byte(payload)}
}

// TestOutbox_next: two processes of one schema: whichever sequences, both feeds deliver
// every event, in order, through Next; a type filter skips the others without spinning.
func TestOutbox_next(t *testing.T) {
	t.Parallel()
	pool, url := setup(t, "feed")
	a := startOutbox(t, url, "feed", outbox.Config{})
	b := startOutbox(t, url, "feed", outbox.Config{})
	const n = 300
	go func() {
		for i := range n {
			typ := "Even"
			if i%2 == 1 {
				typ = "Odd"
			}
			if err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
				return a.Append(context.Background(), tx, typed(typ, fmt.Sprint(i)))
			}); err != nil {
				t.Error(err)
				return
			}
			a.Committed()
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, o := range []*outbox.Outbox{a, b} {
		var all []string
		for after := int64(0); len(all) < n; {
			recs, next, err := o.Next(ctx, after, nil, 7)
			if err != nil {
				t.Fatalf("Next after %d: %v (got %d of %d)", after, err, len(all), n)
			}
			if next <= after || next != recs[len(recs)-1].Position {
				t.Fatalf("Next after %d = next %d, last record %d", after, next, recs[len(recs)-1].Position)
			}
			for i, r := range recs {
				if r.Position != after+int64(i)+1 {
					t.Fatalf("position %d at index %d after %d: not gapless", r.Position, i, after)
				}
			}
			all = append(all, payloads(recs)...)
			after = next
		}
		for i, p := range all {
			if p != fmt.Sprint(i) {
				t.Fatalf("event %d = %q: not in commit order", i, p)
			}
		}
		// Only the odd ones, from the start: every one of them, and the cursor passes the last even.
		var odd []string
		for after := int64(0); len(odd) < n/2; {
			recs, next, err := o.Next(ctx, after, []string{"Odd"}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			odd = append(odd, payloads(recs)...)
			after = next
		}
		if odd[0] != "1" || odd[len(odd)-1] != fmt.Sprint(n-1) {
			t.Errorf("odd events run %s..%s", odd[0], odd[len(odd)-1])
		}
	}
	if a.Head() != n || b.Head() != n {
		t.Errorf("heads %d, %d, want %d", a.Head(), b.Head(), n)
	}
}

// TestOutbox_withoutWake: an event committed without Committed (a process killed between
// its commit and the wake-up) is still sequenced and delivered, by the poll.
func TestOutbox_withoutWake(t *testing.T) {
	t.Parallel()
	pool, url := setup(t, "nowake")
	o := startOutbox(t, url, "nowake", outbox.Config{})
	if err := pgx.BeginFunc(t.Context(), pool, func(tx pgx.Tx) error {
		return outbox.Append(t.Context(), tx, "nowake", typed("T", "silent"))
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	recs, _, err := o.Next(ctx, 0, nil, 10)
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != "silent" {
		t.Fatalf("Next = %v, %v; want the silent event", payloads(recs), err)
	}
}

// TestOutbox_behindRing: a subscriber further behind than the ring reads the table, a page
// at a time, and still gets everything in order; Recent tells a latest-value stream to
// re-snapshot instead.
func TestOutbox_behindRing(t *testing.T) {
	t.Parallel()
	pool, url := setup(t, "ring")
	o := startOutbox(t, url, "ring", outbox.Config{})
	const n = 20000 // more than the ring holds
	events := make([]outbox.Event, 0, 2000)
	for i := range n {
		events = append(events, typed("T", fmt.Sprint(i)))
		if len(events) == cap(events) {
			commit(t, pool, o, events...)
			events = events[:0]
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := o.Wait(ctx, n-1); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := o.Recent(0, nil); ok {
		t.Error("Recent(0) ok after more events than the ring holds")
	}
	if recs, next, ok := o.Recent(n-10, nil); !ok || len(recs) != 10 || next != n {
		t.Errorf("Recent(n-10) = %d records, next %d, ok %v; want 10, %d, true", len(recs), next, ok, n)
	}
	got := 0
	for after := int64(0); after < n; {
		recs, next, err := o.Next(ctx, after, nil, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range recs {
			if string(r.Payload) != fmt.Sprint(got+i) {
				t.Fatalf("event %d = %q", got+i, r.Payload)
			}
		}
		got += len(recs)
		after = next
	}
	if got != n {
		t.Errorf("read %d events, want %d", got, n)
	}
}

// TestOutbox_pruned: Next from a cursor whose events were pruned says so.
func TestOutbox_pruned(t *testing.T) {
	t.Parallel()
	pool, url := setup(t, "pruned")
	o := startOutbox(t, url, "pruned", outbox.Config{})
	for i := range 5 {
		commit(t, pool, o, typed("T", fmt.Sprint(i)))
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := o.Wait(ctx, 4); err != nil {
		t.Fatal(err)
	}
	// A fresh process: its ring starts at the table's end, so old cursors read the table.
	fresh := startOutbox(t, url, "pruned", outbox.Config{})
	if _, err := outbox.Prune(ctx, pool, "pruned", outbox.Retention{Before: 4}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fresh.Next(ctx, 1, nil, 10); !errors.Is(err, outbox.ErrCursorPruned) {
		t.Errorf("Next(1) after pruning 1..3 = %v, want ErrCursorPruned", err)
	}
	recs, _, err := fresh.Next(ctx, 3, nil, 10)
	if err != nil || len(recs) != 2 {
		t.Errorf("Next(3) = %d records, %v; want 4 and 5", len(recs), err)
	}
}

// TestOutbox_concurrentSubscribers: many subscribers of one process, each at its own pace,
// all get every event (the ring is shared; nobody blocks the feed).
func TestOutbox_concurrentSubscribers(t *testing.T) {
	t.Parallel()
	pool, url := setup(t, "subs")
	o := startOutbox(t, url, "subs", outbox.Config{})
	const subs, n = 50, 200
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, subs)
	for s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := 0
			for after := int64(0); seen < n; {
				recs, next, err := o.Next(ctx, after, nil, 1+s%5)
				if err != nil {
					errs <- err
					return
				}
				seen += len(recs)
				after = next
			}
		}()
	}
	for i := range n {
		commit(t, pool, o, typed("T", fmt.Sprint(i)))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestNewEventAndCursor(t *testing.T) {
	t.Parallel()
	e, err := outbox.NewEvent("stock", "AAPL", wrapperspb.String("x"))
	if err != nil || e.Type != "google.protobuf.StringValue" || e.AggregateID != "AAPL" {
		t.Fatalf("NewEvent = %+v, %v", e, err)
	}
	var back wrapperspb.StringValue
	if err := proto.Unmarshal(e.Payload, &back); err != nil || back.GetValue() != "x" {
		t.Errorf("payload = %v, %v", back.GetValue(), err)
	}
	c := outbox.Cursor("stock", 42)
	if pos, err := outbox.ParseCursor("stock", c); err != nil || pos != 42 {
		t.Errorf("ParseCursor(Cursor(42)) = %d, %v", pos, err)
	}
	for _, bad := range []string{"", "42", c + "!", outbox.Cursor("portfolio", 42), "djEuc3RvY2suLTE", "djEuc3RvY2suMDQy", "%%%"} {
		if _, err := outbox.ParseCursor("stock", bad); !errors.Is(err, outbox.ErrCursorMalformed) {
			t.Errorf("ParseCursor(%q) = %v, want ErrCursorMalformed", bad, err)
		}
	}
}
