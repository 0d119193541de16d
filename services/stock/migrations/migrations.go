// Package migrations holds the SQL migrations of schema "stock", applied by pkg/migrate.
package migrations

import (
	"embed"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

//go:embed *.sql
var files embed.FS

// Set is the stock service's migration set: the .sql files, then the outbox (stock.outbox,
// the events of WatchStockEvents and WatchLatestPrices).
var Set = migrate.Set{Schema: "stock", FS: files, Steps: []migrate.Step{outbox.Migration(3, "stock")}}
