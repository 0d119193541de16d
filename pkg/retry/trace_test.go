package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pgfleet/pgfleet/pkg/retry"
)

// TestRetrier_spanEvents: each retryable failure of a traced call is an event on its span,
// with the attempt, the SQLSTATE and whether the retrier gave up.
func TestRetrier_spanEvents(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	r := retry.New(retry.Config{MaxAttempts: 2, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, nil)
	ctx, span := tp.Tracer("test").Start(t.Context(), "ExecuteTrade")
	err := r.Do(ctx, func(context.Context) error {
		return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	})
	span.End()
	if err == nil {
		t.Fatal("Do = nil, want ErrExhausted")
	}
	var got []string
	for _, e := range rec.Ended()[0].Events() {
		attrs := map[string]string{}
		for _, a := range e.Attributes {
			attrs[string(a.Key)] = a.Value.String()
		}
		got = append(got, e.Name+" "+attrs["attempt"]+" "+attrs["db.response.status_code"]+" exhausted="+attrs["exhausted"])
	}
	want := []string{"retryable error 1 40001 exhausted=false", "retryable error 2 40001 exhausted=true"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("span events = %q, want %q", got, want)
	}
}
