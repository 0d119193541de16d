package main

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is what every gateway test gets: the service binaries, a fleet of the three services
// with seed data, and a gateway in front of it. Tests that stop a service start their own.
type env struct {
	binDir string
	fleet  *fleet
	gw     *testGateway
	// alone is held shared by every subtest and exclusively by those that need the fleet
	// to themselves: the bad-input pass compares whole tables before and after its
	// variants, which the other subtests' writes would change.
	alone sync.RWMutex
}

// exclusive names the subtests that run with the fleet to themselves.
var exclusive = map[string]bool{"bad_input": true}

// TestGateway starts the real services once (binaries built from the workspace, each on its
// own database) and runs every gateway test against them in parallel: a fleet start costs
// seconds, a test milliseconds.
func TestGateway(t *testing.T) {
	t.Parallel()
	e := &env{binDir: buildServices(t)}
	e.fleet = startFleet(t, e.binDir)
	seed(t, e.fleet)
	e.gw = startGateway(t, e.fleet, nil)

	tests := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"get_stock", testGetStock},
		{"list_stocks_paged", testListStocksPaged},
		{"stream_prices", testStreamPrices},
		{"stream_errors", testStreamErrors},
		{"export_prices", testExportPrices},
		{"list_bars", testListBars},
		{"recommendation_history", testRecommendationHistory},
		{"unknown_query_params", testUnknownQueryParams},
		{"next_question", testNextQuestion},
		{"patch_question", testPatchQuestion},
		{"idempotent_creates", testIdempotentCreates},
		{"unset_fields", testUnsetFields},
		{"bad_requests", testBadRequests},
		{"body_too_large", testBodyTooLarge},
		{"validation_details", testValidationDetails},
		{"bad_input", testBadInput},
		{"bad_input_grpc", testBadInputGRPC},
		{"trade_needs_token", testTradeNeedsToken},
		{"other_users_data", testOtherUsersData},
		{"forwarded_headers", testForwardedHeaders},
		{"request_id", testRequestID},
		{"cors", testCORS},
		{"consistency_token", testConsistencyToken},
		{"read_your_writes", testReadYourWrites},
		{"health", testHealth},
		{"health_names_stopped_service", testHealthStoppedService},
		{"database_status", testDatabaseStatus},
		{"database_status_needs_role", testDatabaseStatusNeedsRole},
		{"database_status_services_check", testDatabaseStatusServicesCheck},
		{"gateway_recent", testGatewayRecent},
		{"openapi", testOpenAPI},
		{"status_page", testStatusPage},
		{"metrics", testMetrics},
		{"profiles", testProfiles},
		{"drain_ends_streams", testDrainEndsStreams},
		{"tls", testTLS},
		{"browser_status_page", testBrowserStatusPage},
		{"browser_live_view", testBrowserLiveView},
		{"watch_resume", testWatchResume},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if exclusive[tt.name] {
				e.alone.Lock()
				defer e.alone.Unlock()
			} else {
				e.alone.RLock()
				defer e.alone.RUnlock()
			}
			tt.run(t, e)
		})
	}
}

// Seed data: techStocks Technology stocks with distinct market caps (for paged, sorted
// lists), a few of other sectors, and priceDays daily bars of AAPL (for the NDJSON export).
const (
	techStocks = 15
	priceDays  = 3000
)

// techSymbols are the Technology stocks by market cap, largest first.
var techSymbols = func() []string {
	s := []string{"AAPL", "MSFT", "NVDA"}
	for i := len(s); i < techStocks; i++ {
		s = append(s, fmt.Sprintf("TECH%02d", i))
	}
	return s
}()

// seed loads stocks, prices and interview questions through the services' gRPC APIs.
func seed(t *testing.T, f *fleet) {
	t.Helper()
	admin := authtest.Admin(t)
	conn := func(addr string) *grpc.ClientConn {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), admin)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	stocks := []*stockv1.Stock{
		{Symbol: "JPM", Name: "JPMorgan Chase & Co.", Sector: "Financials", MarketCap: 600e9, Exchange: "NYSE", Currency: "USD"},
		{Symbol: "XOM", Name: "Exxon Mobil Corporation", Sector: "Energy", MarketCap: 450e9, Exchange: "NYSE", Currency: "USD"},
	}
	for i, sym := range techSymbols {
		name := sym + " Corp."
		if sym == "AAPL" {
			name = "Apple Inc."
		}
		stocks = append(stocks, &stockv1.Stock{Symbol: sym, Name: name, Sector: "Technology",
			Industry: "Consumer Electronics", Exchange: "NASDAQ", Currency: "USD", MarketCap: int64(3000-100*i) * 1e9})
	}
	sc := stockv1.NewStockServiceClient(conn(f.stock.Addr))
	if _, err := sc.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatalf("seed stocks: %v", err)
	}
	start := time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)
	var bars []*stockv1.Price
	for i := range priceDays {
		c := fmt.Sprintf("%d.25", 100+i%50)
		bars = append(bars, &stockv1.Price{Symbol: "AAPL", Time: timestamppb.New(start.AddDate(0, 0, i)),
			Open: c, High: c, Low: c, Close: c, Volume: int64(1000 + i)})
	}
	for _, sym := range []string{"MSFT", "JPM"} {
		bars = append(bars, &stockv1.Price{Symbol: sym, Time: timestamppb.New(start), Open: "200.5", High: "200.5",
			Low: "200.5", Close: "200.5", Volume: 1})
	}
	stream, err := sc.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("seed prices: %v", err)
	}

	var questions []*interviewv1.Question
	for i := range 4 {
		questions = append(questions, &interviewv1.Question{
			Key: fmt.Sprintf("sql-joins-%02d", i), Text: fmt.Sprintf("Question %d: what does an inner join return?", i),
			Category: "SQL", Difficulty: 1, Tags: []string{"joins"},
			Rubric: &interviewv1.Rubric{Points: []*interviewv1.RubricPoint{
				{Description: "Only matching rows", Weight: 1, Keywords: []string{"matching rows"}},
			}},
		})
	}
	qc := interviewv1.NewQuestionBankServiceClient(conn(f.interview.Addr))
	if _, err := qc.BulkImportQuestions(t.Context(), &interviewv1.BulkImportQuestionsRequest{Questions: questions}); err != nil {
		t.Fatalf("seed questions: %v", err)
	}
}
