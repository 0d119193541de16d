// Package openapiv2 embeds the OpenAPI v2 documents protoc-gen-openapiv2 writes beside this
// file (`make proto`), so the gateway serves exactly what the protos generate. This file is
// the one hand-written file in gen/.
package openapiv2

import "embed"

// FS holds pgfleet/<service>/v1/<service>.swagger.json for every service.
//
//go:embed pgfleet
var FS embed.FS
