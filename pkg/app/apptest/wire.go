package apptest

import (
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// RawCodec is a grpc codec (grpc.ForceCodec(apptest.RawCodec{})) that sends a message as is,
// strings that are not UTF-8 included, which protobuf's own encoder refuses to encode: a
// client sending what no generated client would, for fuzz targets and bad-input tests. It
// sends a []byte unchanged. Answers are decoded as protobuf.
type RawCodec struct{}

// Marshal encodes v, a proto.Message or a []byte.
func (RawCodec) Marshal(v any) ([]byte, error) {
	switch v := v.(type) {
	case []byte:
		return v, nil
	case proto.Message:
		return appendMessage(nil, v.ProtoReflect())
	}
	return nil, fmt.Errorf("apptest.RawCodec: cannot marshal %T", v)
}

// Unmarshal decodes data into v, a proto.Message.
func (RawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }

// Name is "proto": the server reads the request as protobuf.
func (RawCodec) Name() string { return "proto" }

// appendMessage appends m's wire encoding to b: each set field, repeated ones unpacked
// (which decoders accept for packed fields too), strings without a UTF-8 check.
func appendMessage(b []byte, m protoreflect.Message) (_ []byte, err error) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			err = fmt.Errorf("apptest.RawCodec: map field %s is not supported", fd.FullName())
		case fd.IsList():
			for i := 0; i < v.List().Len() && err == nil; i++ {
				b, err = appendValue(b, fd, v.List().Get(i))
			}
		default:
			b, err = appendValue(b, fd, v)
		}
		return err == nil
	})
	return append(b, m.GetUnknown()...), err
}

func appendValue(b []byte, fd protoreflect.FieldDescriptor, v protoreflect.Value) ([]byte, error) {
	n := fd.Number()
	switch fd.Kind() {
	case protoreflect.StringKind:
		return protowire.AppendString(protowire.AppendTag(b, n, protowire.BytesType), v.String()), nil
	case protoreflect.BytesKind:
		return protowire.AppendBytes(protowire.AppendTag(b, n, protowire.BytesType), v.Bytes()), nil
	case protoreflect.MessageKind:
		sub, err := appendMessage(nil, v.Message())
		return protowire.AppendBytes(protowire.AppendTag(b, n, protowire.BytesType), sub), err
	case protoreflect.BoolKind:
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), protowire.EncodeBool(v.Bool())), nil
	case protoreflect.EnumKind:
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), uint64(v.Enum())), nil
	case protoreflect.Int32Kind, protoreflect.Int64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), uint64(v.Int())), nil
	case protoreflect.Sint32Kind, protoreflect.Sint64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), protowire.EncodeZigZag(v.Int())), nil
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
		return protowire.AppendVarint(protowire.AppendTag(b, n, protowire.VarintType), v.Uint()), nil
	case protoreflect.Fixed32Kind:
		return protowire.AppendFixed32(protowire.AppendTag(b, n, protowire.Fixed32Type), uint32(v.Uint())), nil
	case protoreflect.Sfixed32Kind:
		return protowire.AppendFixed32(protowire.AppendTag(b, n, protowire.Fixed32Type), uint32(v.Int())), nil
	case protoreflect.FloatKind:
		return protowire.AppendFixed32(protowire.AppendTag(b, n, protowire.Fixed32Type), math.Float32bits(float32(v.Float()))), nil
	case protoreflect.Fixed64Kind:
		return protowire.AppendFixed64(protowire.AppendTag(b, n, protowire.Fixed64Type), v.Uint()), nil
	case protoreflect.Sfixed64Kind:
		return protowire.AppendFixed64(protowire.AppendTag(b, n, protowire.Fixed64Type), uint64(v.Int())), nil
	case protoreflect.DoubleKind:
		return protowire.AppendFixed64(protowire.AppendTag(b, n, protowire.Fixed64Type), math.Float64bits(v.Float())), nil
	}
	return b, fmt.Errorf("apptest.RawCodec: field %s of kind %v is not supported", fd.FullName(), fd.Kind())
}

// BadAnswer returns what is wrong with err as a service's answer to any request, however
// malformed, or "" for nothing: INTERNAL, UNKNOWN and DATA_LOSS say that input reached
// where it should not (PostgreSQL refusing a NUL, an overflow), and every error must carry
// exactly one google.rpc.ErrorInfo of domain pgfleet.dev with a reason pkg/apierr defines
// for its code.
func BadAnswer(err error) string {
	if err == nil {
		return ""
	}
	st := status.Convert(err)
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return fmt.Sprintf("%v %q", st.Code(), st.Message())
	}
	if n := apierr.Count(st); n != 1 {
		return fmt.Sprintf("%v %q with %d ErrorInfos, want 1", st.Code(), st.Message(), n)
	}
	info := apierr.Info(st)
	if r := apierr.Reason(info.GetReason()); info.GetDomain() != apierr.Domain || r.Code() != st.Code() {
		return fmt.Sprintf("%v %q with reason %s of domain %q, not one pkg/apierr defines for the code",
			st.Code(), st.Message(), r, info.GetDomain())
	}
	return ""
}
