package main

import (
	"fmt"
	"os"

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
