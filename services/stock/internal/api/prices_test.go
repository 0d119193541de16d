package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

var day0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// dailyPrices returns n daily bars of symbol from day0, close = 100 + i + 0.25.
func dailyPrices(symbol string, n int) []*stockv1.Price {
	prices := make([]*stockv1.Price, n)
	for i := range prices {
		prices[i] = &stockv1.Price{
			Symbol: symbol, Time: timestamppb.New(day0.AddDate(0, 0, i)),
			Open: fmt.Sprintf("%d", 100+i), High: fmt.Sprintf("%d.5", 101+i),
			Low: fmt.Sprintf("%d", 99+i), Close: fmt.Sprintf("%d.25", 100+i), Volume: int64(1000 + i),
		}
	}
	return prices
}

func TestIngestPrices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2)

	prices := append(dailyPrices("S000", 300), dailyPrices("S001", 10)...) // 300 days cross into 2024's partition only
	resp, err := e.ingest(t, prices, 64)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	want := &stockv1.IngestPricesResponse{ReceivedCount: 310, InsertedCount: 310, Symbols: []string{"S000", "S001"}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("first ingest mismatch (-want +got):\n%s", diff)
	}

	// Resend the last 5 days of S001 with a new close, plus 2 new days, one of them twice:
	// the later copy of a repeated row wins.
	again := dailyPrices("S001", 12)[5:]
	for _, p := range again {
		p.Close = "150.125"
	}
	dup := dailyPrices("S001", 12)[11]
	dup.Close = "1.5"
	again = append(again, dup)
	resp, err = e.ingest(t, again, 3)
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	want = &stockv1.IngestPricesResponse{ReceivedCount: 8, InsertedCount: 2, UpdatedCount: 5, Symbols: []string{"S001"}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("second ingest mismatch (-want +got):\n%s", diff)
	}

	latest, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S001", "S009", "S000"}})
	if err != nil {
		t.Fatalf("GetLatestPrices: %v", err)
	}
	wantLatest := &stockv1.GetLatestPricesResponse{
		Prices:         []*stockv1.Price{withCurrency(dup, "USD"), withCurrency(dailyPrices("S000", 300)[299], "USD")},
		MissingSymbols: []string{"S009"},
	}
	if diff := cmp.Diff(wantLatest, latest, protocmp.Transform()); diff != "" {
		t.Errorf("GetLatestPrices mismatch (-want +got):\n%s", diff)
	}
}

