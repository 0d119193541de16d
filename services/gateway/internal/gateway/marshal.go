package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
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
// unary call's (stream.go). Watch streams are server-sent events instead (sse.go).
var marshaler = &jsonMarshaler{JSONPb: runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// jsonMarshaler is runtime.JSONPb naming the media type of its streams.
type jsonMarshaler struct{ runtime.JSONPb }

// StreamContentType implements runtime.StreamContentType: server-sent events for a Watch
// RPC's messages, NDJSON for other streams'.
func (*jsonMarshaler) StreamContentType(v any) string {
	if arrowBytes(v) != nil {
		return arrowStream // an Arrow export's messages (arrow.go)
	}
	if m, ok := v.(proto.Message); ok && watchOutputs()[m.ProtoReflect().Descriptor().FullName()] {
		return eventStream
	}
	return ndjson
}

// Marshal renders v as runtime.JSONPb does, but for a Watch RPC's stream message, which
// becomes an event's fields (sse.go); the stream's delimiter, "\n", ends the event.
func (m *jsonMarshaler) Marshal(v any) ([]byte, error) {
	if b := arrowResult(v); b != nil {
		return b, nil // raw Arrow IPC (arrow.go)
	}
	msg := watchResult(v)
	if msg == nil {
		return m.JSONPb.Marshal(v)
	}
	data, err := m.JSONPb.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return appendEvent(nil, cursorOf(msg), "", data), nil
}

// NewDecoder reads request bodies as runtime.JSONPb does, one JSON value per Decode, and
// refuses a body that holds anything but whitespace after its value ({"a":1}{"b":2},
// {} garbage): grpc-gateway decodes one value and discards the rest of the body, so the
// extra data was silently dropped, and a client that sent two requests in one body, or a
// truncated-and-retried one, got an answer to the first alone. The body is read to its end
// for that, which grpc-gateway does anyway (bounded by MAX_REQUEST_BYTES). A client
// stream's body (IngestPrices) is a sequence of values by design: its messages are exempt,
// and a malformed later value fails that value's Decode.
func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{
		DecoderWrapper: runtime.DecoderWrapper{Decoder: json.NewDecoder(r), UnmarshalOptions: m.UnmarshalOptions},
		r:              r,
	}
}

// bodyDecoder is runtime.DecoderWrapper checking that a unary request's body ends after its
// value.
type bodyDecoder struct {
	runtime.DecoderWrapper
	r io.Reader // what the json.Decoder reads from, past what it has buffered
}

func (d *bodyDecoder) Decode(v any) error {
	if err := d.DecoderWrapper.Decode(v); err != nil {
		return err
	}
	if m, ok := v.(proto.Message); ok && clientStreamInputs()[m.ProtoReflect().Descriptor().FullName()] {
		return nil
	}
	return onlySpaceLeft(io.MultiReader(d.Buffered(), d.r))
}

// onlySpaceLeft reads r to its end and fails at the first byte that is not JSON whitespace.
func onlySpaceLeft(r io.Reader) error {
	buf := make([]byte, 512)
	for {
		n, err := r.Read(buf)
		for _, c := range buf[:n] {
			switch c {
			case ' ', '\t', '\n', '\r':
			default:
				return fmt.Errorf("unexpected %q after the JSON value: a body holds exactly one", c)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err // a body over MAX_REQUEST_BYTES: handleError answers 413
		}
	}
}

// clientStreamInputs are the request messages of the client-streaming methods of every
// service linked into the gateway, whose REST bodies are a sequence of JSON values.
var clientStreamInputs = sync.OnceValue(func() map[protoreflect.FullName]bool {
	inputs := map[protoreflect.FullName]bool{}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			methods := fd.Services().Get(i).Methods()
			for j := range methods.Len() {
				if m := methods.Get(j); m.IsStreamingClient() {
					inputs[m.Input().FullName()] = true
				}
			}
		}
		return true
	})
	return inputs
})
