package openapi_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/services/gateway/internal/openapi"
)

// npmDir holds the OpenAPI tools the API's users run, pinned by package-lock.json and
// installed by `make openapi-tools` (npm ci), which `make test` runs first.
const npmDir = "testdata/npm"

// TestTools runs those tools on the documents the gateway serves: redocly's recommended
// rules on both (no errors; warnings are logged), openapi-typescript on the OpenAPI 3 one,
// and tsc on client.ts, an openapi-fetch client of the types it generated.
func TestTools(t *testing.T) {
	t.Parallel()
	npm, err := filepath.Abs(npmDir)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(npm, "node_modules", ".bin")
	if _, err := os.Stat(filepath.Join(bin, "openapi-typescript")); err != nil {
		t.Fatalf("the OpenAPI tools are not installed (%v): run `make openapi-tools` "+
			"(npm ci in %s; needs Node.js 20.19 or later and the npm registry)", err, npmDir)
	}
	v2, err := openapi.Merged()
	if err != nil {
		t.Fatal(err)
	}
	v3, err := openapi.V3(v2)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	docs := map[string][]byte{"openapi.json": v2, "openapi.v3.json": v3}
	for name, b := range docs {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, name := range []string{"openapi.json", "openapi.v3.json"} {
		t.Run("redocly/"+name, func(t *testing.T) {
			t.Parallel()
			out := run(t, npm, filepath.Join(bin, "redocly"), "lint", "--config", filepath.Join(npm, "redocly.yaml"),
				"--format", "json", filepath.Join(dir, name))
			var report struct {
				Totals   struct{ Errors, Warnings int } `json:"totals"`
				Problems []struct {
					RuleID   string `json:"ruleId"`
					Severity string `json:"severity"`
					Message  string `json:"message"`
					Location []struct {
						Pointer string `json:"pointer"`
					} `json:"location"`
				} `json:"problems"`
			}
			if err := json.Unmarshal(out, &report); err != nil {
				t.Fatalf("redocly's report is no JSON: %v\n%s", err, out)
			}
			for _, p := range report.Problems {
				where := ""
				if len(p.Location) > 0 {
					where = p.Location[0].Pointer
				}
				if p.Severity == "error" {
					t.Errorf("redocly %s: %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
				} else {
					t.Logf("redocly %s: %s at %s: %s", p.Severity, p.RuleID, where, p.Message)
				}
			}
			t.Logf("redocly lint %s: %d errors, %d warnings", name, report.Totals.Errors, report.Totals.Warnings)
		})
	}

	t.Run("openapi-typescript", func(t *testing.T) {
		t.Parallel()
		ts := t.TempDir()
		run(t, npm, filepath.Join(bin, "openapi-typescript"), filepath.Join(dir, "openapi.v3.json"), "-o", filepath.Join(ts, "api.d.ts"))
		client, err := os.ReadFile(filepath.Join(npm, "client.ts"))
		if err != nil {
			t.Fatal(err)
		}
		const tsconfig = `{"compilerOptions": {"strict": true, "noEmit": true, "target": "ES2022", "module": "ESNext",
			"moduleResolution": "Bundler", "lib": ["ES2022", "DOM"]}, "files": ["client.ts"]}`
		for name, b := range map[string][]byte{"client.ts": client, "tsconfig.json": []byte(tsconfig)} {
			if err := os.WriteFile(filepath.Join(ts, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// client.ts imports openapi-fetch as any project would: from its node_modules.
		if err := os.Symlink(filepath.Join(npm, "node_modules"), filepath.Join(ts, "node_modules")); err != nil {
			t.Fatal(err)
		}
		run(t, ts, filepath.Join(bin, "tsc"), "-p", filepath.Join(ts, "tsconfig.json"))
	})
}

// run runs a tool in dir and returns its standard output; it fails t unless the tool exits
// 0, except redocly's lint, whose exit status counts errors its report lists.
func run(t *testing.T, dir, tool string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), tool, args...)
	cmd.Dir = dir
	// No telemetry, no update checks: the tests send nothing anywhere.
	cmd.Env = append(os.Environ(), "REDOCLY_TELEMETRY=off", "REDOCLY_SUPPRESS_UPDATE_NOTICE=true", "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	reported := strings.HasSuffix(tool, "redocly") && stdout.Len() > 0 // its exit status: errors found
	if err != nil && !reported {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(tool), strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.Bytes()
}
