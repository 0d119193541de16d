package gateway

import (
	"net/http"

	"github.com/rs/cors"
)

// corsMaxAge is how long (seconds) a browser may reuse a preflight's answer.
const corsMaxAge = 600

// exposedHeaders are the response headers, beyond the CORS-safelisted ones, that a page of
// another origin may read: WWW-Authenticate says why a 401 was refused (RFC 6750).
// X-Request-Id names the request in the fleet's logs. Pgfleet-Consistency-Token is a write's
// consistency token, for the page's next reads to send back.
var exposedHeaders = []string{"WWW-Authenticate", "X-Request-Id", TokenHeader}

// newCORS lets pages of the allowed origins call the API: preflights answered, the
// Authorization, Content-Type, X-Request-Id, Pgfleet-Consistency-Token and trace context
// headers allowed, exposedHeaders readable. Bearer tokens travel in Authorization, not in
// cookies, so credentials stay off. With no origins it adds nothing, and browsers refuse every cross-origin call;
// rs/cors would read an empty list as "any origin".
func newCORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		// traceparent and tracestate continue a page's trace (W3C Trace Context).
		// Last-Event-ID is sent by EventSource when it reconnects to a Watch route.
		AllowedHeaders: []string{"Authorization", "Content-Type", "X-Request-Id", TokenHeader, "traceparent", "tracestate", "Last-Event-ID"},
		ExposedHeaders: exposedHeaders,
		MaxAge:         corsMaxAge,
	}).Handler(next)
}
