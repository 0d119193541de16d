package api_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

// event is an event as the tests compare it: its type's short name, its symbol, its payload.
type event struct {
	Type, Symbol string
	Payload      proto.Message
}

// watchEventsUntil reads WatchStockEvents (req) until stop holds for an event, and returns the
// events up to that one.
func watchEventsUntil(t testing.TB, client stockv1.StockServiceClient, req *stockv1.WatchStockEventsRequest, stop func(*opsv1.Event) bool) []*opsv1.Event {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	stream, err := client.WatchStockEvents(ctx, req)
	if err != nil {
		t.Fatalf("WatchStockEvents: %v", err)
	}
	var out []*opsv1.Event
	for {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("WatchStockEvents: Recv after %d events: %v", len(out), err)
		}
		for _, ev := range resp.GetEvents() {
			out = append(out, ev)
			if stop(ev) {
				return out
			}
		}
	}
}

// position returns the outbox position an event's cursor names.
func position(t testing.TB, cursor string) int64 {
	t.Helper()
	pos, err := outbox.ParseCursor("stock", cursor)
	if err != nil {
		t.Fatalf("ParseCursor(%q): %v", cursor, err)
	}
	return pos
}

// decode returns ev as an event, failing t on a malformed one.
func decode(t testing.TB, ev *opsv1.Event) event {
	t.Helper()
	m, err := ev.GetPayload().UnmarshalNew()
	if err != nil {
		t.Fatalf("event %s: payload: %v", ev.GetId(), err)
	}
	if got := string(m.ProtoReflect().Descriptor().FullName()); got != ev.GetType() || ev.GetAggregateType() != "stock" {
		t.Errorf("event type %q, aggregate type %q, payload %s; want the payload's type and aggregate type stock", ev.GetType(), ev.GetAggregateType(), got)
	}
	name := ev.GetType()[strings.LastIndexByte(ev.GetType(), '.')+1:]
	return event{Type: name, Symbol: ev.GetAggregateId(), Payload: m}
}

