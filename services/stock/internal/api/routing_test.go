package api_test

import (
	"context"
	"errors"
	"io"
	"maps"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/outbox"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/pkg/server"
	"github.com/pgfleet/pgfleet/services/stock/internal/api"
	"github.com/pgfleet/pgfleet/services/stock/migrations"
)

// TestRouting proves the stock service's read routing by data on a primary and a hot standby
// (apptest.Routing): its subtests share the pair and run in order.
func TestRouting(t *testing.T) {
	c := pgtest.NewReplicatedCluster(t)
	rep := startReplicated(t, c, nil)
	client := stockv1.NewStockServiceClient(rep.Conn)
	ctx := t.Context()
	bar := func(day int, close string) *stockv1.Price {
		return &stockv1.Price{Symbol: "AAA", Time: timestamppb.New(day0.AddDate(0, 0, day)), Open: close, High: close, Low: close, Close: close, Volume: 10}
	}
	ingest := func(ctx context.Context, prices []*stockv1.Price, opts ...grpc.CallOption) error {
		stream, err := client.IngestPrices(ctx, opts...)
		if err != nil {
			return err
		}
		if err := stream.Send(&stockv1.IngestPricesRequest{Prices: prices}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_, err = stream.CloseAndRecv()
		return err
	}
	rec := func(action stockv1.Action) *stockv1.Recommendation {
		return &stockv1.Recommendation{Symbol: "AAA", Source: "model", Action: action}
	}
	if _, err := client.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{
		{Symbol: "AAA", Name: "Old Name", Currency: "USD"}, {Symbol: "BBB", Name: "B", Currency: "USD"}, {Symbol: "DEL", Name: "Gone soon", Currency: "USD"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := ingest(ctx, []*stockv1.Price{bar(0, "10"), bar(1, "11")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{rec(stockv1.Action_ACTION_HOLD)}}); err != nil {
		t.Fatal(err)
	}

	reads := readCalls(client, rep.Svc.Pool)
	routing := apptest.Routing{
		Routes: api.Routes,
		Files:  []protoreflect.FileDescriptor{stockv1.File_pgfleet_stock_v1_stock_proto},
		Reads:  reads,
		Writes: []apptest.WriteCall{
			{Method: stockv1.StockService_UpsertStocks_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "AAA", Name: "New Name", Currency: "USD"}}}, opts...)
				return err
			}},
			{Method: stockv1.StockService_DeleteStock_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.DeleteStock(ctx, &stockv1.DeleteStockRequest{Symbol: "DEL"}, opts...)
				return err
			}},
			{Method: stockv1.StockService_IngestPrices_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				return ingest(ctx, []*stockv1.Price{bar(2, "12")}, opts...)
			}},
			{Method: stockv1.StockService_UpsertRecommendations_FullMethodName, Do: func(ctx context.Context, opts ...grpc.CallOption) error {
				_, err := client.UpsertRecommendations(ctx, &stockv1.UpsertRecommendationsRequest{Recommendations: []*stockv1.Recommendation{rec(stockv1.Action_ACTION_BUY)}}, opts...)
				return err
			}},
		},
	}
	t.Run("routes by data and read-your-writes", func(t *testing.T) { routing.Run(t, rep) })

	t.Run("lag past MAX_REPLICA_LAG: reads on the primary, back on the standby after replay", func(t *testing.T) {
		env := maps.Clone(rep.Env)
		env["MAX_REPLICA_LAG"] = "500ms"
		lagging := startReplicated(t, c, env)
		day := 3
		read := readCalls(stockv1.NewStockServiceClient(lagging.Conn), lagging.Svc.Pool)[stockv1.StockService_ListPrices_FullMethodName]
		apptest.ProveLag(t, lagging, read, func(ctx context.Context) error {
			day++
			return ingest(ctx, []*stockv1.Price{bar(day, "13")})
		})
	})

	t.Run("read-your-writes with the standby replaying", func(t *testing.T) {
		apptest.ProveReadYourWrites(t, rep, readCalls(client, rep.Svc.Pool)[stockv1.StockService_GetStock_FullMethodName],
			func(ctx context.Context, marker string, opts ...grpc.CallOption) error {
				_, err := client.UpsertStocks(ctx, &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{{Symbol: "AAA", Name: marker, Currency: "USD"}}}, opts...)
				return err
			})
	})

	t.Run("standby stopped under a read load: no read fails", func(t *testing.T) {
		var replicaReads []apptest.ReadCall
		for m, read := range reads {
			// An export reads one snapshot, which lives on the server that took it: one whose
			// standby stops before its first message runs again on the primary, but one cut
			// mid-stream cannot move and ends UNAVAILABLE (the client starts again).
			if api.Routes[m] == replica.Replica && m != stockv1.StockService_ExportPrices_FullMethodName {
				replicaReads = append(replicaReads, read)
			}
		}
		apptest.ProveReplicaDown(t, rep, replicaReads...)
	})
}

