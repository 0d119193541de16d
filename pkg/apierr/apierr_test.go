package apierr_test

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
)

func TestNew(t *testing.T) {
	t.Parallel()
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "amount", Description: "must be positive"}}}
	tests := []struct {
		name        string
		err         *apierr.Error
		wantCode    codes.Code
		wantDetails []any
	}{
		{
			name:     "metadata",
			err:      apierr.New(apierr.InsufficientCash, "insufficient cash", map[string]string{"portfolio_id": "1", "available": "20"}),
			wantCode: codes.FailedPrecondition,
			wantDetails: []any{&errdetails.ErrorInfo{Reason: "INSUFFICIENT_CASH", Domain: "pgfleet.dev",
				Metadata: map[string]string{"portfolio_id": "1", "available": "20"}}},
		},
		{
			name:     "default_retry",
			err:      apierr.New(apierr.ConcurrencyConflict, "conflict", nil),
			wantCode: codes.Aborted,
			wantDetails: []any{&errdetails.ErrorInfo{Reason: "CONCURRENCY_CONFLICT", Domain: "pgfleet.dev"},
				&errdetails.RetryInfo{RetryDelay: durationpb.New(100 * time.Millisecond)}},
		},
		{
			name:     "retry_replaced",
			err:      apierr.New(apierr.DatabaseUnavailable, "down", nil).WithRetry(5 * time.Second),
			wantCode: codes.Unavailable,
			wantDetails: []any{&errdetails.ErrorInfo{Reason: "DATABASE_UNAVAILABLE", Domain: "pgfleet.dev"},
				&errdetails.RetryInfo{RetryDelay: durationpb.New(5 * time.Second)}},
		},
		{
			name:        "extra_details",
			err:         apierr.Newf(apierr.InvalidField, map[string]string{"fields": "amount"}, "invalid %s", "amount").WithDetails(bad),
			wantCode:    codes.InvalidArgument,
			wantDetails: []any{&errdetails.ErrorInfo{Reason: "INVALID_FIELD", Domain: "pgfleet.dev", Metadata: map[string]string{"fields": "amount"}}, bad},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Wrapped, as it leaves a transaction: the status survives.
			st := status.Convert(fmt.Errorf("write: %w", tt.err))
			if st.Code() != tt.wantCode {
				t.Errorf("code = %v, want %v", st.Code(), tt.wantCode)
			}
			if diff := cmp.Diff(tt.wantDetails, st.Details(), protocmp.Transform()); diff != "" {
				t.Errorf("details mismatch (-want +got):\n%s", diff)
			}
			if got := apierr.ReasonOf(tt.err); got != tt.err.Reason {
				t.Errorf("ReasonOf = %q, want %q", got, tt.err.Reason)
			}
		})
	}
}

// TestNew_invalidUTF8: a message or metadata echoing bytes that are not UTF-8 (a request
// path) still makes a status whose details marshal.
func TestNew_invalidUTF8(t *testing.T) {
	t.Parallel()
	e := apierr.New(apierr.RouteNotFound, "no route for GET /ui/\xff", map[string]string{"path": "/ui/\xff"})
	st := e.GRPCStatus()
	info := apierr.Info(st)
	if info.GetMetadata()["path"] != "/ui/\uFFFD" || st.Message() != "no route for GET /ui/\uFFFD" {
		t.Errorf("status = %v with ErrorInfo %v, want U+FFFD for the invalid byte", st, info)
	}
	fixed, _ := apierr.Ensure(status.New(codes.InvalidArgument, "parsing \"\xc3(\""))
	if _, err := proto.Marshal(fixed.Proto()); err != nil {
		t.Errorf("Ensure's status does not marshal: %v", err)
	}
}

func TestError_Is(t *testing.T) {
	t.Parallel()
	err := fmt.Errorf("update: %w", apierr.New(apierr.StaleEtag, "stale", nil))
	if !errors.Is(err, &apierr.Error{Reason: apierr.StaleEtag}) {
		t.Errorf("errors.Is(%v, StaleEtag) = false", err)
	}
	if errors.Is(err, &apierr.Error{Reason: apierr.Oversell}) {
		t.Errorf("errors.Is(%v, Oversell) = true", err)
	}
}

