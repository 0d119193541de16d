package gateway

import "net/http"

// serveOpenAPIV3 serves GET /openapi.v3.json: /openapi.json's document in OpenAPI 3.0, for
// the tools that read no other (openapi-typescript and the like).
func (g *Gateway) serveOpenAPIV3(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(g.opts.OpenAPIV3)
}
