package gateway

import (
	"bytes"
	"net/http"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The export route (GET /v1/prices:export, StockService.ExportPrices) with
// format=EXPORT_FORMAT_ARROW answers the raw Arrow IPC stream instead of NDJSON, so that
// `curl -o prices.arrows` and pyarrow.ipc.open_stream (polars.read_ipc_stream) read the
// download as it is:
//
//   - Content-Type application/vnd.apache.arrow.stream (IANA's media type of the Arrow IPC
//     stream format); the body is the concatenation of the messages' arrow_ipc fields: the
//     schema, one record batch per message, the end-of-stream marker after the last;
//   - each record batch but the last carries its message's resume_token in its custom
//     metadata (key "pgfleet.resume_token"): the same request with ?resume_token= goes on
//     after that batch (its body starts with the schema again);
//   - an error before the first byte is the usual HTTP status and JSON body; after it the
//     body just ends: the missing end-of-stream marker (0xFFFFFFFF 0x00000000) tells a cut
//     download from a complete one (a reader cut inside a batch raises, but one cut between
//     two batches may stop as at a real end: clients check the marker, or that the last
//     batch they read had no resume token).
//
// Any server stream whose response message has a bytes field arrow_ipc is served so when
// that field is set: the proto format leaves it empty, so its messages stay NDJSON.

// arrowStream is the media type of the Arrow IPC stream format.
const arrowStream = "application/vnd.apache.arrow.stream"

// arrowContinuation starts every Arrow IPC message, the end-of-stream marker included.
var arrowContinuation = []byte{0xff, 0xff, 0xff, 0xff}

// IsArrowMethod reports whether m is a server stream whose messages may carry an Arrow IPC
// stream (a bytes field arrow_ipc): its REST route may answer application/vnd.apache.arrow.stream.
func IsArrowMethod(m protoreflect.MethodDescriptor) bool {
	fd := m.Output().Fields().ByName("arrow_ipc")
	return m.IsStreamingServer() && !m.IsStreamingClient() && fd != nil && fd.Kind() == protoreflect.BytesKind && !fd.IsList()
}

// arrowBytes returns the Arrow IPC bytes of a stream message, nil if it has none.
func arrowBytes(v any) []byte {
	m, ok := v.(proto.Message)
	if !ok {
		return nil
	}
	r := m.ProtoReflect()
	fd := r.Descriptor().Fields().ByName("arrow_ipc")
	if fd == nil || fd.Kind() != protoreflect.BytesKind || fd.IsList() {
		return nil
	}
	return r.Get(fd).Bytes()
}

// arrowResult returns the Arrow IPC bytes of a stream chunk ({"result": message}), or nil.
func arrowResult(v any) []byte {
	chunk, ok := v.(map[string]any)
	if !ok || len(chunk) != 1 {
		return nil
	}
	return arrowBytes(chunk["result"])
}

// isArrowAnswer reports whether the answer w is writing is an Arrow stream.
func isArrowAnswer(w http.ResponseWriter) bool {
	return w.Header().Get("Content-Type") == arrowStream
}

// arrowWrite filters the writes of an Arrow answer: Arrow messages go out, the stream's
// delimiters and a final {"error": ...} line do not (an Arrow reader would choke on them; the
// missing end-of-stream marker says the download was cut).
func arrowWrite(b []byte) bool { return bytes.HasPrefix(b, arrowContinuation) }
