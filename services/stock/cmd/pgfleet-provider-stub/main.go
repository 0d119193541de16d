// Command pgfleet-provider-stub serves daily bars in Polygon.io's aggregates v2 format on a
// local address, from services/stock/providerstub: deterministic synthetic prices for the
// tickers given, so the HTTP ingestion connector has a provider to talk to without the
// internet. Point INGEST_HTTP_BASE_URL at it.
//
//	pgfleet-provider-stub -addr 127.0.0.1:8089 -symbols AAPL,MSFT -key demo
//	curl 'http://127.0.0.1:8089/v2/aggs/ticker/AAPL/range/1/day/2026-11-02/2026-11-06?apiKey=demo'
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
	"github.com/pgfleet/pgfleet/services/stock/providerstub"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8089", "address to listen on")
	symbols := flag.String("symbols", "AAPL,MSFT,NVDA,GOOGL,AMZN,META,TSLA,JPM", "comma-separated tickers with bars (others get no results)")
	key := flag.String("key", "", "API key required as apiKey or Authorization: Bearer (empty: none)")
	pageSize := flag.Int("page-size", 0, "bars per page before next_url (0: 5000)")
	version := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *version {
		fmt.Println("pgfleet-provider-stub", buildinfo.Get())
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	var tickers []string
	for s := range strings.SplitSeq(*symbols, ",") {
		if s = strings.TrimSpace(s); s != "" {
			tickers = append(tickers, s)
		}
	}
	err := run(ctx, log, *addr, tickers, *key, *pageSize)
	stop()
	if err != nil {
		log.Error("provider stub stopped", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, addr string, symbols []string, key string, pageSize int) error {
	srv, err := providerstub.Listen(addr, providerstub.Options{Symbols: symbols, Key: key, PageSize: pageSize})
	if err != nil {
		return err
	}
	log.Info("provider stub listening", "url", srv.URL, "symbols", symbols, "key_required", key != "")
	select {
	case <-srv.Done():
		return srv.Err()
	case <-ctx.Done():
		return srv.Close()
	}
}
