package buildinfo_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
)

// TestGet_unstamped: a test binary has no stamp and no VCS information.
func TestGet_unstamped(t *testing.T) {
	t.Parallel()
	got := buildinfo.Get()
	want := buildinfo.Info{Version: "devel", Revision: "unknown", GoVersion: runtime.Version()}
	if got != want {
		t.Errorf("Get() = %+v, want %+v", got, want)
	}
}

// TestLDFlags builds a tiny binary with the Makefile's flags and checks what it reports.
func TestLDFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	main := `package main

import (
	"fmt"

	"github.com/pgfleet/pgfleet/pkg/buildinfo"
)

func main() { fmt.Print(buildinfo.Get()) }
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "stamped")
	// main.go lies outside the module: built as a file list, it resolves pkg/buildinfo from the
	// module the test runs in.
	build := exec.Command("go", "build", "-ldflags", buildinfo.LDFlags("v1.2.3", "abc123"), "-o", bin, filepath.Join(dir, "main.go"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if want := "v1.2.3 (abc123) " + runtime.Version(); strings.TrimSpace(string(out)) != want {
		t.Errorf("stamped binary says %q, want %q", out, want)
	}
}