// TestEvents_atomicity: writes that fail (a bad row in the middle of an ingest on either
// path, an unknown stock, a recommendation of an unknown stock) leave no event; each
// committed write leaves exactly its events (one LatestPriceChanged per symbol whose latest
// price changed, none for an ingest that changes no latest price; one for a change of a
// stock's currency), in commit order, at gap-free positions, each LatestPriceChanged carrying
// what GetLatestPrices answers.
func TestEvents_atomicity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := t.Context()
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "USD"}, &stockv1.Stock{Symbol: "BBB", Name: "B", Currency: "EUR"})
	a, b := dailyPrices("AAA", 3), dailyPrices("BBB", 2)
	bad := proto.Clone(a[1]).(*stockv1.Price)
	bad.Low, bad.High = "10", "9" // low above high: refused mid-stream

	fails := []struct {
		name string
		call func() error
	}{
		{"merge with a bad row", func() error {
			_, err := e.ingest(t, []*stockv1.Price{a[0], b[0], bad, a[2]}, 1)
			return err
		}},
		{"unknown stock", func() error {
			_, err := e.ingest(t, append(slices.Clone(a), &stockv1.Price{Symbol: "NOPE", Time: a[0].GetTime(), Open: "1", High: "1", Low: "1", Close: "1"}), 2)
			return err
		}},
		{"append_only with a bad row", func() error {
			_, err := e.ingestStream(t, []*stockv1.Price{a[0], bad, a[2]}, 1, true, []string{"AAA"})
			return err
		}},
		{"recommendation of an unknown stock", func() error {
			_, err := e.client.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{
				{Symbol: "AAA", Source: "desk", Action: stockv1.Action_ACTION_BUY}, {Symbol: "NOPE", Source: "desk", Action: stockv1.Action_ACTION_SELL}}})
			return err
		}},
	}
	for _, f := range fails {
		if err := f.call(); err == nil {
			t.Fatalf("%s: succeeded, want an error", f.name)
		}
	}

	latest := func(sym string) *stockv1.Price {
		t.Helper()
		resp, err := e.client.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: []string{sym}})
		if err != nil || len(resp.GetPrices()) != 1 {
			t.Fatalf("GetLatestPrices(%s) = %v, %v", sym, resp, err)
		}
		return resp.GetPrices()[0]
	}
	var want []event
	expect := func(typ, sym string, m proto.Message) { want = append(want, event{typ, sym, m}) }

	if _, err := e.ingest(t, append(slices.Clone(a[:2]), b...), 10); err != nil {
		t.Fatal(err)
	}
	expect("LatestPriceChanged", "AAA", &stockv1.LatestPriceChanged{Symbol: "AAA", Price: latest("AAA")})
	expect("LatestPriceChanged", "BBB", &stockv1.LatestPriceChanged{Symbol: "BBB", Price: latest("BBB")})
	if _, err := e.ingest(t, append(slices.Clone(a[:2]), b...), 10); err != nil { // the same again: no change
		t.Fatal(err)
	}
	if _, err := e.ingest(t, []*stockv1.Price{a[0]}, 10); err != nil { // an older bar: no change of the latest
		t.Fatal(err)
	}
	replaced := proto.Clone(a[1]).(*stockv1.Price)
	replaced.Close = "150"
	if _, err := e.ingest(t, []*stockv1.Price{replaced}, 10); err != nil {
		t.Fatal(err)
	}
	expect("LatestPriceChanged", "AAA", &stockv1.LatestPriceChanged{Symbol: "AAA", Price: latest("AAA")})
	if _, err := e.ingestStream(t, a[2:], 10, true, []string{"AAA"}); err != nil {
		t.Fatal(err)
	}
	expect("LatestPriceChanged", "AAA", &stockv1.LatestPriceChanged{Symbol: "AAA", Price: latest("AAA")})

	if _, err := e.client.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{
		{Symbol: "AAA", Source: "desk", Action: stockv1.Action_ACTION_BUY, TargetPrice: "200.5", Confidence: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	recs, err := e.client.ListRecommendations(ctx, &stockv1.ListRecommendationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	expect("RecommendationChanged", "AAA", &stockv1.RecommendationChanged{Recommendation: recs.GetRecommendations()[0]})

	// A change of currency changes the currency of the latest price, as GetLatestPrices shows it.
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A", Currency: "CHF"})
	stockA, err := e.client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAA"})
	if err != nil {
		t.Fatal(err)
	}
	expect("StockChanged", "AAA", &stockv1.StockChanged{Stock: stockA.GetStock()})
	expect("LatestPriceChanged", "AAA", &stockv1.LatestPriceChanged{Symbol: "AAA", Price: latest("AAA")})
	if got := latest("AAA").GetCurrency(); got != "CHF" {
		t.Fatalf("GetLatestPrices(AAA).currency = %q, want CHF", got)
	}
	e.upsert(t, &stockv1.Stock{Symbol: "AAA", Name: "A renamed", Currency: "CHF"}) // same currency: the stock only
	stockA, err = e.client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAA"})
	if err != nil {
		t.Fatal(err)
	}
	expect("StockChanged", "AAA", &stockv1.StockChanged{Stock: stockA.GetStock()})

	if _, err := e.client.DeleteStock(ctx, &stockv1.DeleteStockRequest{Symbol: "BBB"}); err != nil {
		t.Fatal(err)
	}
	final := latest("BBB")
	expect("StockDeleted", "BBB", &stockv1.StockDeleted{Symbol: "BBB", DelistTime: final.GetDelistTime()})
	expect("LatestPriceChanged", "BBB", &stockv1.LatestPriceChanged{Symbol: "BBB", Price: final})

	relisted := &stockv1.Stock{Symbol: "BBB", Name: "B again", Currency: "USD"}
	e.upsert(t, relisted)
	got, err := e.client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "BBB"})
	if err != nil {
		t.Fatal(err)
	}
	expect("StockChanged", "BBB", &stockv1.StockChanged{Stock: got.GetStock()})
	expect("LatestPriceChanged", "BBB", &stockv1.LatestPriceChanged{Symbol: "BBB"})
	e.upsert(t, relisted) // unchanged: no event

	e.upsert(t, &stockv1.Stock{Symbol: "END", Name: "The end"})
	end, err := e.client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "END"})
	if err != nil {
		t.Fatal(err)
	}
	expect("StockChanged", "END", &stockv1.StockChanged{Stock: end.GetStock()})

	evs := watchEventsUntil(t, e.client, &stockv1.WatchStockEventsRequest{FromOldest: true},
		func(ev *opsv1.Event) bool { return ev.GetAggregateId() == "END" })
	var got2 []event
	for i, ev := range evs {
		if i >= 2 { // the first two: the StockChanged of the first UpsertStocks
			got2 = append(got2, decode(t, ev))
		}
		if pos := position(t, ev.GetCursor()); pos != int64(i+1) {
			t.Errorf("event %d (%s %s) at position %d, want %d: positions start at 1 and have no gap", i, ev.GetType(), ev.GetAggregateId(), pos, i+1)
		}
	}
	if diff := cmp.Diff(want, got2, protocmp.Transform()); diff != "" {
		t.Errorf("events after the first UpsertStocks: mismatch (-want +got):\n%s", diff)
	}
	if len(evs) > 0 {
		first := decode(t, evs[0])
		if first.Type != "StockChanged" || first.Symbol != "AAA" {
			t.Errorf("first event = %s %s, want StockChanged AAA", first.Type, first.Symbol)
		}
	}
}

