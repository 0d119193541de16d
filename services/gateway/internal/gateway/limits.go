package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"

	"google.golang.org/grpc/status"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// limitBody caps request bodies at MaxRequestBytes: a declared length above it is refused
// before anything is read, and a body that turns out longer (chunked) ends the read there.
// grpc-gateway turns any decode failure into INVALID_ARGUMENT text, losing the
// *http.MaxBytesError, so the body records that the limit was hit for handleError to answer 413.
func (g *Gateway) limitBody(next http.Handler) http.Handler {
	limit := g.opts.MaxRequestBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			g.writeStatus(w, tooLarge(limit), http.StatusRequestEntityTooLarge)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			b := &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit)}
			r = r.WithContext(context.WithValue(r.Context(), limitedBodyKey{}, b))
			r.Body = b
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(limit int64) *status.Status {
	return apierr.Newf(apierr.RequestTooLarge, map[string]string{"limit_bytes": strconv.FormatInt(limit, 10)},
		"request body larger than %d bytes", limit).GRPCStatus()
}

type limitedBodyKey struct{}

// limitedBody is a request body that remembers whether it hit the size limit.
type limitedBody struct {
	io.ReadCloser
	exceeded atomic.Bool
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		b.exceeded.Store(true)
	}
	return n, err
}

// bodyTooLarge reports whether r's body was cut off at the size limit.
func bodyTooLarge(r *http.Request) bool {
	b, ok := r.Context().Value(limitedBodyKey{}).(*limitedBody)
	return ok && b.exceeded.Load()
}
