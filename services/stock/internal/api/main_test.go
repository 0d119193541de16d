package api_test

import (
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's stock service: a real server on a fresh database.
type env struct {
	client stockv1.StockServiceClient // calls as an admin
	user   stockv1.StockServiceClient // calls with no token but the call's own (authtest.As)
	pool   *pgxpool.Pool              // the service's database, for arranging and checking rows
	addr   string                     // the server's gRPC address
	srv    *api.Server                // the handlers, for their state (HeldExports)
	reg    *prometheus.Registry       // the server's metrics
}

// newEnv starts the stock service's server as the binary does (apptest.StartServer: its
// interceptors, limits, retries and locks at their defaults) on a fresh database.
func newEnv(t testing.TB) env {
	t.Helper()
	return newEnvWith(t, nil)
}

// newEnvWith is newEnv with vars over the defaults (the binary's settings, STREAMS_PER_CALLER
// say): DATABASE_URL set to another env's database starts a second replica of the service on
// it (sharing its outbox).
func newEnvWith(t testing.TB, vars map[string]string) env {
	t.Helper()
	var own struct { // the binary's settings beside app.Config, at their defaults
		Limits  server.Limits
		Streams api.StreamLimits
		Exports api.ExportConfig
	}
	apptest.Load(t, vars, &own)
	opts := app.Options{Name: "stock", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes, Outbox: true, Limits: &own.Limits}
	var srv *api.Server
	svc, conn := apptest.StartServer(t, opts, vars, func(svc *app.Service) []string {
		srv = api.New(api.Deps{Base: svc.Base, Streams: own.Streams, Exports: own.Exports, Registry: svc.Server.Registry()})
		stockv1.RegisterStockServiceServer(svc.Server, srv)
		return []string{stockv1.StockService_ServiceDesc.ServiceName}
	})
	t.Cleanup(srv.Close) // first: the snapshots held for resumes hold pooled connections
	userConn := apptest.Dial(t, svc.Server.GRPCAddr())
	return env{client: stockv1.NewStockServiceClient(conn), user: stockv1.NewStockServiceClient(userConn), pool: svc.Pool,
		addr: svc.Server.GRPCAddr(), srv: srv, reg: svc.Server.Registry()}
}

// upsert stores stocks through the API.
func (e env) upsert(t testing.TB, stocks ...*stockv1.Stock) {
	t.Helper()
	if _, err := e.client.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: stocks}); err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
}

// ingest sends prices in batches of batch rows through IngestPrices.
func (e env) ingest(t testing.TB, prices []*stockv1.Price, batch int) (*stockv1.IngestPricesResponse, error) {
	t.Helper()
	stream, err := e.client.IngestPrices(t.Context())
	if err != nil {
		t.Fatalf("IngestPrices: %v", err)
	}
	for len(prices) > 0 {
		n := min(batch, len(prices))
		if err := stream.Send(&stockv1.IngestPricesRequest{Prices: prices[:n]}); err != nil {
			if err == io.EOF { // the server ended the stream early: its status follows
				break
			}
			t.Fatalf("Send: %v", err)
		}
		prices = prices[n:]
	}
	return stream.CloseAndRecv()
}

// ingestStream is ingest with, if appendOnly, the stream declared append-only for symbols
// on its first message.
func (e env) ingestStream(t testing.TB, prices []*stockv1.Price, batch int, appendOnly bool, symbols []string) (*stockv1.IngestPricesResponse, error) {
	t.Helper()
	stream, err := e.client.IngestPrices(t.Context())
	if err != nil {
		t.Fatalf("IngestPrices: %v", err)
	}
	for first := true; len(prices) > 0; first = false {
		n := min(batch, len(prices))
		req := &stockv1.IngestPricesRequest{Prices: prices[:n]}
		if first && appendOnly {
			req.AppendOnly = &stockv1.AppendOnly{Symbols: symbols}
		}
		if err := stream.Send(req); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatalf("Send: %v", err)
		}
		prices = prices[n:]
	}
	return stream.CloseAndRecv()
}
