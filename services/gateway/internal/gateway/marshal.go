package gateway

import (
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// marshaler renders every message, request and response, as protojson:
//   - proto field names ("market_cap", "next_page_token"), as the issue asks;
//   - zero values of scalars, empty lists and empty maps included (EmitDefaultValues): a
//     browser client reads "cash": "0" and "positions": [] instead of guessing what a
//     missing key means; an unset message field (a session's summary before it completes)
//     is left out, never null, since the OpenAPI document types it as an object, and a
//     strict client or schema validator refuses null there;
//   - int64 and decimal strings as JSON strings, timestamps as RFC 3339 (protojson's rules);
//   - unknown request fields rejected (400), not dropped: a misspelt "limit_prise" must not
//     turn a limit order into a market order. protojson accepts both "market_cap" and
//     "marketCap" on input.
//
// Server streams are newline-delimited JSON, one {"result": ...} per message; an error after
// the first message ends them with an {"error": ...} line, one before it is answered like a
// unary call's (stream.go).
var marshaler = &jsonMarshaler{JSONPb: runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// jsonMarshaler is runtime.JSONPb naming the media type of its streams.
type jsonMarshaler struct{ runtime.JSONPb }

// StreamContentType implements runtime.StreamContentType.
func (*jsonMarshaler) StreamContentType(any) string { return ndjson }
