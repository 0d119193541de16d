// Package source is the contract between the ingestion pipeline and the connectors that
// fetch daily bars from outside (an HTTP market-data provider, files dropped in a
// directory). A connector only fetches and parses: the pipeline validates each bar,
// quarantines the bad ones with their reasons, and ingests the rest under the symbols'
// write locks, one batch at a time, so memory stays bounded whatever the run's size.
package source

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Bar is one daily bar as a source delivered it, before validation.
type Bar struct {
	Symbol string
	Time   time.Time
	// Prices as decimal text, exactly as the source sent them (never parsed to float).
	Open, High, Low, Close string
	Volume                 int64
	// Ref says where the bar came from ("bars/2026-12-01.csv:12", "AAPL 2026-12-01"), so a
	// rejected bar can be found at its source.
	Ref string
}

// Reject is something a source received but could not parse into a Bar.
type Reject struct {
	Ref    string // where it came from, as Bar.Ref
	Reason string // why it was refused, for a person to read
	Raw    string // the offending input, cut to a few hundred bytes
}

// Request says what one run asks a source for.
type Request struct {
	// Symbols to fetch; empty means all the source has (a file drop delivers what it holds).
	Symbols []string
	// From and To bound the bars' days: From <= day < To, in UTC.
	From, To time.Time
}

// Source fetches daily bars. Fetch calls emit with successive batches (a few thousand bars
// at most each) and returns when the source is exhausted, ctx ends, emit fails (its error
// is returned as is), or the source fails. A Fetch repeated after a failure may deliver
// bars emitted before: the pipeline's writes are idempotent by (symbol, day).
type Source interface {
	// Name identifies the connector in runs, logs and metrics ("polygon", "files").
	Name() string
	Fetch(ctx context.Context, req Request, emit func(bars []Bar, rejects []Reject) error) error
}

// TransientError is a failure that a later attempt may not meet: a timeout, a refused
// connection, an HTTP 5xx, a rate limit. Any other error fails the run at once.
type TransientError struct {
	Err error
	// RetryAfter is the wait the source asked for (an HTTP Retry-After); zero if none.
	RetryAfter time.Duration
}

func (e *TransientError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.RetryAfter)
	}
	return e.Err.Error()
}

func (e *TransientError) Unwrap() error { return e.Err }

// Transient reports whether err is worth retrying, and the wait the source asked for.
func Transient(err error) (retryAfter time.Duration, ok bool) {
	var t *TransientError
	if errors.As(err, &t) {
		return t.RetryAfter, true
	}
	return 0, false
}
