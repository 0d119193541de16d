package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"

	"github.com/pgfleet/pgfleet/services/stock/providerstub"
)

// demoProviderKey is the stand-in provider's API key: a demo value, not a secret.
const demoProviderKey = "demo"

// demoIngestSymbols are the stocks the demo ingestion job fetches: generated ones of the seed,
// so that the real-looking stocks keep the seed's prices.
var demoIngestSymbols = func() []string {
	s := make([]string, 10)
	for i := range s {
		s[i] = fmt.Sprintf("DMO%03d", i+1)
	}
	return s
}()

// startProvider starts the stand-in market-data provider (Polygon.io aggregates v2, on
// loopback) that the demo ingestion job reads, unless INGEST_HTTP_BASE_URL names a real one
// (then the stock service reads that, with INGEST_HTTP_API_KEY).
func (f *fleet) startProvider() error {
	if _, ok := f.svc("stock"); !ok || os.Getenv("INGEST_HTTP_BASE_URL") != "" {
		return nil
	}
	p, err := providerstub.Listen("127.0.0.1:0", providerstub.Options{Symbols: demoIngestSymbols, Key: demoProviderKey})
	if err != nil {
		return fmt.Errorf("the stand-in market-data provider: %w", err)
	}
	f.provider = p
	say("stand-in market-data provider (Polygon.io aggregates v2) on %s, for the demo ingestion job", p.URL)
	return nil
}

// demoIngestJob is the job make run keeps: the demo stocks' daily bars from the stand-in
// provider, every 5 minutes (a real job runs once a day, after the close).
const demoIngestJob = "demo-daily-bars"

// scheduleDemoIngestion creates the demo ingestion job (kept from an earlier run if there) and
// queues a run of it now, through the stock service's API as any operator would.
func (f *fleet) scheduleDemoIngestion(ctx context.Context) error {
	if f.provider == nil {
		return nil
	}
	conn, err := grpc.NewClient(f.grpcTarget("stock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+f.adminToken)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	stock := stockv1.NewStockServiceClient(conn)
	_, err = stock.CreateIngestionJob(ctx, &stockv1.CreateIngestionJobRequest{Job: &stockv1.IngestionJob{
		JobId: demoIngestJob, Source: stockv1.IngestionSource_INGESTION_SOURCE_POLYGON,
		Symbols: demoIngestSymbols, Schedule: "*/5 * * * *", LookbackDays: 30}})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("creating the demo ingestion job: %w", err)
	}
	run, err := stock.RunIngestionJob(ctx, &stockv1.RunIngestionJobRequest{JobId: demoIngestJob})
	if err != nil {
		return fmt.Errorf("running the demo ingestion job: %w", err)
	}
	say("ingestion job %s: %d stocks' daily bars from the stand-in provider every 5 minutes; run %d queued now",
		demoIngestJob, len(demoIngestSymbols), run.GetRun().GetRunId())
	return nil
}
