package replica

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"net/textproto"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

// TokenHeader is the metadata key of the consistency token: every successful write answers
// with one (response header); a read that sends it back sees that write. Through the gateway
// it is the HTTP header of the same name, both ways.
const TokenHeader = "pgfleet-consistency-token"

// TokenHTTPHeader is TokenHeader as an HTTP header is written.
var TokenHTTPHeader = textproto.CanonicalMIMEHeaderKey(TokenHeader)

// tokenVersion is the first byte of a token, so that its form may change.
const tokenVersion = 1

// Token returns the consistency token naming WAL position l. Clients treat it as opaque.
func Token(l pgserver.LSN) string {
	b := make([]byte, 9)
	b[0] = tokenVersion
	binary.BigEndian.PutUint64(b[1:], uint64(l))
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken returns the WAL position a token names, or an INVALID_ARGUMENT status with
// reason CONSISTENCY_TOKEN_MALFORMED.
func ParseToken(s string) (pgserver.LSN, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 9 || b[0] != tokenVersion {
		return 0, apierr.New(apierr.ConsistencyTokenMalformed,
			TokenHeader+" is not a token this service gave: send back the value of a write's "+TokenHeader+" header as it came", nil)
	}
	return pgserver.LSN(binary.BigEndian.Uint64(b[1:])), nil
}

// tokenFrom returns the call's consistency token's position, if it sent one.
func tokenFrom(ctx context.Context) (pgserver.LSN, bool, error) {
	vals := metadata.ValueFromIncomingContext(ctx, TokenHeader)
	if len(vals) == 0 || vals[len(vals)-1] == "" {
		return 0, false, nil
	}
	l, err := ParseToken(vals[len(vals)-1])
	return l, err == nil, err
}

// Writes tells a write RPC from a read: a method whose proto declares idempotency_level
// NO_SIDE_EFFECTS reads, any other writes and answers with a consistency token. The gateway's
// OpenAPI document tells them apart by the same rule.
func Writes(m protoreflect.MethodDescriptor) bool {
	opts, ok := m.Options().(*descriptorpb.MethodOptions)
	return !ok || opts.GetIdempotencyLevel() != descriptorpb.MethodOptions_NO_SIDE_EFFECTS
}

// isWrite is Writes by full method name: a method whose proto declares idempotency_level
// NO_SIDE_EFFECTS reads, any other writes. The interceptors ask it only of the service's
// routed methods, not of health, reflection or DatabaseMonitor.
func isWrite(fullMethod string) bool {
	// gRPC's own services are in the registry too, with no idempotency_level: without this,
	// every health check (probes, the gateway's /health) would query the primary for a token.
	if strings.HasPrefix(fullMethod, "/grpc.") {
		return false
	}
	name := protoreflect.FullName(fullMethod[1:]) // "/pkg.Service/Method" -> "pkg.Service/Method"
	for i := len(name) - 1; i >= 0; i-- {
		if name[i] == '/' {
			name = name[:i] + "." + name[i+1:]
			break
		}
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return false
	}
	m, ok := d.(protoreflect.MethodDescriptor)
	return ok && Writes(m)
}

// writes returns the set of routed methods that write, once per interceptor.
func (routes Routes) writes() map[string]bool {
	w := map[string]bool{}
	for m := range routes {
		if isWrite(m) {
			w[m] = true
		}
	}
	return w
}

// tokenWait bounds the query of a write's token after the write committed.
const tokenWait = time.Second

// writeToken returns the token of the primary's WAL insert position now, after a write
// committed: past its commit record. Not the write position (pg_current_wal_lsn): under
// synchronous_commit=off a commit record may still wait in the WAL buffers, behind it, and a
// replica at that position would serve a read that does not see the write. "" (logged) if
// the primary does not answer: the write stands, its answer goes without a token.
func (r *Router) writeToken(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tokenWait)
	defer cancel()
	l, err := lsn(ctx, r.primary, "SELECT pg_current_wal_insert_lsn()::text")
	if err != nil {
		r.log.WarnContext(ctx, "write's consistency token: WAL position unknown, answer without a token", "err", err)
		return ""
	}
	return Token(l)
}

// start prepares a call: a malformed token is refused; a Replica method's context is marked
// for DB (reading on a replica that has replayed the token's position, if any). end, once
// the handler has returned, gives back what the call held.
func (r *Router) start(ctx context.Context, fullMethod string, routes Routes) (_ context.Context, end func(), _ error) {
	l, has, err := tokenFrom(ctx)
	if err != nil {
		return ctx, nil, err
	}
	if routes[fullMethod] != Replica || len(r.replicas) == 0 {
		return ctx, func() {}, nil
	}
	ctx, c := withCall(ctx, l, has)
	return ctx, c.release, nil
}

// UnaryInterceptor routes each call's reads as routes says (see DB) and gives every
// successful write its consistency token (TokenHeader, in the response header).
func (r *Router) UnaryInterceptor(routes Routes) grpc.UnaryServerInterceptor {
	writes := routes.writes()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, end, err := r.start(ctx, info.FullMethod, routes)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, req)
		end()
		if err == nil && writes[info.FullMethod] {
			if tok := r.writeToken(ctx); tok != "" {
				_ = grpc.SetHeader(ctx, metadata.Pairs(TokenHeader, tok)) // fails only once headers went
			}
		}
		return resp, err
	}
}

// StreamInterceptor is UnaryInterceptor for streams: a write stream's token goes in the header
// of its first answer, which a client stream (IngestPrices) sends after its commit.
func (r *Router) StreamInterceptor(routes Routes) grpc.StreamServerInterceptor {
	writes := routes.writes()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, end, err := r.start(ss.Context(), info.FullMethod, routes)
		if err != nil {
			return err
		}
		defer end()
		return handler(srv, &routedStream{ServerStream: ss, ctx: ctx, r: r, write: writes[info.FullMethod]})
	}
}

type routedStream struct {
	grpc.ServerStream
	ctx   context.Context
	r     *Router
	write bool
	sent  bool
}

func (s *routedStream) Context() context.Context { return s.ctx }

func (s *routedStream) SendMsg(m any) error {
	if s.write && !s.sent {
		s.sent = true
		if tok := s.r.writeToken(s.ctx); tok != "" {
			_ = s.SetHeader(metadata.Pairs(TokenHeader, tok))
		}
	}
	return s.ServerStream.SendMsg(m)
}
