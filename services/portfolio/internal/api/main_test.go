package api_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

// stockBin is the stock service's binary, built once per test run: trades are priced by the
// real service over gRPC, as in production.
var stockBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "pgfleet-portfolio-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stockBin = filepath.Join(dir, "stock")
	if err := apptest.Build(dir, "github.com/pgfleet/pgfleet/services/stock"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// prices are the latest closes the test stock service serves, at priceTime; OLD's is a month
// older, past maxPriceAge. currencies are the stocks' other than USD.
var (
	prices     = map[string]string{"AAPL": "100", "MSFT": "200.5", "XOM": "50.25", "SAP": "120", "OLD": "10"}
	currencies = map[string]string{"SAP": "EUR"}
	priceTime  = timestamppb.New(time.Now().UTC().Truncate(time.Hour))
	oldTime    = timestamppb.New(priceTime.AsTime().AddDate(0, -1, 0))
)

// maxPriceAge is the portfolio services' MAX_PRICE_AGE in these tests.
const maxPriceAge = 24 * time.Hour

// currencyOf is the currency a test stock is priced in.
func currencyOf(symbol string) string {
	if c, ok := currencies[symbol]; ok {
		return c
	}
	return "USD"
}

// newStockService starts the stock service on a database of its own, with the stocks of
// prices.
func newStockService(t testing.TB) *apptest.Process {
	t.Helper()
	return newStockServiceOn(t, pgtest.NewDBURL(t))
}

// newStockServiceOn is newStockService on the empty database at url.
func newStockServiceOn(t testing.TB, url string) *apptest.Process {
	t.Helper()
	s := apptest.StartProcess(t, stockBin, "DATABASE_URL="+url)
	c := stockv1.NewStockServiceClient(apptest.Dial(t, s.Addr, authtest.Admin(t)))
	var stocks []*stockv1.Stock
	var bars []*stockv1.Price
	for sym, close := range prices {
		stocks = append(stocks, &stockv1.Stock{Symbol: sym, Name: sym + " Inc.", Currency: currencyOf(sym)})
		at := priceTime
		if sym == "OLD" {
			at = oldTime
		}
		bars = append(bars, &stockv1.Price{Symbol: sym, Time: at, Open: close, High: close, Low: close, Close: close, Volume: 1})
	}
	if _, err := c.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatalf("seed stocks: %v", err)
	}
	stream, err := c.IngestPrices(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatalf("seed prices: %v", err)
	}
	return s
}

// env is one portfolio service instance under test.
type env struct {
	client portfoliov1.PortfolioServiceClient // calls as an admin
	user   portfoliov1.PortfolioServiceClient // calls with no token but the call's own (authtest.As)
	pool   *pgxpool.Pool                      // the service's pool, for arranging and checking rows
	retry  *retry.Retrier                     // the service's, for its conflict counts
}

// serve starts a portfolio service's server as the binary does (apptest.StartServer: its
// interceptors, retries and locks at their defaults), pricing with the stock service at
// stockAddr; build makes the API (api.New, or a weakened one from export_test.go). settings
// are what a test needs otherwise: DATABASE_URL for instances that share a database (else
// each gets a fresh one), a setting the test is about.
func serve(t testing.TB, stockAddr string, build func(api.Deps) *api.Server, settings map[string]string) env {
	t.Helper()
	// Waits are generous (the binary's: STOCK_TIMEOUT 2s, LOCK_WAIT_TIMEOUT 5s): on a loaded
	// machine a price or a lock can take seconds, and what these tests prove is correctness
	// under concurrency, not latency. Retries stay the binary's: an ABORTED in a test is one a
	// user would see.
	vars := map[string]string{"STOCK_ADDR": stockAddr, "STOCK_TIMEOUT": "10s", "LOCK_WAIT_TIMEOUT": "30s"}
	maps.Copy(vars, settings)
	var own struct { // the binary's settings beside app.Config
		Stock client.Config `env:", prefix=STOCK_"`
	}
	apptest.Load(t, vars, &own)
	opts := app.Options{Name: "portfolio", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}
	svc, conn := apptest.StartServer(t, opts, vars, func(svc *app.Service) []string {
		stock, err := svc.Dial("stock", own.Stock)
		if err != nil {
			t.Fatalf("dial stock service: %v", err)
		}
		t.Cleanup(func() { stock.Close() }) // after the server's drain
		portfoliov1.RegisterPortfolioServiceServer(svc.Server, build(api.Deps{Base: svc.Base,
			Stock: stockv1.NewStockServiceClient(stock), MaxPriceAge: maxPriceAge}))
		return []string{portfoliov1.PortfolioService_ServiceDesc.ServiceName}
	})
	userConn := apptest.Dial(t, svc.Server.GRPCAddr())
	return env{client: portfoliov1.NewPortfolioServiceClient(conn), user: portfoliov1.NewPortfolioServiceClient(userConn),
		pool: svc.Pool, retry: svc.Retry}
}

// newEnv starts a stock service and one portfolio service on a fresh database.
func newEnv(t testing.TB) env {
	t.Helper()
	return serve(t, newStockService(t).Addr, api.New, nil)
}

// newPortfolio creates a user and a USD portfolio holding cash.
func (e env) newPortfolio(t testing.TB, email, cash string) int64 {
	t.Helper()
	return e.newPortfolioIn(t, email, "USD", cash)
}

// newPortfolioIn creates a user and a portfolio in currency holding cash.
func (e env) newPortfolioIn(t testing.TB, email, currency, cash string) int64 {
	t.Helper()
	u, err := e.client.CreateUser(t.Context(), &portfoliov1.CreateUserRequest{Email: email, DisplayName: email})
	if err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	p, err := e.client.CreatePortfolio(t.Context(), &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "main",
		Currency: currency})
	if err != nil {
		t.Fatalf("CreatePortfolio: %v", err)
	}
	id := p.GetPortfolio().GetId()
	if cash != "0" {
		if _, err := e.client.Deposit(t.Context(), &portfoliov1.DepositRequest{PortfolioId: id, Amount: cash, RequestId: "seed-" + email}); err != nil {
			t.Fatalf("Deposit: %v", err)
		}
	}
	return id
}
