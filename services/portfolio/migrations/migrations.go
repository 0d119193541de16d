// Package migrations holds the SQL migrations of schema "portfolio", applied by pkg/migrate.
package migrations

import (
	"embed"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

//go:embed *.sql
var files embed.FS

// Set is the portfolio service's migration set: the .sql files, then the outbox of its
// events (TradeExecuted, CashMoved) as version 5.
var Set = migrate.Set{Schema: "portfolio", FS: files, Steps: []migrate.Step{outbox.Migration(5, "portfolio")}}
