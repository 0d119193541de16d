// Command protodeps writes the .proto sources of the googleapis files the protos import
// (google/api/field_behavior.proto), printed from the descriptors compiled into
// google.golang.org/genproto. The Buf Schema Registry is unreachable here, so buf takes them
// from the Go module the generated code links against anyway: the two cannot drift.
//
// Usage: go run ./deploy/protodeps DIR
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/jhump/protoreflect/v2/protoprint"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: protodeps DIR")
		os.Exit(2)
	}
	if err := write(os.Args[1], annotations.File_google_api_field_behavior_proto); err != nil {
		fmt.Fprintln(os.Stderr, "protodeps:", err)
		os.Exit(1)
	}
}

// write prints fd as a .proto file under dir, at its import path.
func write(dir string, fd protoreflect.FileDescriptor) error {
	path := filepath.Join(dir, filepath.FromSlash(fd.Path()))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	p := protoprint.Printer{SortElements: false}
	if err := p.PrintProtoFile(fd, f); err != nil {
		f.Close()
		return fmt.Errorf("print %s: %w", fd.Path(), err)
	}
	return f.Close()
}
