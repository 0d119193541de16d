package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// barFixture is four ISO weeks of weekday bars of S000, Monday 2024-01-22 to Friday
// 2024-02-16: the week of 2024-01-29 spans January and February. Bar k opens at 100+k, has
// high max(open, close)+2, low min(open, close)-3 and volume 10(k+1); the closes are chosen
// so that the weeks' and months' returns are short decimals.
func barFixture() []*stockv1.Price {
	closes := []string{
		"100", "102", "101", "104", "100", // Jan 22-26
		"106", "90", "80", "105", "110", // Jan 29-Feb 2
		"112", "95", "120", "100", "99", // Feb 5-9
		"130", "140", "150", "125", "148.5", // Feb 12-16
	}
	first := time.Date(2024, 1, 22, 0, 0, 0, 0, time.UTC)
	prices := make([]*stockv1.Price, len(closes))
	for k, c := range closes {
		day := first.AddDate(0, 0, k/5*7+k%5)
		var cl float64
		fmt.Sscan(c, &cl) //nolint:errcheck // the literals above
		open := float64(100 + k)
		prices[k] = &stockv1.Price{
			Symbol: "S000", Time: timestamppb.New(day),
			Open: fmt.Sprint(open), Close: c,
			High: fmt.Sprint(max(open, cl) + 2), Low: fmt.Sprint(min(open, cl) - 3),
			Volume: int64(10 * (k + 1)),
		}
	}
	return prices
}

