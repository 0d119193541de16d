package api_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/breaker"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/pkg/server"
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
	s := apptest.StartProcess(t, stockBin, "DATABASE_URL="+pgtest.NewDBURL(t))
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
	pool   *pgxpool.Pool
	retry  *retry.Retrier
}

// serve starts a portfolio API on pool, pricing with the stock service at stockAddr; build
// chooses the server (api.New, or a weakened one in tests that prove the checker).
func serve(t testing.TB, pool *pgxpool.Pool, stockAddr string, build func(api.Deps) portfoliov1.PortfolioServiceServer) env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	srv, err := server.New(server.Options{Name: "portfolio", GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Drain: time.Second, DefaultTimeout: 30 * time.Second, Validate: api.Validate, Log: log,
		Authorize: authtest.Authorizer(t, api.Policy).Authorize, MissingReason: apptest.RequireReasons(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Timeouts are generous (production: STOCK_TIMEOUT 2s, LOCK_WAIT_TIMEOUT 5s): on a loaded
	// machine a price or a lock can take seconds, and what these tests prove is correctness
	// under concurrency, not latency.
	stockConn, err := client.Dial("stock", client.Config{Addr: stockAddr, Timeout: 10 * time.Second, MaxAttempts: 3,
		Breaker: breaker.Config{MinRequests: new(uint32(5)), FailureRatio: 0.5, OpenTimeout: new(500 * time.Millisecond), Window: 10 * time.Second}}, nil,
		grpc.WithPerRPCCredentials(serviceCreds(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Retries as configured in production (DB_RETRY_* defaults): a client-visible ABORTED in a
	// test is one a user would see.
	var retryCfg retry.Config
	if err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &retryCfg, Lookuper: envconfig.MapLookuper(nil)}); err != nil {
		t.Fatal(err)
	}
	r := retry.New(retryCfg, nil)
	portfoliov1.RegisterPortfolioServiceServer(srv, build(api.Deps{
		Pool: pool, Retry: r, Locks: lock.New(lock.Config{Wait: 30 * time.Second}),
		Stock: stockv1.NewStockServiceClient(stockConn), TokenKey: "test", Log: log, MaxPriceAge: maxPriceAge,
	}))
	t.Cleanup(func() {
		stockConn.Close()
	})
	apptest.Serve(t, srv)
	conn, userConn := apptest.Dial(t, srv.GRPCAddr(), authtest.Admin(t)), apptest.Dial(t, srv.GRPCAddr())
	return env{client: portfoliov1.NewPortfolioServiceClient(conn), user: portfoliov1.NewPortfolioServiceClient(userConn), pool: pool, retry: r}
}

// newEnv starts a stock service and one portfolio service on a fresh database.
func newEnv(t testing.TB) env {
	t.Helper()
	stock := newStockService(t)
	return serve(t, pgtest.NewDB(t, migrations.Set), stock.Addr, api.NewFrom)
}

// wantCode fails the test unless err carries code.
func wantCode(t testing.TB, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("error = %v, want code %v", err, code)
	}
}

// wantReason fails the test unless err's ErrorInfo has reason and, of its metadata, at
// least md.
func wantReason(t testing.TB, err error, reason apierr.Reason, md map[string]string) {
	t.Helper()
	info := apierr.Info(status.Convert(err))
	if got := apierr.Reason(info.GetReason()); got != reason {
		t.Fatalf("error = %v with reason %q, want %q", err, got, reason)
	}
	for k, v := range md {
		if got := info.GetMetadata()[k]; got != v {
			t.Errorf("error = %v: metadata %q = %q, want %q", err, k, got, v)
		}
	}
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

// serviceCreds is the portfolio service's token for its calls to the stock service.
func serviceCreds(t testing.TB) credentials.PerRPCCredentials {
	t.Helper()
	creds, err := auth.ServiceCredentials(authtest.Config, "portfolio")
	if err != nil {
		t.Fatal(err)
	}
	return creds
}
