package api_test

import (
	"context"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/client"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/services/portfolio/internal/api"
	"github.com/pgfleet/pgfleet/services/portfolio/migrations"
)

// TestRouting proves the portfolio service's read routing by data on a primary and a hot
// standby (apptest.Routing): its subtests share the pair and run in order.
func TestRouting(t *testing.T) {
	c := pgtest.NewReplicatedCluster(t)
	stockAddr := newStockService(t).Addr
	rep := startReplicated(t, c, stockAddr, nil)
	cl := portfoliov1.NewPortfolioServiceClient(rep.Conn)
	ctx := t.Context()
	u, err := cl.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "first@example.com", DisplayName: "First"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := cl.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: u.GetUser().GetId(), Name: "main", Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	ids := &seeded{user: u.GetUser().GetId(), portfolio: p.GetPortfolio().GetId()}
	if _, err := cl.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: ids.portfolio, Amount: "1000", RequestId: "seed"}); err != nil {
		t.Fatal(err)
	}

	routing := apptest.Routing{
		Routes: api.Routes,
		Files:  []protoreflect.FileDescriptor{portfoliov1.File_pgfleet_portfolio_v1_portfolio_proto},
		Reads:  ids.reads(cl, rep.Svc.Pool),
		Writes: []apptest.WriteCall{
			{Method: portfoliov1.PortfolioService_CreateUser_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				resp, err := cl.CreateUser(ctx, &portfoliov1.CreateUserRequest{Email: "second@example.com", DisplayName: "Second"}, opts...)
				if err == nil {
					ids.newUser.Store(resp.GetUser().GetId())
				}
				return err
			}},
			{Method: portfoliov1.PortfolioService_CreatePortfolio_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := cl.CreatePortfolio(ctx, &portfoliov1.CreatePortfolioRequest{UserId: ids.user, Name: "second", Currency: "USD"}, opts...)
				return err
			}},
			{Method: portfoliov1.PortfolioService_Deposit_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := cl.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: ids.portfolio, Amount: "50", RequestId: "deposit-1"}, opts...)
				return err
			}},
			{Method: portfoliov1.PortfolioService_Withdraw_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := cl.Withdraw(ctx, &portfoliov1.WithdrawRequest{PortfolioId: ids.portfolio, Amount: "20", RequestId: "withdraw-1"}, opts...)
				return err
			}},
			{Method: portfoliov1.PortfolioService_ExecuteTrade_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := cl.ExecuteTrade(ctx, &portfoliov1.ExecuteTradeRequest{PortfolioId: ids.portfolio, Symbol: "AAPL", Side: buy,
					Quantity: "2", RequestId: "trade-1"}, opts...)
				return err
			}},
		},
	}
	t.Run("routes by data and read-your-writes", func(t *testing.T) { routing.Run(t, rep) })

	t.Run("lag past MAX_REPLICA_LAG: reads on the primary, back on the standby after replay", func(t *testing.T) {
		env := maps.Clone(rep.Env)
		env["MAX_REPLICA_LAG"] = "500ms"
		lagging := startReplicated(t, c, stockAddr, env)
		read := ids.reads(portfoliov1.NewPortfolioServiceClient(lagging.Conn), lagging.Svc.Pool)[portfoliov1.PortfolioService_ListCashMovements_FullMethodName]
		var n atomic.Int64
		apptest.ProveLag(t, lagging, read, func(ctx context.Context) error {
			_, err := cl.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: ids.portfolio, Amount: "1",
				RequestId: "lag-" + strconv.FormatInt(n.Add(1), 10)})
			return err
		})
	})

	t.Run("read-your-writes with the standby replaying", func(t *testing.T) {
		apptest.ProveReadYourWrites(t, rep, ids.reads(cl, rep.Svc.Pool)[portfoliov1.PortfolioService_ListCashMovements_FullMethodName],
			func(ctx context.Context, marker string, opts ...grpc.CallOption) error {
				_, err := cl.Deposit(ctx, &portfoliov1.DepositRequest{PortfolioId: ids.portfolio, Amount: "1", RequestId: marker}, opts...)
				return err
			})
	})

	t.Run("standby stopped under a read load: no read fails", func(t *testing.T) {
		var reads []apptest.ReadCall
		for m, read := range ids.reads(cl, rep.Svc.Pool) {
			if api.Routes[m] == replica.Replica {
				reads = append(reads, read)
			}
		}
		apptest.ProveReplicaDown(t, rep, reads...)
	})
}

// seeded is TestRouting's data: a user with a portfolio holding cash, and the user the
// writes create.
type seeded struct {
	user, portfolio int64
	newUser         atomic.Int64
}

