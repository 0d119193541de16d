package gateway

import (
	"net/textproto"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/pgfleet/pgfleet/pkg/replica"
)

// TokenHeader is the HTTP header of the consistency token (replica.TokenHeader), both ways:
// every successful write answers with it; a read that sends it back sees that write.
var TokenHeader = replica.TokenHTTPHeader

// incomingHeader passes the consistency token to the services as gRPC metadata under its own
// name (the services read and check it: a malformed one is 400 CONSISTENCY_TOKEN_MALFORMED),
// and the other headers as grpc-gateway does by default.
func incomingHeader(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == TokenHeader {
		return replica.TokenHeader, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader answers the services' consistency token as the HTTP header of the same
// name, and their other response metadata as grpc-gateway does by default (Grpc-Metadata-*).
func outgoingHeader(key string) (string, bool) {
	if key == replica.TokenHeader {
		return TokenHeader, true
	}
	return runtime.MetadataHeaderPrefix + key, true
}
