package telemetry

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
)

// RequestIDHeader is the HTTP header, and RequestIDKey the gRPC metadata key, that carry a
// request id: taken from the caller when it sends a valid one, else made at the edge, passed
// on to every peer, logged on every line of the call when it has no recording span, and
// returned to REST clients.
const (
	RequestIDHeader = "X-Request-Id"
	RequestIDKey    = "x-request-id"
)

// maxRequestIDLen bounds an id taken from a caller.
const maxRequestIDLen = 128

type requestIDKey struct{}

// WithRequestID returns ctx carrying id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// RequestIDFrom returns the caller's id if it is valid (1 to 128 characters of letters,
// digits and - _ . : /), else a new one: a caller cannot put what it likes in our logs.
func RequestIDFrom(callers string) string {
	if validRequestID(callers) {
		return callers
	}
	return NewRequestID()
}

// NewRequestID returns 32 random hex digits, the shape of a trace id. Not a secret, so a
// fast generator will do.
func NewRequestID() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		u := rand.Uint64()
		for j := range 8 {
			b[i+j] = byte(u >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLen {
		return false
	}
	for i := range len(id) {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '-', c == '_', c == '.', c == ':', c == '/':
		default:
			return false
		}
	}
	return true
}
