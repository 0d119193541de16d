package gateway

import (
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/validate"
)

// requireUTF8 answers 400 MALFORMED_REQUEST to a request whose path or query, once
// percent-decoded, is not UTF-8 ("/v1/stocks/%FF"), with a field violation naming the query
// parameter, or "path". Passed on, grpc-gateway would copy the bytes into a protobuf string
// field, which gRPC refuses to marshal (INTERNAL, a 500 for the caller's mistake), and an
// error naming the path could not be marshalled as JSON either.
func (g *Gateway) requireUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkUTF8(r.URL); err != nil {
			g.writeStatus(w, err.GRPCStatus(), http.StatusBadRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// checkUTF8 returns the violations of u's path and query parameters that are not UTF-8, or nil.
func checkUTF8(u *url.URL) *validate.Error {
	const rule = "must be UTF-8 once percent-decoded"
	var v validate.Violations
	if !utf8.ValidString(u.Path) {
		v.Add("path", rule)
	}
	values, _ := url.ParseQuery(u.RawQuery) // a malformed query is refused where it is read
	for _, name := range slices.Sorted(maps.Keys(values)) {
		field := strings.ToValidUTF8(name, "\uFFFD")
		switch {
		case field != name:
			v.Add(field, "query parameter name %s", rule)
		case slices.ContainsFunc(values[name], func(s string) bool { return !utf8.ValidString(s) }):
			v.Add(field, "query parameter %s", rule)
		}
	}
	if v.Err() == nil {
		return nil
	}
	bad := v.Err().(*validate.Error)
	bad.Reason = apierr.MalformedRequest
	return bad
}
