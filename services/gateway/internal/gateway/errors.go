package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // resolves BadRequest and the like in details
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// handleError answers a failed call with its gRPC status as JSON, google.rpc.Status's
// {"code", "message", "details"} (field violations in a google.rpc.BadRequest detail), and
// the HTTP status grpc-gateway maps the code to: INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// PERMISSION_DENIED 403, NOT_FOUND 404, UNAVAILABLE 503... A body over the size limit is 413
// whatever the decoder made of the cut-off read.
func (g *Gateway) handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if bodyTooLarge(r) {
		g.writeStatus(w, tooLarge(g.opts.MaxRequestBytes), http.StatusRequestEntityTooLarge)
		return
	}
	httpStatus := 0
	var hse *runtime.HTTPStatusError // a malformed path, from the router
	if errors.As(err, &hse) {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	st := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	if httpStatus >= http.StatusInternalServerError && st.Code() != codes.Unavailable {
		g.log.WarnContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path,
			"code", st.Code().String(), "err", st.Message())
	}
	g.writeStatus(w, st, httpStatus)
}

// handleRoutingError answers a path no route matches (404) or a method the path does not
// take (405) in the same JSON shape as every other error.
func (g *Gateway) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var st *status.Status
	switch httpStatus {
	case http.StatusNotFound:
		st = status.Newf(codes.NotFound, "no route for %s %s", r.Method, r.URL.Path)
	case http.StatusMethodNotAllowed:
		st = status.Newf(codes.Unimplemented, "method %s not allowed on %s", r.Method, r.URL.Path)
	case http.StatusBadRequest:
		st = status.New(codes.InvalidArgument, "malformed request path")
	default:
		st = status.New(codes.Internal, http.StatusText(httpStatus))
	}
	g.writeStatus(w, st, httpStatus)
}

// fallbackError is sent if a status cannot be marshalled, which should never happen.
const fallbackError = `{"code":13,"message":"failed to marshal error","details":[]}`

// writeStatus writes st as the JSON body of an answer with the given HTTP status.
func (g *Gateway) writeStatus(w http.ResponseWriter, st *status.Status, httpStatus int) {
	body, err := marshaler.Marshal(st.Proto())
	if err != nil {
		g.log.Error("marshal error status", "err", err)
		body, httpStatus = []byte(fallbackError), http.StatusInternalServerError
	}
	h := w.Header()
	h.Del("Trailer") // set by a stream that failed before its first message
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if httpStatus == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="pgfleet"`) // RFC 6750
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}