// reads calls each read of the portfolio service through cl, on seeded's data; primary is
// the primary's pool, where WatchPortfolioEvents' read waits for the outbox to be sequenced.
func (s *seeded) reads(cl portfoliov1.PortfolioServiceClient, primary *pgxpool.Pool) map[string]apptest.ReadCall {
	return map[string]apptest.ReadCall{
		portfoliov1.PortfolioService_WatchPortfolio_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := cl.WatchPortfolio(ctx, &portfoliov1.WatchPortfolioRequest{PortfolioId: s.portfolio}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			resp, err := stream.Recv() // the valuation
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_WatchPortfolioEvents_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			// Every event committed so far, once the sequencer has numbered them all: their
			// ids in order (how they are cut into messages is the stream's business).
			last, err := outbox.WaitSequenced(ctx, primary, "portfolio")
			if err != nil {
				return "", err
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := cl.WatchPortfolioEvents(ctx, &portfoliov1.WatchPortfolioEventsRequest{FromOldest: true}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			var seen []string
			for pos := int64(-1); pos < last; {
				resp, err := stream.Recv()
				if err != nil {
					return "", err
				}
				if pos, err = outbox.ParseCursor("portfolio", resp.GetCursor()); err != nil {
					return "", err
				}
				for _, ev := range resp.GetEvents() {
					seen = append(seen, ev.GetType()+" "+ev.GetAggregateId()+" "+ev.GetId())
				}
			}
			return strings.Join(seen, "\n"), nil
		},
		portfoliov1.PortfolioService_GetUser_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			id := s.newUser.Load() // the writes' user, once created
			if id == 0 {
				id = s.user
			}
			resp, err := cl.GetUser(ctx, &portfoliov1.GetUserRequest{UserId: id}, opts...)
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_GetPortfolio_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := cl.GetPortfolio(ctx, &portfoliov1.GetPortfolioRequest{PortfolioId: s.portfolio}, opts...)
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_GetPortfolioPnl_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := cl.GetPortfolioPnl(ctx, &portfoliov1.GetPortfolioPnlRequest{PortfolioId: s.portfolio}, opts...)
			if resp != nil {
				resp.AsOf = nil // the time of the call
			}
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_ListPortfolioValues_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			// The points from tomorrow on: the portfolio with every write so far.
			now := time.Now().UTC()
			resp, err := cl.ListPortfolioValues(ctx, &portfoliov1.ListPortfolioValuesRequest{PortfolioId: s.portfolio,
				StartTime: timestamppb.New(now), EndTime: timestamppb.New(now.Add(48 * time.Hour)),
				Interval: stockv1.Interval_INTERVAL_DAY, PageSize: 1}, opts...)
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_ListPortfolios_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := cl.ListPortfolios(ctx, &portfoliov1.ListPortfoliosRequest{}, opts...)
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_ListTrades_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := cl.ListTrades(ctx, &portfoliov1.ListTradesRequest{PortfolioId: s.portfolio}, opts...)
			return apptest.Seen(resp), err
		},
		portfoliov1.PortfolioService_ListCashMovements_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := cl.ListCashMovements(ctx, &portfoliov1.ListCashMovementsRequest{PortfolioId: s.portfolio}, opts...)
			return apptest.Seen(resp), err
		},
	}
}

// startReplicated starts the portfolio service's server on c (apptest.StartReplicated),
// pricing with the stock service at stockAddr, with env.
func startReplicated(t *testing.T, c *pgtest.ReplicatedCluster, stockAddr string, env map[string]string) *apptest.Replicated {
	t.Helper()
	vars := map[string]string{"STOCK_ADDR": stockAddr, "STOCK_TIMEOUT": "10s", "LOCK_WAIT_TIMEOUT": "30s"}
	maps.Copy(vars, env)
	var own struct {
		Stock client.Config `env:", prefix=STOCK_"`
	}
	apptest.Load(t, vars, &own)
	opts := app.Options{Name: "portfolio", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes,
		Outbox: true}
	return apptest.StartReplicated(t, c, opts, vars, func(svc *app.Service) []string {
		stock, err := svc.Dial("stock", own.Stock)
		if err != nil {
			t.Fatalf("dial stock service: %v", err)
		}
		t.Cleanup(func() { stock.Close() })
		portfoliov1.RegisterPortfolioServiceServer(svc.Server, api.New(api.Deps{Base: svc.Base,
			Stock: stockv1.NewStockServiceClient(stock), MaxPriceAge: maxPriceAge}))
		return []string{portfoliov1.PortfolioService_ServiceDesc.ServiceName}
	})
}
