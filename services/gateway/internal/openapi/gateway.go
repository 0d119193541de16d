package openapi

// The document's header and the gateway's own endpoints, added to the services' paths.
var (
	info = map[string]any{
		"title":   "pgfleet REST API",
		"version": "v1",
		"description": "REST/JSON over the pgfleet services, served by the gateway. Fields use proto names; " +
			"int64 and decimal values are strings, timestamps RFC 3339. Errors are google.rpc.Status " +
			`JSON ({"code", "message", "details"}) with the matching HTTP status. Server streams are ` +
			`newline-delimited JSON (application/x-ndjson): one {"result": ...} or {"error": ...} per line.`,
	}
	gatewayTag = map[string]any{"name": "Gateway", "description": "The gateway's own endpoints."}

	// schemeDescriptions replace the per-service descriptions of a security scheme.
	schemeDescriptions = map[string]string{
		"bearer": `A JWT as "Bearer <token>"; its subject is the caller's email address. ` +
			"Market data reads need none; market data writes need role ingest or admin; portfolios " +
			"and interview sessions are their owner's (another user's answers 404, like a missing one).",
	}

	gatewayPaths = map[string]any{
		"/health": map[string]any{"get": map[string]any{
			"summary":     "Health of the gateway and of every service (gRPC health, service \"\").",
			"operationId": "Gateway_Health",
			"tags":        []any{"Gateway"},
			"responses": map[string]any{
				"200": map[string]any{"description": "Everything serves.", "schema": ref("gatewayHealth")},
				"503": map[string]any{"description": "Something does not; failing names it.", "schema": ref("gatewayHealth")},
			},
		}},
		"/monitoring/database": map[string]any{"get": map[string]any{
			"summary":     "Every service's DatabaseMonitor status, keyed by service name.",
			"operationId": "Gateway_DatabaseStatus",
			"tags":        []any{"Gateway"},
			"responses": map[string]any{
				"200": map[string]any{"description": "Every database serves.", "schema": databaseDoc},
				"503": map[string]any{"description": "A call failed or a database does not serve.", "schema": databaseDoc},
			},
		}},
	}

	databaseDoc = map[string]any{"type": "object", "additionalProperties": ref("gatewayDatabaseEntry")}

	gatewayDefinitions = map[string]any{
		"gatewayHealth": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"status":   map[string]any{"type": "string", "description": "SERVING or NOT_SERVING."},
				"services": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNREACHABLE by name, \"gateway\" included."},
				"failing":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"errors":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
			},
		},
		"gatewayDatabaseEntry": map[string]any{
			"type":        "object",
			"description": "One service's answer: status, or error when the call failed.",
			"properties": map[string]any{
				"status": ref("v1DatabaseStatus"),
				"error":  ref("rpcStatus"),
			},
		},
	}
)

func ref(def string) map[string]any { return map[string]any{"$ref": "#/definitions/" + def} }
