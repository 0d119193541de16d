package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // resolves BadRequest and the like in details
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// handleError answers a failed call with its gRPC status as JSON, google.rpc.Status's
// {"code", "message", "details"} (one google.rpc.ErrorInfo, field violations in a
// google.rpc.BadRequest detail), and the HTTP status grpc-gateway maps the code to:
// INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
// UNAVAILABLE 503... A body over the size limit is 413 whatever the decoder made of the
// cut-off read. The services give every status its ErrorInfo; one without it was made here,
// by grpc-gateway (a body or query it could not decode: MALFORMED_REQUEST) or by gRPC (a
// service it could not reach: the code's own reason).
func (g *Gateway) handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if bodyTooLarge(r) {
		g.writeStatus(w, tooLarge(g.opts.MaxRequestBytes), http.StatusRequestEntityTooLarge)
		return
	}
	if st, ok := shuttingDown(r.Context()); ok { // EndRequests cancelled the call
		err = st.Err()
	}
	httpStatus := 0
	var hse *runtime.HTTPStatusError // a malformed path, from the router
	if errors.As(err, &hse) {
		httpStatus, err = hse.HTTPStatus, hse.Err
	}
	st := status.Convert(err)
	if apierr.Count(st) == 0 && st.Code() == codes.InvalidArgument {
		st = apierr.New(apierr.MalformedRequest, st.Message(), nil).GRPCStatus()
	}
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
	var e *apierr.Error
	switch httpStatus {
	case http.StatusNotFound:
		e = noRoute(r)
	case http.StatusMethodNotAllowed:
		e = apierr.Newf(apierr.MethodNotAllowed, requestMetadata(r), "method %s not allowed on %s", r.Method, r.URL.Path)
	case http.StatusBadRequest:
		e = apierr.New(apierr.MalformedRequest, "malformed request path", nil)
	default:
		e = apierr.New(apierr.Internal, http.StatusText(httpStatus), nil)
	}
	g.writeStatus(w, e.GRPCStatus(), httpStatus)
}

// noRoute is the error for a path no route matches.
func noRoute(r *http.Request) *apierr.Error {
	return apierr.Newf(apierr.RouteNotFound, requestMetadata(r), "no route for %s %s", r.Method, r.URL.Path)
}

// requestMetadata is the ErrorInfo metadata of routing errors.
func requestMetadata(r *http.Request) map[string]string {
	return map[string]string{"method": r.Method, "path": r.URL.Path}
}

// fallbackError is sent if a status cannot be marshalled, which should never happen.
const fallbackError = `{"code":13,"message":"failed to marshal error","details":[` +
	`{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"INTERNAL","domain":"pgfleet.dev","metadata":{}}]}`

// writeStatus writes st as the JSON body of an answer with the given HTTP status, with
// exactly one ErrorInfo: one missing gets the reason st's code stands for.
func (g *Gateway) writeStatus(w http.ResponseWriter, st *status.Status, httpStatus int) {
	st, _ = apierr.Ensure(st)
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
