package api_test

import (
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestGetLatestPrices_asOf: with as_of, each symbol's last bar at or before it, in request
// order with its currency; a symbol whose first bar is later, or that has none, is missing; a
// delisted stock answers its final price only from that bar's time on; a future as_of
// answers the latest prices.
func TestGetLatestPrices_asOf(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	stocks := seedStocks(t, e, 4) // S003 gets no bars
	stocks[1].Currency = "EUR"
	e.upsert(t, stocks[1])
	s0, s1, s2 := dailyPrices("S000", 10), dailyPrices("S001", 10), dailyPrices("S002", 10)
	if _, err := e.ingest(t, append(append(s0, s1[5:]...), s2...), 100); err != nil { // S001 from day 5 on
		t.Fatalf("ingest: %v", err)
	}
	if _, err := e.client.DeleteStock(t.Context(), &stockv1.DeleteStockRequest{Symbol: "S002"}); err != nil {
		t.Fatalf("DeleteStock: %v", err)
	}
	at := func(i int) *timestamppb.Timestamp { return timestamppb.New(day0.AddDate(0, 0, i)) }
	symbols := []string{"S001", "S000", "S002", "S003"}
	tests := []struct {
		name    string
		asOf    *timestamppb.Timestamp
		prices  []*stockv1.Price
		missing []string
	}{
		{"before any bar", timestamppb.New(day0.Add(-time.Second)), nil, symbols},
		{"at the first bar", at(0), []*stockv1.Price{withCurrency(s0[0], "USD")}, []string{"S001", "S002", "S003"}},
		{"between bars", timestamppb.New(day0.AddDate(0, 0, 6).Add(12 * time.Hour)),
			[]*stockv1.Price{withCurrency(s1[6], "EUR"), withCurrency(s0[6], "USD")}, []string{"S002", "S003"}},
		{"at the delisted stock's final bar", at(9),
			[]*stockv1.Price{withCurrency(s1[9], "EUR"), withCurrency(s0[9], "USD"), withCurrency(s2[9], "USD")}, []string{"S003"}},
		{"far future", timestamppb.New(time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)),
			[]*stockv1.Price{withCurrency(s1[9], "EUR"), withCurrency(s0[9], "USD"), withCurrency(s2[9], "USD")}, []string{"S003"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: symbols, AsOf: tt.asOf})
			if err != nil {
				t.Fatalf("GetLatestPrices: %v", err)
			}
			for _, p := range got.GetPrices() {
				if p.GetSymbol() == "S002" && p.GetDelistTime() == nil {
					t.Errorf("delisted S002's final price without delist_time: %v", p)
				}
			}
			want := &stockv1.GetLatestPricesResponse{Prices: tt.prices, MissingSymbols: tt.missing}
			if diff := gocmp.Diff(want, got, protocmp.Transform(), protocmp.IgnoreFields(&stockv1.Price{}, "delist_time")); diff != "" {
				t.Errorf("GetLatestPrices(as_of %v) mismatch (-want +got):\n%s", tt.asOf.AsTime(), diff)
			}
		})
	}
	// The delisted stock's earlier bars went with it: before its final bar it has no price.
	got, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S002"}, AsOf: at(8)})
	if err != nil || len(got.GetPrices()) != 0 {
		t.Errorf("GetLatestPrices(S002, before its final bar) = %v, %v; want it missing", got, err)
	}
	_, err = e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"S000"},
		AsOf: &timestamppb.Timestamp{Seconds: -62135596801}}) // before year 1
	apptest.WantCode(t, err, codes.InvalidArgument)
}