// startReplicated starts the stock service's server on c (apptest.StartReplicated) with env.
func startReplicated(t *testing.T, c *pgtest.ReplicatedCluster, env map[string]string) *apptest.Replicated {
	t.Helper()
	var own struct {
		Limits  server.Limits
		Streams api.StreamLimits
		Exports api.ExportConfig
	}
	apptest.Load(t, nil, &own)
	opts := app.Options{Name: "stock", Migrations: migrations.Set, Validate: api.Validate, Policy: api.Policy, Routes: api.Routes, Outbox: true, Limits: &own.Limits}
	var srv *api.Server
	rep := apptest.StartReplicated(t, c, opts, env, func(svc *app.Service) []string {
		srv = api.New(api.Deps{Base: svc.Base, Streams: own.Streams, Exports: own.Exports})
		stockv1.RegisterStockServiceServer(svc.Server, srv)
		return []string{stockv1.StockService_ServiceDesc.ServiceName}
	})
	t.Cleanup(srv.Close)
	return rep
}

// readCalls calls each read of the stock service through client, on the data TestRouting
// arranges; primary is the primary's pool, where the outbox's last position is read.
func readCalls(client stockv1.StockServiceClient, primary *pgxpool.Pool) map[string]apptest.ReadCall {
	return map[string]apptest.ReadCall{
		stockv1.StockService_WatchLatestPrices_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := client.WatchLatestPrices(ctx, &stockv1.WatchLatestPricesRequest{Symbols: []string{"AAA", "BBB"}}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			resp, err := stream.Recv() // the snapshot
			return apptest.Seen(resp), err
		},
		stockv1.StockService_WatchStockEvents_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			// Every event committed so far, once the sequencer has numbered them all.
			last, err := outbox.WaitSequenced(ctx, primary, "stock")
			if err != nil {
				return "", err
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			stream, err := client.WatchStockEvents(ctx, &stockv1.WatchStockEventsRequest{FromOldest: true}, opts...)
			if err != nil {
				return "", err
			}
			defer apptest.EndStream(cancel, func() error { _, err := stream.Recv(); return err })
			var seen []string
			for pos := int64(0); pos < last; {
				resp, err := stream.Recv()
				if err != nil {
					return "", err
				}
				if pos, err = outbox.ParseCursor("stock", resp.GetCursor()); err != nil {
					return "", err
				}
				seen = append(seen, apptest.Seen(resp))
			}
			return strings.Join(seen, "\n"), nil
		},
		stockv1.StockService_GetStock_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.GetStock(ctx, &stockv1.GetStockRequest{Symbol: "AAA"}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_ListStocks_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.ListStocks(ctx, &stockv1.ListStocksRequest{OrderBy: "symbol"}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_BatchGetStocks_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.BatchGetStocks(ctx, &stockv1.BatchGetStocksRequest{Symbols: []string{"AAA", "BBB"}}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_ListPrices_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.ListPrices(ctx, &stockv1.ListPricesRequest{Symbol: "AAA"}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_ListBars_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.ListBars(ctx, &stockv1.ListBarsRequest{Symbol: "AAA", Interval: stockv1.Interval_INTERVAL_WEEK}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_StreamPrices_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			stream, err := client.StreamPrices(ctx, &stockv1.StreamPricesRequest{Symbol: "AAA"}, opts...)
			if err != nil {
				return "", err
			}
			var seen []string
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return strings.Join(seen, "\n"), nil
				}
				if err != nil {
					return "", err
				}
				seen = append(seen, apptest.Seen(resp))
			}
		},
		stockv1.StockService_ExportPrices_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			// On one snapshot of the server the call reads (a standby exports snapshots too).
			stream, err := client.ExportPrices(ctx, &stockv1.ExportPricesRequest{Filter: `symbol = "AAA"`, BatchSize: 1}, opts...)
			if err != nil {
				return "", err
			}
			var seen []string
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					return strings.Join(seen, "\n"), nil
				}
				if err != nil {
					return "", err
				}
				resp.ResumeToken = "" // names the snapshot: differs between servers
				seen = append(seen, apptest.Seen(resp))
			}
		},
		stockv1.StockService_GetLatestPrices_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.GetLatestPrices(ctx, &stockv1.GetLatestPricesRequest{Symbols: []string{"AAA"}}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_ListRecommendations_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.ListRecommendations(ctx, &stockv1.ListRecommendationsRequest{}, opts...)
			return apptest.Seen(resp), err
		},
		stockv1.StockService_ListRecommendationHistory_FullMethodName: func(ctx context.Context, opts ...grpc.CallOption) (string, error) {
			resp, err := client.ListRecommendationHistory(ctx, &stockv1.ListRecommendationHistoryRequest{Filter: `symbol = "AAA"`}, opts...)
			return apptest.Seen(resp), err
		},
	}
}

// sequencedLast waits until the outbox has no event without a position, then returns the
// last position.
