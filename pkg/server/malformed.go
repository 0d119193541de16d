package server

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// A request that is not protobuf of its message type (a truncated varint, an invalid wire
// type, a proto3 string that is not UTF-8) is the client's mistake: INVALID_ARGUMENT
// MALFORMED_REQUEST, as the gateway answers malformed JSON. grpc decodes the request before
// any interceptor runs and turns every codec error into INTERNAL "grpc: error unmarshalling
// request" (recv in grpc's rpc_util.go), without an ErrorInfo, and for a unary call our
// interceptors never see the call at all; the codec cannot choose the status.
//
// So the server's codec lets the call through with the message reset and a mark in its
// unknown fields that says why it could not be read; the malformed interceptors, which
// see every request (unary) and every received message (streams) before anything else
// reads it, answer the mark with the status. The mark is carried by the message itself, so
// nothing is left behind when a call ends early, and it cannot be forged: it starts with a
// tag of wire type 7, which no message that decoded can hold.

// malformedTag is field 1 with wire type 7, which protobuf does not define: a decoder
// refuses it, so unknown fields that start with it were put there by decodeCodec.
const malformedTag = 1<<3 | 7

// decodeCodec is grpc's proto codec, except that a request it cannot decode is marked
// instead of failing the call (see above). The server only: a client keeps grpc's codec,
// whose failure for a malformed answer is right where it is.
type decodeCodec struct {
	encoding.CodecV2
}

func newDecodeCodec() decodeCodec {
	return decodeCodec{CodecV2: encoding.GetCodecV2(protocodec.Name)}
}

// Unmarshal decodes data into v; if v is a protobuf message that data is not, v is reset
// and marked with the error, and Unmarshal reports success.
func (c decodeCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	m, ok := v.(proto.Message)
	if err == nil || !ok {
		return err
	}
	proto.Reset(m)
	m.ProtoReflect().SetUnknown(append([]byte{malformedTag}, err.Error()...))
	return nil
}

// malformed returns the status for a message marked by decodeCodec, or nil for any other.
func malformed(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	u := m.ProtoReflect().GetUnknown()
	if len(u) == 0 || u[0] != malformedTag {
		return nil
	}
	name := string(m.ProtoReflect().Descriptor().FullName())
	// protobuf's errors sometimes put a non-breaking space after "proto:", on purpose, so
	// that nobody compares them; people read it as a space.
	cause := strings.ReplaceAll(string(u[1:]), "\u00a0", " ")
	return apierr.Newf(apierr.MalformedRequest, map[string]string{"message": name},
		"request is not a valid %s message: %s", name, cause)
}

func malformedUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := malformed(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func malformedStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &malformedCheckingStream{ss})
}

// malformedCheckingStream ends a stream with MALFORMED_REQUEST at the first message that
// could not be decoded: the request of a server stream, or any message of a client stream.
type malformedCheckingStream struct {
	grpc.ServerStream
}

func (s *malformedCheckingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return malformed(m)
}
