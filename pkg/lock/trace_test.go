package lock_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestLocker_Acquire_spanEvents: a traced call's span notes each lock granted and each wait
// that timed out, with the lock's names, mode and wait.
func TestLocker_Acquire_spanEvents(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	pool := pgtest.NewDB(t)
	l := lock.New(lock.Config{Wait: 200 * time.Millisecond}, nil)
	holder, waiter := begin(t, pool), begin(t, pool)
	ctx, span := tp.Tracer("test").Start(t.Context(), "ExecuteTrade")
	if err := l.Acquire(ctx, holder, "portfolio:42", lock.Exclusive); err != nil {
		t.Fatalf("holder Acquire: %v", err)
	}
	if err := l.Acquire(ctx, waiter, "portfolio:42", lock.Read); !errors.Is(err, lock.ErrTimeout) {
		t.Fatalf("waiter Acquire = %v, want ErrTimeout", err)
	}
	span.End()

	ended := rec.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans ended, want 1", len(ended))
	}
	var got []string
	for _, e := range ended[0].Events() {
		attrs := map[string]string{}
		for _, a := range e.Attributes {
			attrs[string(a.Key)] = fmt.Sprint(a.Value.AsInterface())
		}
		if attrs["lock.names"] != "[portfolio:42]" || attrs["lock.wait_ms"] == "" {
			t.Errorf("event %q attributes = %v, want lock.names [portfolio:42] and lock.wait_ms", e.Name, attrs)
		}
		got = append(got, e.Name+" "+attrs["lock.mode"])
	}
	want := []string{"lock acquired exclusive", "lock timed out read"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("span events = %q, want %q", got, want)
	}
}
