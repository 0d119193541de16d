// Package migrations holds the SQL migrations of schema "interview", applied by pkg/migrate.
package migrations

import (
	"embed"

	"github.com/pgfleet/pgfleet/pkg/migrate"
)

//go:embed *.sql
var files embed.FS

// Set is the interview service's migration set.
var Set = migrate.Set{Schema: "interview", FS: files}