// TestWatchLatestPrices_conflation: a subscriber that does not read while 10k bars of 20
// symbols are ingested (500 ingests, each moving every symbol's latest price) then reads: past
// the messages gRPC's flow control held for it (128 KiB), it gets the final values within a
// few messages, never a backlog of the 500 changes of each symbol.
func TestWatchLatestPrices_conflation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const symbols, rounds = 20, 500
	stocks := seedStocks(t, e, symbols)
	watched := make([]string, symbols)
	for i, st := range stocks {
		watched[i] = st.GetSymbol()
	}
	// A window that stays 64 KiB (BDP estimation would grow it while the client does not read).
	conn := apptest.Dial(t, e.addr, authtest.Admin(t), grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	stream, err := stockv1.NewStockServiceClient(conn).WatchLatestPrices(t.Context(), &stockv1.WatchLatestPricesRequest{Symbols: watched})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil || len(first.GetPrices()) != 0 {
		t.Fatalf("first message = %v, %v; want no prices", first, err)
	}
	// Not reading: the stream's flow-control windows fill, then the server's Send blocks.
	for r := range rounds {
		prices := make([]*stockv1.Price, symbols)
		for i, sym := range watched {
			c := fmt.Sprintf("%d.%02d", 100+r, i)
			prices[i] = &stockv1.Price{Symbol: sym, Time: timestamppb.New(day0.Add(timeStep(r))), Open: c, High: c, Low: c, Close: c, Volume: int64(r)}
		}
		if _, err := e.ingest(t, prices, symbols); err != nil {
			t.Fatal(err)
		}
	}
	final, err := e.client.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: watched})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]*stockv1.Price{}
	for _, p := range final.GetPrices() {
		want[p.GetSymbol()] = p
	}
	// What flow control can hold for a client that does not read: the client's stream
	// window (pinned to 64 KiB above) and the server's write quota per stream (64 KiB, fixed
	// in grpc-go), each counting a message's bytes and its 5-byte gRPC prefix.
	const held = 2 * 64 << 10
	have := map[string]*stockv1.Price{}
	var messages, bytes, after int
	for !cmp.Equal(want, have, protocmp.Transform()) {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv after %d messages: %v", messages, err)
		}
		if bytes >= held {
			after++ // sent once the client read again
		}
		messages++
		bytes += proto.Size(resp) + 5
		for _, p := range resp.GetPrices() {
			if old := have[p.GetSymbol()]; old != nil && p.GetTime().AsTime().Before(old.GetTime().AsTime()) {
				t.Errorf("%s: sent bar %v after %v", p.GetSymbol(), p.GetTime().AsTime(), old.GetTime().AsTime())
			}
			have[p.GetSymbol()] = p
		}
	}
	t.Logf("after %d ingests of %d symbols, the subscriber read %d messages (%d bytes) to the final prices, %d past what flow control held",
		rounds, symbols, messages, bytes, after)
	// Without conflation, the 500 changes of each symbol would queue up behind the held
	// messages; conflated, the final values come within a few messages once they are read.
	if after >= 10 {
		t.Errorf("read %d messages, %d of them past the %d bytes flow control holds; want fewer than 10 past them", messages, after, held)
	}
}

// timeStep is the r-th bar's offset from day0.
func timeStep(r int) time.Duration { return time.Duration(r) * time.Minute }
