package openapi

import "maps"

// The document's header and the gateway's own endpoints, added to the services' paths.
// Every answer the gateway sends on its HTTP port is in the document (the gateway's tests
// validate each one against it), but for CORS preflights and the 404/405 of paths and
// methods that are no operation.
var (
	info = map[string]any{
		"title":   "pgfleet REST API",
		"version": "v1",
		"description": "REST/JSON over the pgfleet services, served by the gateway. Fields use proto names; " +
			"int64 and decimal values are strings, timestamps RFC 3339. Every scalar, enum, list and map " +
			"field of a response is present, zero values included; a message field is left out while unset. " +
			"Errors are google.rpc.Status JSON ({\"code\", \"message\", \"details\"}, one google.rpc.ErrorInfo " +
			"with the reason in details) with the matching HTTP status. Server streams are newline-delimited " +
			`JSON (application/x-ndjson): one {"result": ...} per message, and a final {"error": ...} if the ` +
			"stream fails after its first line; the Watch routes (GET ...:watch) answer server-sent events " +
			"(text/event-stream) for EventSource instead. The same document in OpenAPI 3.0 is at /openapi.v3.json.",
	}
	gatewayTag = map[string]any{"name": "Gateway", "description": "The gateway's own endpoints."}

	// schemeDescriptions replace the per-service descriptions of a security scheme.
	schemeDescriptions = map[string]string{
		"bearer": `A JWT as "Bearer <token>"; its subject is the caller's email address. ` +
			"Market data reads need none; market data writes need role ingest or admin; portfolios " +
			"and interview sessions are their owner's (another user's answers 404, like a missing one).",
	}

	gatewayPaths = map[string]any{
		"/health": gatewayGet("Health of the gateway and of every service (gRPC health, service \"\").", "Gateway_Health",
			map[string]any{
				"200": map[string]any{"description": "Everything serves.", "schema": ref("gatewayHealth")},
				"503": map[string]any{"description": "Something does not; failing names it.", "schema": ref("gatewayHealth")},
			}, nil),
		"/monitoring/database": gatewayGet("Every service's DatabaseMonitor status, keyed by service name.", "Gateway_DatabaseStatus",
			map[string]any{
				"200": map[string]any{"description": "Every database serves.", "schema": databaseDoc},
				"503": map[string]any{"description": "A call failed or a database does not serve.", "schema": databaseDoc},
				"401": map[string]any{"description": "UNAUTHENTICATED: the bearer token is missing, expired or invalid.",
					"schema": ref("rpcStatus"), "headers": map[string]any{"WWW-Authenticate": map[string]any{
						"type": "string", "description": `Bearer realm="pgfleet" (RFC 6750).`,
					}}},
				"403": map[string]any{"description": "PERMISSION_DENIED: the token has neither role service nor admin.", "schema": ref("rpcStatus")},
			}, map[string]any{
				"description": "Needs what DatabaseMonitor needs: a token with role service or admin. The gateway " +
					"checks it, then asks each service with it, and each service checks it again.",
				"security": []any{map[string]any{"bearer": []any{}}},
			}),
		"/monitoring/database:watch": gatewayGet("The status page's live feed: server-sent events, each the JSON of a REST twin, "+
			"sent when it changed (looked for every 2 s).", "Gateway_WatchDatabaseStatus",
			map[string]any{
				"200": map[string]any{"description": "Server-sent events (text/event-stream): the default event's data is " +
					"/monitoring/database's document (this schema), an event named health holds /health's report, one named " +
					"recent /monitoring/recent's; each is sent when it differs from the last one sent. A comment line " +
					"(\": heartbeat\") goes out after SSE_HEARTBEAT without an event; at shutdown an event named error " +
					"(google.rpc.Status, SHUTTING_DOWN) ends the stream.", "schema": databaseDoc,
					eventsExtension: map[string]any{"health": ref("gatewayHealth"), "recent": ref("gatewayRecent"), "error": ref("rpcStatus")}},
				"401": map[string]any{"description": "UNAUTHENTICATED: the bearer token is missing, expired or invalid.",
					"schema": ref("rpcStatus"), "headers": map[string]any{"WWW-Authenticate": map[string]any{
						"type": "string", "description": `Bearer realm="pgfleet" (RFC 6750).`,
					}}},
				"403": map[string]any{"description": "PERMISSION_DENIED: the token has neither role service nor admin.", "schema": ref("rpcStatus")},
				"429": map[string]any{"description": "RESOURCE_EXHAUSTED (GATEWAY_BUSY): MAX_WATCH_STREAMS are open.", "schema": ref("rpcStatus")},
				"503": map[string]any{"description": "UNAVAILABLE (SHUTTING_DOWN): the gateway is draining.", "schema": ref("rpcStatus")},
			}, map[string]any{
				"description": "Needs the token /monitoring/database needs (role service or admin), in the Authorization " +
					"header or, for EventSource, as the access_token query parameter.",
				"produces":   []any{"text/event-stream", "application/json"},
				"parameters": []any{accessTokenParameter},
				"security":   []any{map[string]any{"bearer": []any{}}},
			}),
		"/monitoring/recent": gatewayGet("The gateway's own traffic over its last minutes, as the services' recent samples.", "Gateway_Recent",
			map[string]any{
				"200": map[string]any{"description": "The samples.", "schema": ref("gatewayRecent")},
				"401": map[string]any{"description": "UNAUTHENTICATED: the bearer token is missing, expired or invalid.",
					"schema": ref("rpcStatus"), "headers": map[string]any{"WWW-Authenticate": map[string]any{
						"type": "string", "description": `Bearer realm="pgfleet" (RFC 6750).`,
					}}},
				"403": map[string]any{"description": "PERMISSION_DENIED: the token has neither role service nor admin.", "schema": ref("rpcStatus")},
			}, map[string]any{
				"description": "Needs the token /monitoring/database needs (role service or admin). Each sample is one " +
					"interval (HISTORY_INTERVAL) of HTTP requests: per second, their p99 latency, the share answered 5xx; " +
					"pool_use is 0, the gateway having no pool.",
				"security": []any{map[string]any{"bearer": []any{}}},
			}),
		"/openapi.json": gatewayGet("This document, OpenAPI 2.0.", "Gateway_OpenAPIv2",
			map[string]any{"200": map[string]any{"description": "The document.", "schema": map[string]any{"type": "object"}}}, nil),
		"/openapi.v3.json": gatewayGet("This document, OpenAPI 3.0.", "Gateway_OpenAPIv3",
			map[string]any{"200": map[string]any{"description": "The document.", "schema": map[string]any{"type": "object"}}}, nil),
		"/": gatewayGet("The operators' status page (HTML; it fetches /health, and /monitoring/database given a token).", "Gateway_StatusPage",
			map[string]any{"200": map[string]any{"description": "The page.", "schema": map[string]any{"type": "string"}}},
			map[string]any{"produces": []any{"text/html", "application/json"}}),
		"/live": gatewayGet("The live view (HTML): latest prices of ?symbols= and a portfolio's value, followed as server-sent events.", "Gateway_LivePage",
			map[string]any{"200": map[string]any{"description": "The page.", "schema": map[string]any{"type": "string"}}},
			map[string]any{"produces": []any{"text/html", "application/json"}, "parameters": []any{map[string]any{
				"name": "symbols", "in": "query", "required": false, "type": "string",
				"description": "Comma-separated ticker symbols to show (default AAPL,MSFT); read by the page, not the gateway.",
			}}}),
		"/favicon.ico": gatewayGet("The status page's icon, which browsers ask for on every page.", "Gateway_Favicon",
			map[string]any{"200": map[string]any{"description": "The icon.", "schema": map[string]any{"type": "string", "format": "binary"}}},
			map[string]any{"produces": []any{"image/x-icon", "application/json"}}),
		"/ui/{file}": gatewayGet("The status page's and the live view's scripts and style.", "Gateway_StatusPageAsset",
			map[string]any{
				"200": map[string]any{"description": "The file.", "schema": map[string]any{"type": "string"}},
				"404": map[string]any{"description": "NOT_FOUND: no such file.", "schema": ref("rpcStatus")},
			}, map[string]any{
				"produces": []any{"text/javascript", "text/css", "application/json"},
				"parameters": []any{map[string]any{
					"name": "file", "in": "path", "required": true, "type": "string", "enum": []any{"app.js", "live.js", "style.css"},
				}},
			}),
	}

	gatewayError = map[string]any{"description": "An error, as the API answers them.", "schema": ref("rpcStatus")}

	// malformedRequest is the 400 any route answers to a path or query that is not UTF-8.
	malformedRequest = map[string]any{"description": "MALFORMED_REQUEST: the path or a query parameter is not UTF-8 " +
		"once percent-decoded.", "schema": ref("rpcStatus")}

	databaseDoc = map[string]any{"type": "object", "additionalProperties": ref("gatewayDatabaseEntry")}

	gatewayDefinitions = map[string]any{
		"gatewayHealth": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"status":   map[string]any{"type": "string", "description": "SERVING or NOT_SERVING."},
				"services": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "SERVING, NOT_SERVING, SERVICE_UNKNOWN or UNREACHABLE by name, \"gateway\" included."},
				"failing":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "The services not SERVING; absent when there are none."},
				"errors":   map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}, "description": "Why a check failed, by service; absent when none did."},
			},
			"required": []any{"status", "services"},
		},
		"gatewayRecent": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"service": map[string]any{"type": "string", "description": "\"gateway\"."},
				"recent":  map[string]any{"type": "array", "items": ref("v1Sample"), "description": "Oldest first; at most 90."},
			},
			"required": []any{"service", "recent"},
		},
		"gatewayDatabaseEntry": map[string]any{
			"type":        "object",
			"description": "One service's answer: status, or error when the call failed.",
			"properties": map[string]any{
				"status": map[string]any{"allOf": []any{ref("v1DatabaseStatus")}, "description": "The service's GetDatabaseStatusResponse.status."},
				"error":  map[string]any{"allOf": []any{ref("rpcStatus")}, "description": "Why the call failed."},
			},
			"minProperties": 1,
			"maxProperties": 1,
		},
	}
)

func ref(def string) map[string]any { return map[string]any{"$ref": "#/definitions/" + def} }

// gatewayGet is a GET operation of the gateway's own: tagged Gateway, with its responses
// plus the 400 every route answers to a path or query that is not UTF-8 and the default
// error; extra holds its other fields (description, produces, parameters, security).
func gatewayGet(summary, operationID string, responses, extra map[string]any) map[string]any {
	responses["400"] = malformedRequest
	responses["default"] = gatewayError
	op := map[string]any{"summary": summary, "operationId": operationID, "tags": []any{"Gateway"}, "responses": responses}
	maps.Copy(op, extra)
	return map[string]any{"get": op}
}