func TestIngestPrices_rejectsAll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)

	bad := dailyPrices("S000", 50)
	bad[42].Close = "12.3456789"
	unknown := append(dailyPrices("S000", 5), dailyPrices("NOPE", 1)...)
	inverted := dailyPrices("S000", 3)
	inverted[1].Low, inverted[1].High = "200", "100.5"

	tests := []struct {
		name     string
		prices   []*stockv1.Price
		wantText string
	}{
		{"bad decimal", bad, "prices[42].close"},
		{"unknown stock", unknown, `unknown stock "NOPE"`},
		{"low above high", inverted, "prices[1].low"},
		{"missing time", []*stockv1.Price{{Symbol: "S000", Open: "1", High: "1", Low: "1", Close: "1"}}, "prices[0].time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.ingest(t, tt.prices, 10)
			apptest.WantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %s", err, tt.wantText)
			}
		})
	}
	t.Cleanup(func() {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock.prices`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d prices stored after rejected ingests, want 0", n)
		}
	})
}

// Concurrent ingests of one symbol serialize on its write lock; every row lands once.
func TestIngestPrices_concurrent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)
	all := dailyPrices("S000", 400)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		wg.Go(func() {
			_, err := e.ingest(t, all[i*100:min((i+1)*100+50, len(all))], 25) // overlapping slices
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent ingest: %v", err)
		}
	}
	var n int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM stock.prices WHERE symbol = 'S000'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 400 {
		t.Errorf("%d rows stored, want 400", n)
	}
}

func TestListPrices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2)
	prices := dailyPrices("S000", 40)
	if _, err := e.ingest(t, append(prices, dailyPrices("S001", 40)...), 1000); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	req := &stockv1.ListPricesRequest{Symbol: "S000", StartTime: prices[5].GetTime(), EndTime: prices[30].GetTime(), PageSize: 7}
	var got []*stockv1.Price
	for {
		resp, err := e.client.ListPrices(t.Context(), req)
		if err != nil {
			t.Fatalf("ListPrices: %v", err)
		}
		got = append(got, resp.GetPrices()...)
		if req.PageToken = resp.GetNextPageToken(); req.PageToken == "" {
			break
		}
	}
	if diff := cmp.Diff(prices[5:30], got, protocmp.Transform()); diff != "" {
		t.Errorf("ListPrices mismatch (-want +got):\n%s", diff)
	}

	first, err := e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "S000", PageSize: 2})
	if err != nil {
		t.Fatalf("ListPrices: %v", err)
	}
	_, err = e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "S001", PageSize: 2, PageToken: first.GetNextPageToken()})
	apptest.WantCode(t, err, codes.InvalidArgument) // a token continues only its own symbol and range
	_, err = e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "S000", StartTime: prices[9].GetTime(), EndTime: prices[3].GetTime()})
	apptest.WantCode(t, err, codes.InvalidArgument)
}

// TestStreamPrices exports a range read in chunks of whole batches by keyset: every row once,
// in order, in batches of the size asked for but the last, whether the range ends inside a
// chunk or on a chunk's boundary.
func TestStreamPrices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 1)
	// 20 000 hourly bars span 2024 and 2025: the stream crosses a partition boundary.
	prices := make([]*stockv1.Price, 20_000)
	for i := range prices {
		prices[i] = &stockv1.Price{Symbol: "S000", Time: timestamppb.New(day0.Add(time.Duration(i) * time.Hour)),
			Open: "1", High: "200", Low: "0.5", Close: fmt.Sprintf("%d.25", i%100+1), Volume: int64(i)}
	}
	if _, err := e.ingest(t, prices, 5000); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	tests := []struct {
		name       string
		batch      int32
		start, end int // the range, as indexes into prices
	}{
		{"default batch, chunks end on the range's end", 0, 0, 20_000},
		{"batches bigger than a chunk's minimum", 3000, 0, 20_000},
		{"small batches, chunks of 1001 rows", 7, 0, 20_000},
		{"largest batch", 10_000, 0, 20_000},
		{"range inside", 1000, 1234, 5678},
		{"one row", 0, 42, 43},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := &stockv1.StreamPricesRequest{Symbol: "S000", BatchSize: tt.batch}
			if tt.start > 0 {
				req.StartTime = prices[tt.start].GetTime()
			}
			if tt.end < len(prices) {
				req.EndTime = prices[tt.end].GetTime()
			}
			stream, err := e.client.StreamPrices(t.Context(), req)
			if err != nil {
				t.Fatalf("StreamPrices: %v", err)
			}
			size := int(tt.batch)
			if size == 0 {
				size = 1000 // the default
			}
			var got []*stockv1.Price
			var sizes []int
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				sizes = append(sizes, len(resp.GetPrices()))
				got = append(got, resp.GetPrices()...)
			}
			want := prices[tt.start:tt.end]
			var wantSizes []int
			for n := len(want); n > 0; n -= size {
				wantSizes = append(wantSizes, min(n, size))
			}
			if diff := cmp.Diff(wantSizes, sizes); diff != "" {
				t.Errorf("batch sizes mismatch (-want +got):\n%s", diff)
			}
			// proto.Equal first: a protocmp diff of 20 000 rows takes seconds.
			if !slices.EqualFunc(want, got, func(a, b *stockv1.Price) bool { return proto.Equal(a, b) }) {
				t.Errorf("StreamPrices mismatch (-want +got):\n%s", cmp.Diff(want, got, protocmp.Transform()))
			}
		})
	}
}

// TestPrices_unknownSymbol: ListPrices and StreamPrices of a symbol that names no stock are
// NOT_FOUND (the stream before any message); a known stock with no bars in the range is an
// empty answer.
func TestPrices_unknownSymbol(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2) // S000 with bars, S001 without
	if _, err := e.ingest(t, dailyPrices("S000", 5), 1000); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	before := timestamppb.New(day0.AddDate(-1, 0, 0))
	tests := []struct {
		name       string
		symbol     string
		start, end *timestamppb.Timestamp
		want       codes.Code
	}{
		{"unknown", "NOPE", nil, nil, codes.NotFound},
		{"unknown_in_empty_range", "NOPE", before, timestamppb.New(day0), codes.NotFound},
		{"known_without_bars", "S001", nil, nil, codes.OK},
		{"known_empty_range", "S000", before, timestamppb.New(day0), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			list, err := e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: tt.symbol, StartTime: tt.start, EndTime: tt.end})
			apptest.WantCode(t, err, tt.want)
			if err == nil && len(list.GetPrices()) != 0 {
				t.Errorf("ListPrices(%s) = %v, want no prices", tt.symbol, list.GetPrices())
			}

			stream, err := e.client.StreamPrices(t.Context(), &stockv1.StreamPricesRequest{Symbol: tt.symbol, StartTime: tt.start, EndTime: tt.end})
			if err != nil {
				t.Fatalf("StreamPrices(%s): %v", tt.symbol, err)
			}
			resp, err := stream.Recv()
			if tt.want == codes.OK {
				if !errors.Is(err, io.EOF) {
					t.Errorf("StreamPrices(%s) first Recv = %v, %v; want io.EOF", tt.symbol, resp, err)
				}
				return
			}
			apptest.WantCode(t, err, tt.want)
		})
	}
}