func utc(y int, m time.Month, d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// barsEnv is a server with S000 holding barFixture and S001 holding no bars.
func barsEnv(t *testing.T) env {
	t.Helper()
	e := newEnv(t)
	seedStocks(t, e, 2)
	if _, err := e.ingest(t, barFixture(), 7); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return e
}

// allBars pages through req with its page size and returns every bar.
func allBars(t *testing.T, client stockv1.StockServiceClient, req *stockv1.ListBarsRequest) []*stockv1.Bar {
	t.Helper()
	return allPages(t, func(token string) ([]*stockv1.Bar, string, error) {
		req.PageToken = token
		resp, err := client.ListBars(t.Context(), req)
		return resp.GetBars(), resp.GetNextPageToken(), err
	})
}

// allPages calls list with each page token in turn, from none, until a page has no next
// token, and returns every item; a failed call fails the test.
func allPages[T any](t *testing.T, list func(token string) (items []T, next string, err error)) []T {
	t.Helper()
	var all []T
	token := ""
	for {
		items, next, err := list(token)
		if err != nil {
			t.Fatalf("page after token %q: %v", token, err)
		}
		all = append(all, items...)
		if next == "" {
			return all
		}
		token = next
	}
}

// TestListBars_values holds the weekly and monthly bars and the returns to values computed
// by hand from barFixture.
func TestListBars_values(t *testing.T) {
	t.Parallel()
	e := barsEnv(t)
	tests := []struct {
		name string
		req  *stockv1.ListBarsRequest
		want []*stockv1.Bar
	}{
		{"weeks", &stockv1.ListBarsRequest{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_WEEK}, []*stockv1.Bar{
			{StartTime: utc(2024, 1, 22), Open: "100", High: "106", Low: "97", Close: "100", Volume: 150, BarCount: 5},
			{StartTime: utc(2024, 1, 29), Open: "105", High: "112", Low: "77", Close: "110", Volume: 400, BarCount: 5, SimpleReturn: "0.1"},
			{StartTime: utc(2024, 2, 5), Open: "110", High: "122", Low: "92", Close: "99", Volume: 650, BarCount: 5, SimpleReturn: "-0.1"},
			{StartTime: utc(2024, 2, 12), Open: "115", High: "152", Low: "112", Close: "148.5", Volume: 900, BarCount: 5, SimpleReturn: "0.5"},
		}},
		{"months", &stockv1.ListBarsRequest{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_MONTH}, []*stockv1.Bar{
			{StartTime: utc(2024, 1, 1), Open: "100", High: "109", Low: "77", Close: "80", Volume: 360, BarCount: 8},
			{StartTime: utc(2024, 2, 1), Open: "108", High: "152", Low: "92", Close: "148.5", Volume: 1740, BarCount: 12, SimpleReturn: "0.85625"},
		}},
		// From a Wednesday: the first week holds three days, and its return is empty, since
		// the range's first bar has no previous one even though stored bars precede it.
		{"weeks from mid-week", &stockv1.ListBarsRequest{
			Symbol: "S000", Interval: stockv1.Interval_INTERVAL_WEEK, StartTime: utc(2024, 1, 24), EndTime: utc(2024, 2, 6),
		}, []*stockv1.Bar{
			{StartTime: utc(2024, 1, 22), Open: "102", High: "106", Low: "97", Close: "100", Volume: 120, BarCount: 3},
			{StartTime: utc(2024, 1, 29), Open: "105", High: "112", Low: "77", Close: "110", Volume: 400, BarCount: 5, SimpleReturn: "0.1"},
			{StartTime: utc(2024, 2, 5), Open: "110", High: "114", Low: "107", Close: "112", Volume: 110, BarCount: 1, SimpleReturn: "0.0181818182"},
		}},
		{"days", &stockv1.ListBarsRequest{
			Symbol: "S000", Interval: stockv1.Interval_INTERVAL_DAY, EndTime: utc(2024, 1, 25),
		}, []*stockv1.Bar{
			{StartTime: utc(2024, 1, 22), Open: "100", High: "102", Low: "97", Close: "100", Volume: 10, BarCount: 1},
			{StartTime: utc(2024, 1, 23), Open: "101", High: "104", Low: "98", Close: "102", Volume: 20, BarCount: 1, SimpleReturn: "0.02"},
			{StartTime: utc(2024, 1, 24), Open: "102", High: "104", Low: "98", Close: "101", Volume: 30, BarCount: 1, SimpleReturn: "-0.0098039216"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := e.client.ListBars(t.Context(), tt.req)
			if err != nil {
				t.Fatalf("ListBars: %v", err)
			}
			if diff := cmp.Diff(&stockv1.ListBarsResponse{Bars: tt.want}, resp, protocmp.Transform()); diff != "" {
				t.Errorf("ListBars mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestListBars_paging: pages of any size, put together, equal one page of the whole range,
// returns included (a page's first bar has its return against the previous page's last).
func TestListBars_paging(t *testing.T) {
	t.Parallel()
	e := barsEnv(t)
	// Whole and from a Wednesday, where the first week starts before the range.
	for _, start := range []*timestamppb.Timestamp{nil, utc(2024, 1, 24)} {
		for _, interval := range []stockv1.Interval{stockv1.Interval_INTERVAL_DAY, stockv1.Interval_INTERVAL_WEEK, stockv1.Interval_INTERVAL_MONTH} {
			pagedBarsEqual(t, e, interval, start)
		}
	}
	if got := allBars(t, e.client, &stockv1.ListBarsRequest{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_DAY}); len(got) != 20 {
		t.Errorf("default page size: %d daily bars in all, want 20", len(got))
	}
}

// pagedBarsEqual checks that S000's bars from start in pages of 1 and 3 equal one page of 1000.
func pagedBarsEqual(t *testing.T, e env, interval stockv1.Interval, start *timestamppb.Timestamp) {
	t.Helper()
	whole, err := e.client.ListBars(t.Context(), &stockv1.ListBarsRequest{Symbol: "S000", Interval: interval, StartTime: start, PageSize: 1000})
	if err != nil {
		t.Fatalf("ListBars: %v", err)
	}
	if whole.GetNextPageToken() != "" {
		t.Errorf("%s: one page of 1000 has a next page token", interval)
	}
	for _, size := range []int32{1, 3} {
		got := allBars(t, e.client, &stockv1.ListBarsRequest{Symbol: "S000", Interval: interval, StartTime: start, PageSize: size})
		if diff := cmp.Diff(whole.GetBars(), got, protocmp.Transform()); diff != "" {
			t.Errorf("%s from %v in pages of %d mismatch (-whole +paged):\n%s", interval, start.AsTime(), size, diff)
		}
	}
}

// TestListBars_empty: a range without bars, or a stock without any, is an empty answer; an
// unknown symbol is NOT_FOUND.
func TestListBars_empty(t *testing.T) {
	t.Parallel()
	e := barsEnv(t)
	for _, req := range []*stockv1.ListBarsRequest{
		{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_WEEK, StartTime: utc(2024, 3, 1), EndTime: utc(2024, 4, 1)},
		{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_DAY, StartTime: utc(2024, 1, 27), EndTime: utc(2024, 1, 29)}, // a weekend
		{Symbol: "S001", Interval: stockv1.Interval_INTERVAL_MONTH},
	} {
		resp, err := e.client.ListBars(t.Context(), req)
		if err != nil {
			t.Fatalf("ListBars(%v): %v", req, err)
		}
		if len(resp.GetBars()) != 0 || resp.GetNextPageToken() != "" {
			t.Errorf("ListBars(%v) = %v, want no bars and no token", req, resp)
		}
	}
	_, err := e.client.ListBars(t.Context(), &stockv1.ListBarsRequest{Symbol: "ZZZZ", Interval: stockv1.Interval_INTERVAL_WEEK})
	apptest.WantCode(t, err, codes.NotFound)
	apptest.WantReason(t, err, apierr.StockNotFound, map[string]string{"symbol": "ZZZZ"})
}

// TestListBars_badInput: INVALID_ARGUMENT for a missing or unknown interval, an empty or
// inverted range, a bad symbol, page size or token, and a token of another interval.
func TestListBars_badInput(t *testing.T) {
	t.Parallel()
	e := barsEnv(t)
	first, err := e.client.ListBars(t.Context(), &stockv1.ListBarsRequest{Symbol: "S000", Interval: stockv1.Interval_INTERVAL_DAY, PageSize: 2})
	if err != nil {
		t.Fatalf("ListBars: %v", err)
	}
	week := stockv1.Interval_INTERVAL_WEEK
	for name, req := range map[string]*stockv1.ListBarsRequest{
		"no interval":             {Symbol: "S000"},
		"unknown interval":        {Symbol: "S000", Interval: 42},
		"end before start":        {Symbol: "S000", Interval: week, StartTime: utc(2024, 2, 1), EndTime: utc(2024, 1, 1)},
		"empty range":             {Symbol: "S000", Interval: week, StartTime: utc(2024, 2, 1), EndTime: utc(2024, 2, 1)},
		"invalid timestamp":       {Symbol: "S000", Interval: week, StartTime: &timestamppb.Timestamp{Nanos: -1}},
		"no symbol":               {Interval: week},
		"bad symbol":              {Symbol: "s 0; --", Interval: week},
		"negative page size":      {Symbol: "S000", Interval: week, PageSize: -1},
		"garbage token":           {Symbol: "S000", Interval: week, PageToken: "nope"},
		"token of other interval": {Symbol: "S000", Interval: week, PageSize: 2, PageToken: first.GetNextPageToken()},
		"token of other symbol":   {Symbol: "S001", Interval: stockv1.Interval_INTERVAL_DAY, PageSize: 2, PageToken: first.GetNextPageToken()},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := e.client.ListBars(t.Context(), req)
			apptest.WantCode(t, err, codes.InvalidArgument)
		})
	}
}
