package replica_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

func TestToken_roundTrip(t *testing.T) {
	t.Parallel()
	for _, l := range []pgserver.LSN{0, 1, 0x16B3748, 0xFFFFFFFF00000000, 1<<64 - 1} {
		tok := replica.Token(l)
		got, err := replica.ParseToken(tok)
		if err != nil || got != l {
			t.Errorf("ParseToken(Token(%v) = %q) = %v, %v; want %v", l, tok, got, err, l)
		}
		if strings.ContainsAny(tok, "+/= ") {
			t.Errorf("Token(%v) = %q: not safe as it is in an HTTP header or a URL", l, tok)
		}
	}
}

func TestParseToken_malformed(t *testing.T) {
	t.Parallel()
	good := replica.Token(0x16B3748)
	for _, tok := range []string{
		"",
		"not a token!",
		"0/16B3748",               // an LSN as PostgreSQL prints it, not a token
		good[:len(good)-1],        // cut short
		good + "AA",               // too long
		"AgAAAAAAAAAA",            // version 2 (9 bytes, first 2)
		"AAAAAAAAAAAA",            // version 0
		good[:4] + "+" + good[5:], // standard base64's alphabet
	} {
		if tok == good {
			continue
		}
		_, err := replica.ParseToken(tok)
		st := status.Convert(err)
		if err == nil || st.Code() != codes.InvalidArgument || apierr.ReasonOf(err) != apierr.ConsistencyTokenMalformed {
			t.Errorf("ParseToken(%q) = %v, want INVALID_ARGUMENT %s", tok, err, apierr.ConsistencyTokenMalformed)
			continue
		}
		if !strings.Contains(st.Message(), replica.TokenHeader) {
			t.Errorf("ParseToken(%q): message %q does not name %s", tok, st.Message(), replica.TokenHeader)
		}
	}
}

// testFile is a service with a read (NO_SIDE_EFFECTS) and a write, registered once in the
// global registry, where Routes.Check learns whether a method writes.
var testFile = func() protoreflect.FileDescriptor {
	noSideEffects := descriptorpb.MethodOptions_NO_SIDE_EFFECTS
	name := func(s string) *string { return &s }
	fdp := &descriptorpb.FileDescriptorProto{
		Name: name("pgfleet/replicatest/v1/routes.proto"), Package: name("pgfleet.replicatest.v1"), Syntax: name("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: name("Empty")}},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: name("NotesService"), Method: []*descriptorpb.MethodDescriptorProto{
			{Name: name("GetNote"), InputType: name(".pgfleet.replicatest.v1.Empty"), OutputType: name(".pgfleet.replicatest.v1.Empty"),
				Options: &descriptorpb.MethodOptions{IdempotencyLevel: &noSideEffects}},
			{Name: name("WriteNote"), InputType: name(".pgfleet.replicatest.v1.Empty"), OutputType: name(".pgfleet.replicatest.v1.Empty")},
		}}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
		panic(err)
	}
	return fd
}()

func TestRoutes_Check(t *testing.T) {
	t.Parallel()
	const get, write = "/pgfleet.replicatest.v1.NotesService/GetNote", "/pgfleet.replicatest.v1.NotesService/WriteNote"
	tests := []struct {
		name   string
		routes replica.Routes
		want   []string // in the error, each; none: no error
	}{
		{"every method routed", replica.Routes{get: replica.Replica, write: replica.Primary}, nil},
		{"reads on the primary too", replica.Routes{get: replica.Primary, write: replica.Primary}, nil},
		{"missing route", replica.Routes{get: replica.Replica}, []string{write + ": no route"}},
		{"zero Where is no route", replica.Routes{get: replica.Replica, write: 0}, []string{write + ": no route"}},
		{"unknown name", replica.Routes{get: replica.Replica, write: replica.Primary, "/pgfleet.replicatest.v1.NotesService/GetNotes": replica.Replica},
			[]string{"GetNotes is routed but is no method"}},
		{"write routed to Replica", replica.Routes{get: replica.Replica, write: replica.Replica}, []string{write + " writes"}},
		{"all at once", replica.Routes{write: replica.Replica, "/x.Y/Z": replica.Primary},
			[]string{get + ": no route", write + " writes", "/x.Y/Z is routed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.routes.Check(testFile)
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Check = %v, want nil", err)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %v, want an error containing %q", err, w)
				}
			}
		})
	}
	t.Run("no files", func(t *testing.T) {
		t.Parallel()
		if err := (replica.Routes{}).Check(); err == nil {
			t.Error("Check() of no files = nil, want an error: nothing was checked")
		}
	})
}
