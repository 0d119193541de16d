package gateway

import (
	"embed"
	"net/http"
	"path"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// ui is the operator status page and the live view (/live): plain HTML, CSS and JS, no build step. Script and style
// are files of their own because the Content-Security-Policy forbids inline ones.
//
//go:embed ui
var ui embed.FS

// assetTypes are the files under /ui/ and their media types; anything else is 404.
var assetTypes = map[string]string{
	"app.js":    "text/javascript; charset=utf-8",
	"live.js":   "text/javascript; charset=utf-8",
	"style.css": "text/css; charset=utf-8",
}

// serveStatusPage serves GET /: the page fetches /health and /monitoring/database itself.
func (g *Gateway) serveStatusPage(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	g.serveFile(w, "index.html", "text/html; charset=utf-8")
}

// serveLivePage serves GET /live: the page follows /v1/prices:watch (and a portfolio's
// :watch) itself, as an EventSource.
func (g *Gateway) serveLivePage(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	g.serveFile(w, "live.html", "text/html; charset=utf-8")
}

// serveFavicon serves GET /favicon.ico (157 bytes), which browsers ask for on every page,
// JSON ones included: a 404 there is an error in every console.
func (g *Gateway) serveFavicon(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	g.serveFile(w, "favicon.ico", "image/x-icon")
}

// serveAsset serves GET /ui/{file}.
func (g *Gateway) serveAsset(w http.ResponseWriter, r *http.Request, params map[string]string) {
	name := params["file"]
	ctype, ok := assetTypes[name]
	if !ok {
		g.writeStatus(w, noRoute(r).GRPCStatus(), http.StatusNotFound)
		return
	}
	g.serveFile(w, name, ctype)
}

func (g *Gateway) serveFile(w http.ResponseWriter, name, ctype string) {
	body, err := ui.ReadFile(path.Join("ui", name))
	if err != nil { // embedded at build time: only a build without the file gets here
		g.writeStatus(w, apierr.New(apierr.Internal, "status page missing from the build", nil).GRPCStatus(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "no-cache") // revalidate: a new gateway may ship a new page
	_, _ = w.Write(body)
}

// serveOpenAPI serves GET /openapi.json: the services' OpenAPI v2 documents merged into one.
func (g *Gateway) serveOpenAPI(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(g.opts.OpenAPI)
}
