package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
)

// TestCLI runs the built binary's command line: --help, --version, config and healthcheck
// (GET /healthz) against a real process; the upstreams need not be up for /healthz.
func TestCLI(t *testing.T) {
	t.Parallel()
	apptest.TestCLI(t, apptest.CLI{Package: "github.com/pgfleet/pgfleet/services/gateway", Config: config{},
		Env: map[string]string{"STOCK_ADDR": "127.0.0.1:1", "PORTFOLIO_ADDR": "127.0.0.1:1", "INTERVIEW_ADDR": "127.0.0.1:1"},
		Bad: [2]string{"MAX_IN_FLIGHT", "abc"}})
}

// TestHelp_documented holds the README's Configuration table and docs/configuration.md to
// the binaries: each variable they name is a setting of some binary's --help, and each
// setting some --help lists is documented in one of them.
func TestHelp_documented(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := apptest.Build(dir, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/portfolio",
		"github.com/pgfleet/pgfleet/services/interview", "github.com/pgfleet/pgfleet/services/gateway"); err != nil {
		t.Fatal(err)
	}
	helpLine := regexp.MustCompile(`(?m)^  ([A-Z][A-Z0-9_]*)(?: \((?:required|default .*)\))?$`)
	inHelp := map[string][]string{} // variable: the binaries that list it
	for _, name := range []string{"stock", "portfolio", "interview", "gateway"} {
		r := apptest.RunBinary(t, filepath.Join(dir, name), nil, "--help")
		for _, m := range helpLine.FindAllStringSubmatch(r.Stdout, -1) {
			inHelp[m[1]] = append(inHelp[m[1]], name)
		}
	}
	readme := documented(t, "../../README.md", "## Configuration", inHelp)
	docs := documented(t, "../../docs/configuration.md", "", inHelp)
	t.Logf("%d variables in --help, %d in README.md's table, %d in docs/configuration.md", len(inHelp), len(readme), len(docs))
	for _, doc := range []map[string]bool{readme, docs} {
		for v := range doc {
			if inHelp[v] == nil {
				t.Errorf("%s is documented, but no binary's --help lists it", v)
			}
		}
	}
	for v, bins := range inHelp {
		if !readme[v] && !docs[v] {
			t.Errorf("%s (--help of %v) is in neither README.md's Configuration table nor docs/configuration.md", v, bins)
		}
	}
}

// documented returns the variables named in the first column of the tables of file (of its
// section starting at heading, if any). A cell may abbreviate: "`DB_RETRY_BASE_DELAY` /
// `DB_RETRY_MAX_DELAY`", "`EVALUATOR_BREAKER_MIN_REQUESTS` / `_FAILURE_RATIO`" (a suffix to the
// previous name's prefix, resolved against known), "`<UPSTREAM>_TIMEOUT`" (each upstream).
func documented(tb testing.TB, file, heading string, known map[string][]string) map[string]bool {
	tb.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	text := string(data)
	if heading != "" {
		_, text, _ = strings.Cut(text, "\n"+heading+"\n")
		text, _, _ = strings.Cut(text, "\n## ")
	}
	code := regexp.MustCompile("`([^`]+)`")
	name := regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	vars := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.Split(line, "|")[1]
		var prev []string
		for _, m := range code.FindAllStringSubmatch(first, -1) {
			tok := m[1]
			var names []string
			switch {
			case strings.HasPrefix(tok, "<UPSTREAM>_"):
				for _, up := range []string{"STOCK_", "PORTFOLIO_", "INTERVIEW_"} {
					names = append(names, up+strings.TrimPrefix(tok, "<UPSTREAM>_"))
				}
			case strings.HasPrefix(tok, "_"):
				for _, p := range prev {
					for i := len(p) - 1; i > 0; i-- {
						if p[i] == '_' && known[p[:i]+tok] != nil {
							names = append(names, p[:i]+tok)
							break
						}
					}
				}
				if len(names) == 0 {
					tb.Errorf("%s: %q abbreviates no known variable after %v", file, tok, prev)
				}
			default:
				names = []string{tok}
			}
			for _, n := range names {
				if !name.MatchString(n) {
					tb.Errorf("%s: %q in a table's first column is no variable name", file, n)
				}
				vars[n] = true
			}
			if !strings.HasPrefix(tok, "_") {
				prev = names
			}
		}
	}
	return vars
}
