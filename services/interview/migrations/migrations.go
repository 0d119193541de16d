// Package migrations holds the SQL migrations of schema "interview", applied by pkg/migrate.
package migrations

import (
	"embed"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/outbox"
)

//go:embed *.sql
var files embed.FS

// Set is the interview service's migration set: the .sql files, then the outbox of the
// events of sessions (version 3).
var Set = migrate.Set{Schema: "interview", FS: files, Steps: []migrate.Step{outbox.Migration(3, "interview")}}
