package apptest_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestRawCodec checks that RawCodec encodes what protobuf decodes back unchanged, and
// strings that are not UTF-8, which protobuf would not encode.
func TestRawCodec(t *testing.T) {
	t.Parallel()
	tests := []proto.Message{
		&opsv1.GetDatabaseStatusResponse{},
		&opsv1.GetDatabaseStatusResponse{Status: &opsv1.DatabaseStatus{
			Service: "stock", Health: opsv1.Health_HEALTH_SERVING, ResponseTime: durationpb.New(-time.Second),
			Pool: &opsv1.PoolStats{MaxConns: -1, AcquireCount: math.MaxInt64},
			Locks: []*opsv1.LockInfo{{Resource: "a", Granted: true, Pid: math.MinInt32}, {Resource: "é\x00",
				TransactionStartTime: timestamppb.New(time.Unix(1, 2))}},
			CheckTime: &timestamppb.Timestamp{Seconds: math.MinInt64},
		}},
		wrapperspb.Double(math.Inf(-1)),
		wrapperspb.Float(-1.5),
		wrapperspb.UInt64(math.MaxUint64),
		wrapperspb.UInt32(math.MaxUint32),
		wrapperspb.Bytes([]byte{0, 0xff}),
	}
	for _, want := range tests {
		b, err := apptest.RawCodec{}.Marshal(want)
		if err != nil {
			t.Fatalf("Marshal(%v): %v", want, err)
		}
		got := want.ProtoReflect().New().Interface()
		if err := proto.Unmarshal(b, got); err != nil {
			t.Fatalf("Unmarshal(Marshal(%v)): %v", want, err)
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("round trip mismatch (-want +got):\n%s", diff)
		}
	}

	bad := &opsv1.GetDatabaseStatusResponse{Status: &opsv1.DatabaseStatus{Locks: []*opsv1.LockInfo{{Resource: "a\xffb"}}}}
	if _, err := proto.Marshal(bad); err == nil {
		t.Fatal("proto.Marshal encoded a string that is not UTF-8; RawCodec is not needed")
	}
	b, err := apptest.RawCodec{}.Marshal(bad)
	if err != nil {
		t.Fatalf("Marshal(not UTF-8): %v", err)
	}
	if want := "\x0a\x07\x3a\x05\x0a\x03a\xffb"; string(b) != want {
		t.Errorf("Marshal(not UTF-8) = %q, want %q", b, want)
	}
	if b, err := (apptest.RawCodec{}).Marshal([]byte("as is")); err != nil || string(b) != "as is" {
		t.Errorf("Marshal([]byte) = %q, %v; want it unchanged", b, err)
	}
}

func TestBadAnswer(t *testing.T) {
	t.Parallel()
	with := func(code codes.Code, infos ...*errdetails.ErrorInfo) error {
		st := status.New(code, "message")
		for _, info := range infos {
			st, _ = st.WithDetails(info)
		}
		return st.Err()
	}
	info := func(reason, domain string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Reason: reason, Domain: domain}
	}
	tests := []struct {
		name string
		err  error
		bad  bool
	}{
		{"ok", nil, false},
		{"reasoned", apierr.New(apierr.StockNotFound, "no", nil), false},
		{"internal", apierr.New(apierr.Internal, "internal error", nil), true},
		{"data loss", apierr.New(apierr.DataLoss, "lost", nil), true},
		{"not a status", errors.New("boom"), true},
		{"no ErrorInfo", with(codes.InvalidArgument), true},
		{"two ErrorInfos", with(codes.NotFound, info("STOCK_NOT_FOUND", apierr.Domain), info("NOT_FOUND", apierr.Domain)), true},
		{"reason of another code", with(codes.NotFound, info("INVALID_FIELD", apierr.Domain)), true},
		{"reason undefined", with(codes.NotFound, info("NOPE", apierr.Domain)), true},
		{"other domain", with(codes.NotFound, info("STOCK_NOT_FOUND", "example.com")), true},
	}
	for _, tt := range tests {
		if got := apptest.BadAnswer(tt.err); (got != "") != tt.bad {
			t.Errorf("%s: BadAnswer(%v) = %q, want bad %t", tt.name, tt.err, got, tt.bad)
		}
	}
}
