package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatements(t *testing.T) {
	t.Parallel()
	lines := []string{
		`# a comment line`,
		`A="authorization: Bearer $T"   # the candidate`,
		`grpcurl -d '{"a":"#not a comment"}' \`,
		`  host:1 S/M  # NotFound: not hers`,
		``,
		`SID=$(grpcurl -d '{}' host:1 S/M | jq -r .id)`,
	}
	got := parseStatements(lines, 10)
	want := []statement{
		{line: 11, text: `A="authorization: Bearer $T"`, expect: "the candidate"},
		{line: 12, text: `grpcurl -d '{"a":"#not a comment"}'   host:1 S/M`, expect: "NotFound: not hers"},
		{line: 15, text: `SID=$(grpcurl -d '{}' host:1 S/M | jq -r .id)`},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(statement{})); diff != "" {
		t.Errorf("parseStatements mismatch (-want +got):\n%s", diff)
	}
}

func TestParseStatements_transcript(t *testing.T) {
	t.Parallel()
	got := parseStatements([]string{"$ grpcurl x", "ERROR:", "  Code: NotFound"}, 1)
	want := []statement{{line: 1, text: "grpcurl x", output: "ERROR:\n  Code: NotFound\n", hasOut: true}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(statement{})); diff != "" {
		t.Errorf("parseStatements mismatch (-want +got):\n%s", diff)
	}
}

func TestIsPlainAssignment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{`P=pgfleet.portfolio.v1.PortfolioService`, true},
		{`A="authorization: Bearer $ADA_TOKEN"`, true},
		{`SID=$(grpcurl -d '{"a": 1}' host S/M | jq -r .id)`, true},
		{`JWT_SECRET=x pgfleet-token -sub a@b`, false},
		{`grpcurl -plaintext host list`, false},
	}
	for _, tt := range tests {
		if got := isPlainAssignment(tt.in); got != tt.want {
			t.Errorf("isPlainAssignment(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestStatement_check(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		st     statement
		r      result
		wantOK bool
	}{
		{"grpcurl ok", statement{text: "grpcurl x"}, result{rc: 0, out: "{}"}, true},
		{"grpcurl unannounced error", statement{text: "grpcurl x"}, result{rc: 69, out: "ERROR:\n  Code: NotFound"}, false},
		{"grpcurl announced error", statement{text: "grpcurl x", expect: "NotFound: not hers"}, result{rc: 69, out: "ERROR:\n  Code: NotFound"}, true},
		{"grpcurl announced error missing", statement{text: "grpcurl x", expect: "Unauthenticated"}, result{rc: 0, out: "{}"}, false},
		{"grpcurl optional error absent", statement{text: "grpcurl x", expect: "AlreadyExists if she registered before"}, result{rc: 0}, true},
		{"grpcurl optional error present", statement{text: "grpcurl x", expect: "AlreadyExists if she registered before"}, result{rc: 70, out: "Code: AlreadyExists"}, true},
		{"curl error body", statement{text: "curl -s x"}, result{out: `{"code":5,"message":"not found"}`}, false},
		{"curl announced status", statement{text: "curl -s -i x", expect: "401: no token"}, result{out: "HTTP/1.1 401 Unauthorized\r\n"}, true},
		{"curl unannounced status", statement{text: "curl -s -i x"}, result{out: "HTTP/1.1 503 Service Unavailable\r\n"}, false},
		{"curl ok with -i", statement{text: "curl -s -i x"}, result{out: "HTTP/1.1 200 OK\r\n"}, true},
		{"curl announced status, body only", statement{text: "curl -s x", expect: "404: not hers"}, result{out: `{"code":5,"message":"portfolio 1: not found"}`}, true},
		{"curl announced status, other body", statement{text: "curl -s x", expect: "404: not hers"}, result{out: `{"code":16,"message":"missing bearer token"}`}, false},
		{"curl head cut the pipe", statement{text: "curl -s x | head -c 3"}, result{rc: 23, out: "{\"r"}, true},
		{"transcript equal", statement{text: "grpcurl x", output: "a\n b \n", hasOut: true}, result{out: "a\n b\n"}, true},
		{"transcript differs", statement{text: "grpcurl x", output: "a\n", hasOut: true}, result{out: "b\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.st.check(tt.r); (got == "") != tt.wantOK {
				t.Errorf("check(%+v) = %q, want ok=%v", tt.r, got, tt.wantOK)
			}
		})
	}
}
