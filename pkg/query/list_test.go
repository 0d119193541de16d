package query_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// listRequest is an AIP-132 list request, as generated code has it.
type listRequest struct {
	filter, orderBy, token string
	size                   int32
}

func (r listRequest) GetFilter() string    { return r.filter }
func (r listRequest) GetOrderBy() string   { return r.orderBy }
func (r listRequest) GetPageToken() string { return r.token }
func (r listRequest) GetPageSize() int32   { return r.size }

func TestRequestOf(t *testing.T) {
	t.Parallel()
	got := query.RequestOf(listRequest{"a = 1", "b desc", "tok", 7}, "extra")
	want := query.Request{Filter: "a = 1", OrderBy: "b desc", PageToken: "tok", PageSize: 7, Extra: "extra"}
	if got != want {
		t.Errorf("RequestOf = %+v, want %+v", got, want)
	}
}

// TestList pages through a real table with List, as a handler does: Build, the read under
// retry, Page and the conversion.
func TestList(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewDB(t)
	fillRecs(t, pool)
	retrier := retry.New(retry.Config{MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond}, nil)
	name := func(r rec) string { return r.Symbol + "/" + r.Source }
	read := func(ctx context.Context, q *query.Query) ([]rec, error) {
		return fetch(t, pool, q, true), nil
	}

	t.Run("pages", func(t *testing.T) {
		t.Parallel()
		req := query.Request{Filter: `confidence >= 0.3`, OrderBy: "votes desc", PageSize: 40}
		var want []string
		for _, r := range fetch(t, pool, build(t, &recs, req), false) {
			want = append(want, name(r))
		}
		var got []string
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("more pages than rows (%d): paging does not advance", len(want))
			}
			page, next, err := query.List(t.Context(), retrier, &recs, req, read, name)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(page) > 40 {
				t.Fatalf("List returned %d rows, want at most 40", len(page))
			}
			got = append(got, page...)
			if next == "" {
				break
			}
			req.PageToken = next
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pages differ from one query (-want +got):\n%s", diff)
		}
	})
	t.Run("bad_input_reads_nothing", func(t *testing.T) {
		t.Parallel()
		reads := 0
		_, _, err := query.List(t.Context(), retrier, &recs, query.Request{Filter: "colour = 1"},
			func(context.Context, *query.Query) ([]rec, error) { reads++; return nil, nil }, name)
		var bad *validate.Error
		if !errors.As(err, &bad) || reads != 0 {
			t.Errorf("List = %v after %d reads, want a *validate.Error and no read", err, reads)
		}
	})
	t.Run("retries_a_transient_failure", func(t *testing.T) {
		t.Parallel()
		reads := 0
		page, _, err := query.List(t.Context(), retrier, &recs, query.Request{PageSize: 3},
			func(ctx context.Context, q *query.Query) ([]rec, error) {
				if reads++; reads == 1 {
					return nil, &pgconn.PgError{Code: "40001"}
				}
				return read(ctx, q)
			}, name)
		if err != nil || reads != 2 || len(page) != 3 {
			t.Errorf("List = %d rows, %v after %d reads, want 3 rows after 2 reads", len(page), err, reads)
		}
	})
	t.Run("returns_a_permanent_failure", func(t *testing.T) {
		t.Parallel()
		reads := 0
		failure := &pgconn.PgError{Code: "42P01"} // undefined_table
		_, _, err := query.List(t.Context(), retrier, &recs, query.Request{},
			func(context.Context, *query.Query) ([]rec, error) { reads++; return nil, failure }, name)
		if !errors.Is(err, failure) || reads != 1 {
			t.Errorf("List = %v after %d reads, want the read's error after 1 read", err, reads)
		}
	})
}

func TestSchema_Page_otherSchema(t *testing.T) {
	t.Parallel()
	q := build(t, &stocks, query.Request{PageSize: 1})
	copied := stocks // the same fields, but another schema
	if _, _, err := copied.Page(q, []stock{{Symbol: "A"}, {Symbol: "B"}}); err == nil {
		t.Error("Page of a query another schema built: error = nil, want an error")
	}
}
