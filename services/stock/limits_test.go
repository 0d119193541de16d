package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// TestLimits holds the real service to its limits: a caller's stream beyond
// STREAMS_PER_CALLER, and any stream beyond STREAM_LIMIT, is RESOURCE_EXHAUSTED
// TOO_MANY_STREAMS while other callers' streams run; anonymous callers are told apart by the
// address a trusted proxy forwards; an ingest that stops sending is ended and writes nothing.
func TestLimits(t *testing.T) {
	t.Parallel()
	svc := apptest.Start(t, run, map[string]string{
		"DATABASE_URL":       pgtest.NewDBURL(t),
		"DRAIN_TIMEOUT":      "2s",
		"STREAMS_PER_CALLER": "2",
		"STREAM_LIMIT":       "5",
		// Long enough for the seeding ingests to send a 10,000-bar message under the race
		// detector on a busy machine (1 s was not), short enough for the idle subtest.
		"INGEST_IDLE_TIMEOUT": "5s",
	})
	apptest.AwaitHealth(t, svc.Conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)
	admin := stockv1.NewStockServiceClient(svc.Conn)
	if _, err := admin.UpsertStocks(t.Context(), &stockv1.UpsertStocksRequest{Stocks: []*stockv1.Stock{
		{Symbol: "AAPL", Name: "Apple Inc."}, {Symbol: "BIG", Name: "Big Corp."}, {Symbol: "IDLE", Name: "Idle Inc."}}}); err != nil {
		t.Fatalf("UpsertStocks: %v", err)
	}
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	ingestBars(t, admin, "AAPL", start, 1)
	ingestBars(t, admin, "BIG", start, bigBars)
	idle := stockv1.NewStockServiceClient(apptest.Dial(t, svc.GRPCAddr,
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10)))
	plain := stockv1.NewStockServiceClient(apptest.Dial(t, svc.GRPCAddr)) // no token of its own
	// Idle streams stay open across subtests, until the test ends.
	held := t.Context()

	t.Run("idle ingest", func(t *testing.T) {
		stream, err := idle.IngestPrices(t.Context(), authtest.As(t, "feed@example.com", auth.RoleIngest))
		if err != nil {
			t.Fatalf("IngestPrices: %v", err)
		}
		if err := stream.Send(&stockv1.IngestPricesRequest{Prices: bars("IDLE", start, 10)}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		// Then nothing, not even the end of the stream: the service ends it.
		err = stream.RecvMsg(&stockv1.IngestPricesResponse{})
		wantStatus(t, err, codes.Aborted, apierr.StreamIdle, map[string]string{"idle_timeout": "5s"})
		latest, err := admin.GetLatestPrices(t.Context(), &stockv1.GetLatestPricesRequest{Symbols: []string{"IDLE"}})
		if err != nil || len(latest.GetPrices()) != 0 {
			t.Errorf("GetLatestPrices(IDLE) after the idle ingest = %v, %v; want no price", latest, err)
		}
		list, err := admin.ListPrices(t.Context(), &stockv1.ListPricesRequest{Symbol: "IDLE"})
		if err != nil || len(list.GetPrices()) != 0 {
			t.Errorf("ListPrices(IDLE) after the idle ingest = %v, %v; want none", list, err)
		}
	})

	t.Run("per caller", func(t *testing.T) {
		for i := range 2 {
			stream, err := idle.StreamPrices(held, &stockv1.StreamPricesRequest{Symbol: "BIG"}, authtest.As(t, "alice@example.com"))
			if err != nil {
				t.Fatalf("StreamPrices: %v", err)
			}
			awaitHeader(t, i, stream)
		}
		stream, err := idle.StreamPrices(t.Context(), &stockv1.StreamPricesRequest{Symbol: "BIG"}, authtest.As(t, "alice@example.com"))
		if err == nil {
			_, err = stream.Recv()
		}
		wantStatus(t, err, codes.ResourceExhausted, apierr.TooManyStreams,
			map[string]string{"scope": "caller", "limit": "2", "caller": "subject alice@example.com"})
		// Another caller is unaffected: its export runs to the end.
		if n := exportAll(t, t.Context(), plain, authtest.As(t, "bob@example.com")); n != bigBars {
			t.Errorf("bob's export sent %d bars, want %d", n, bigBars)
		}
	})

	t.Run("anonymous callers by forwarded address", func(t *testing.T) {
		// Loopback peers are trusted proxies by default, as the gateway is: the address they
		// forward names the caller.
		from := func(ctx context.Context, addr string) context.Context {
			return metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", addr)
		}
		for i := range 2 {
			stream, err := idle.StreamPrices(from(held, "198.51.100.1"), &stockv1.StreamPricesRequest{Symbol: "BIG"})
			if err != nil {
				t.Fatalf("StreamPrices: %v", err)
			}
			awaitHeader(t, i, stream)
		}
		stream, err := idle.StreamPrices(from(t.Context(), "198.51.100.1"), &stockv1.StreamPricesRequest{Symbol: "BIG"})
		if err == nil {
			_, err = stream.Recv()
		}
		wantStatus(t, err, codes.ResourceExhausted, apierr.TooManyStreams,
			map[string]string{"scope": "caller", "caller": "address 198.51.100.1"})
		if n := exportAll(t, from(t.Context(), "198.51.100.2"), plain); n != bigBars {
			t.Errorf("another address's export sent %d bars, want %d", n, bigBars)
		}
	})

	t.Run("service share", func(t *testing.T) {
		// Four streams are open (alice's and 198.51.100.1's); STREAM_LIMIT is five.
		stream, err := idle.StreamPrices(held, &stockv1.StreamPricesRequest{Symbol: "BIG"}, authtest.As(t, "carol@example.com"))
		if err != nil {
			t.Fatalf("StreamPrices: %v", err)
		}
		awaitHeader(t, 0, stream)
		stream, err = idle.StreamPrices(t.Context(), &stockv1.StreamPricesRequest{Symbol: "BIG"}, authtest.As(t, "dave@example.com"))
		if err == nil {
			_, err = stream.Recv()
		}
		wantStatus(t, err, codes.ResourceExhausted, apierr.TooManyStreams, map[string]string{"scope": "service", "limit": "5"})
		// Reads go on.
		requireReads(t, admin)
	})
}

// exportAll exports all of BIG and returns how many bars came.
func exportAll(t *testing.T, ctx context.Context, c stockv1.StockServiceClient, opts ...grpc.CallOption) int {
	t.Helper()
	stream, err := c.StreamPrices(ctx, &stockv1.StreamPricesRequest{Symbol: "BIG"}, opts...)
	if err != nil {
		t.Fatalf("StreamPrices: %v", err)
	}
	n := 0
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatalf("StreamPrices: Recv: %v", err)
		}
		n += len(resp.GetPrices())
	}
}

// wantStatus fails t unless err has code and reason, at least metadata md, and a RetryInfo.
func wantStatus(t *testing.T, err error, code codes.Code, reason apierr.Reason, md map[string]string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code || apierr.ReasonOf(err) != reason {
		t.Fatalf("error = %v (reason %q), want %v %s", err, apierr.ReasonOf(err), code, reason)
	}
	for k, v := range md {
		if got := apierr.Info(st).GetMetadata()[k]; got != v {
			t.Errorf("error = %v: metadata %q = %q, want %q", err, k, got, v)
		}
	}
	var retry bool
	for _, d := range st.Details() {
		_, ok := d.(*errdetails.RetryInfo)
		retry = retry || ok
	}
	if !retry {
		t.Errorf("error = %v without RetryInfo", err)
	}
}