func TestEnsure(t *testing.T) {
	t.Parallel()
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "x", Description: "bad"}}}
	info := func(r string) *errdetails.ErrorInfo { return &errdetails.ErrorInfo{Reason: r, Domain: "pgfleet.dev"} }
	tests := []struct {
		name        string
		st          *status.Status
		wantOK      bool
		wantDetails []any
	}{
		{"none", status.New(codes.Canceled, "context canceled"), false, []any{info("CANCELLED")}},
		{"none_keeps_others", mustDetails(t, status.New(codes.InvalidArgument, "bad"), bad), false, []any{info("INVALID_ARGUMENT"), bad}},
		{"one", mustDetails(t, status.New(codes.NotFound, "gone"), info("STOCK_NOT_FOUND")), true, []any{info("STOCK_NOT_FOUND")}},
		{"two", mustDetails(t, status.New(codes.NotFound, "gone"), bad, info("STOCK_NOT_FOUND"), info("NOT_FOUND")), false,
			[]any{info("STOCK_NOT_FOUND"), bad}},
		{"ok", status.New(codes.OK, ""), true, []any{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := apierr.Ensure(tt.st)
			if ok != tt.wantOK {
				t.Errorf("Ensure ok = %v, want %v", ok, tt.wantOK)
			}
			if got.Code() != tt.st.Code() || got.Message() != tt.st.Message() {
				t.Errorf("Ensure = %v, want code and message of %v", got, tt.st)
			}
			if diff := cmp.Diff(tt.wantDetails, got.Details(), protocmp.Transform()); diff != "" {
				t.Errorf("details mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func mustDetails(t *testing.T, st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	t.Helper()
	st, err := st.WithDetails(details...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestReasons holds the Reason constants, the table behind Code and docs/errors.md to one
// another: every constant is in the table and the document with its code, and the document
// lists nothing else.
func TestReasons(t *testing.T) {
	t.Parallel()
	consts := reasonConstants(t)
	if diff := cmp.Diff(apierr.All(), consts); diff != "" {
		t.Errorf("Reason constants and the reasons table differ (-table +constants):\n%s", diff)
	}
	upperSnake := regexp.MustCompile(`^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$`)
	for _, r := range consts {
		if !upperSnake.MatchString(string(r)) {
			t.Errorf("reason %q is not UPPER_SNAKE_CASE", r)
		}
	}
	for c := codes.Canceled; c <= codes.Unauthenticated; c++ {
		if r := apierr.ForCode(c); r.Code() != c {
			t.Errorf("ForCode(%v) = %s, sent with %v", c, r, r.Code())
		}
	}

	documented := docReasons(t)
	var listed []apierr.Reason
	for r, code := range documented {
		listed = append(listed, r)
		if want := string(apierr.ForCode(r.Code())); code != want {
			t.Errorf("docs/errors.md: %s is sent with %s, the document says %s", r, want, code)
		}
	}
	slices.Sort(listed)
	if diff := cmp.Diff(consts, listed); diff != "" {
		t.Errorf("docs/errors.md and the Reason constants differ (-code +docs):\n%s", diff)
	}
}

// reasonConstants parses reasons.go for the constants of type Reason, sorted.
func reasonConstants(t *testing.T) []apierr.Reason {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "reasons.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []apierr.Reason
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Reason" {
				continue
			}
			for _, v := range vs.Values {
				lit := v.(*ast.BasicLit)
				out = append(out, apierr.Reason(strings.Trim(lit.Value, `"`)))
			}
		}
	}
	slices.Sort(out)
	return out
}

// docRow is a row of docs/errors.md's reason tables: | `REASON` | `CODE` | HTTP | meaning |.
var docRow = regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| `([A-Z_]+)` \\|")

// docReasons returns the reasons docs/errors.md lists, with the code it gives each.
func docReasons(t *testing.T) map[apierr.Reason]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/errors.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[apierr.Reason]string{}
	for line := range strings.Lines(string(b)) {
		m := docRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if _, dup := out[apierr.Reason(m[1])]; dup {
			t.Errorf("docs/errors.md lists %s twice", m[1])
		}
		out[apierr.Reason(m[1])] = m[2]
	}
	return out
}

// TestReasons_readme holds the README's Errors section to the code: it points at
// docs/errors.md (which TestReasons holds to every reason), and each upper-case name it shows
// is a reason or a gRPC code, so the front door names nothing that is not sent.
func TestReasons_readme(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Errors\n")
	if !ok {
		t.Fatal("README.md has no \"## Errors\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	if !strings.Contains(section, "(docs/errors.md)") {
		t.Error("README.md's Errors section does not link docs/errors.md")
	}
	known := map[string]bool{}
	for _, r := range reasonConstants(t) {
		known[string(r)] = true
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		known[string(apierr.ForCode(c))] = true
	}
	name := regexp.MustCompile("`([A-Z][A-Z0-9_]*)`")
	matches := name.FindAllStringSubmatch(section, -1)
	if len(matches) == 0 {
		t.Fatal("README.md's Errors section names no reason")
	}
	for _, m := range matches {
		if !known[m[1]] {
			t.Errorf("README.md's Errors section names %s, which is neither a reason nor a gRPC code", m[1])
		}
	}
}
