package api_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// send streams msgs through IngestPrices.
func (e env) send(t *testing.T, msgs ...*stockv1.IngestPricesRequest) (*stockv1.IngestPricesResponse, error) {
	t.Helper()
	stream, err := e.client.IngestPrices(t.Context())
	if err != nil {
		t.Fatalf("IngestPrices: %v", err)
	}
	for _, m := range msgs {
		if err := stream.Send(m); err != nil {
			if err == io.EOF { // the server ended the stream early: its status follows
				break
			}
			t.Fatalf("Send: %v", err)
		}
	}
	return stream.CloseAndRecv()
}

func appendOnly(symbols ...string) *stockv1.AppendOnly {
	return &stockv1.AppendOnly{Symbols: symbols}
}

// TestIngestPrices_appendOnly: a stream that declares its symbols and sends only new bars is
// copied straight in, with the same result as the staged path.
func TestIngestPrices_appendOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2)
	s0, s1 := dailyPrices("S000", 6), dailyPrices("S001", 2)
	if _, err := e.ingest(t, s0[:3], 10); err != nil { // S000 has days 0-2 stored
		t.Fatal(err)
	}

	resp, err := e.send(t,
		&stockv1.IngestPricesRequest{AppendOnly: appendOnly("S001", "S000"), Prices: s0[3:5]},
		&stockv1.IngestPricesRequest{Prices: append(s1, s0[5])})
	if err != nil {
		t.Fatalf("append-only ingest: %v", err)
	}
	want := &stockv1.IngestPricesResponse{ReceivedCount: 5, InsertedCount: 5, Symbols: []string{"S000", "S001"}}
	if diff := cmp.Diff(want, resp, protocmp.Transform()); diff != "" {
		t.Errorf("response mismatch (-want +got):\n%s", diff)
	}
	latest, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S000", "S001"}})
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := &stockv1.GetLatestPricesResponse{Prices: []*stockv1.Price{withCurrency(s0[5], "USD"), withCurrency(s1[1], "USD")}}
	if diff := cmp.Diff(wantLatest, latest, protocmp.Transform()); diff != "" {
		t.Errorf("latest prices mismatch (-want +got):\n%s", diff)
	}
	list, err := e.client.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "S000"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s0, list.GetPrices(), protocmp.Transform()); diff != "" {
		t.Errorf("S000's stored bars mismatch (-want +got):\n%s", diff)
	}
}

// TestIngestPrices_appendOnlyRefused: a stream that breaks its promise writes nothing.
func TestIngestPrices_appendOnlyRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedStocks(t, e, 2)
	s0 := dailyPrices("S000", 6)
	if _, err := e.ingest(t, s0[:3], 10); err != nil {
		t.Fatal(err)
	}
	outOfOrder := []*stockv1.Price{s0[4], s0[3]}
	tests := []struct {
		name     string
		msgs     []*stockv1.IngestPricesRequest
		code     codes.Code
		wantText string
		reason   apierr.Reason
	}{
		{"stored bar", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly("S000"), Prices: s0[2:4]}},
			codes.FailedPrecondition, "prices[0]: 2024-01-03T00:00:00Z is not after S000's latest stored bar", apierr.AppendOutOfOrder},
		{"undeclared symbol", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly("S000"), Prices: dailyPrices("S001", 1)}},
			codes.InvalidArgument, `"S001" is not in append_only.symbols`, apierr.InvalidField},
		{"out of order", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly("S000"), Prices: outOfOrder}},
			codes.InvalidArgument, "prices[1].time", apierr.InvalidField},
		{"unknown stock", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly("S000", "NOPE"), Prices: s0[3:4]}},
			codes.InvalidArgument, `unknown stock "NOPE"`, apierr.UnknownStock},
		{"symbol twice", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly("S000", "S000"), Prices: s0[3:4]}},
			codes.InvalidArgument, `names "S000" twice`, apierr.InvalidField},
		{"no symbols", []*stockv1.IngestPricesRequest{{AppendOnly: appendOnly(), Prices: s0[3:4]}},
			codes.InvalidArgument, "append_only.symbols", apierr.InvalidField},
		{"on a later message", []*stockv1.IngestPricesRequest{{Prices: s0[3:4]}, {AppendOnly: appendOnly("S000"), Prices: s0[4:5]}},
			codes.InvalidArgument, "first message only", apierr.InvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := e.send(t, tt.msgs...)
			apptest.WantCode(t, err, tt.code)
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not mention %q", err, tt.wantText)
			}
			apptest.WantReason(t, err, tt.reason, nil)
		})
	}
	t.Cleanup(func() {
		var n int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM stock.prices`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 3 {
			t.Errorf("%d prices stored after refused ingests, want the 3 stored before", n)
		}
	})
}
