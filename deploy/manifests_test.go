package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestManifests_decodeStrictly decodes every YAML file under deploy/ (but deploy/local)
// strictly: Kubernetes objects into k8s.io/api types, custom resources into the copies in
// cnpg_test.go and tls_test.go, kustomizations into kustomize's own type, compose.yaml into
// the Compose subset. An unknown, misspelt, duplicate or wrongly cased field fails. It also
// fails a file that no kustomization (or compose) uses, which would otherwise go unchecked.
func TestManifests_decodeStrictly(t *testing.T) {
	t.Parallel()
	files := manifestFiles(t)
	if len(files) < 20 {
		t.Fatalf("found only %v", files)
	}
	used := map[string]bool{"compose.yaml": true}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Base(f) {
			case "kustomization.yaml":
				k, err := decodeKustomization(data)
				if err != nil {
					t.Fatal(err)
				}
				dir := filepath.Dir(f)
				refs := slices.Concat(k.Resources, k.Components)
				for _, p := range k.Patches {
					if p.Path != "" {
						refs = append(refs, p.Path)
					}
				}
				for _, r := range refs {
					p := filepath.Join(dir, r)
					if fi, err := os.Stat(p); err != nil {
						t.Errorf("%s: %v", r, err)
					} else if fi.IsDir() {
						used[filepath.Join(p, "kustomization.yaml")] = true
					} else {
						used[p] = true
					}
				}
			case "compose.yaml":
				if _, err := decodeCompose(data); err != nil {
					t.Fatal(err)
				}
			default:
				docs, err := splitYAML(data)
				if err != nil {
					t.Fatal(err)
				}
				if len(docs) == 0 {
					t.Fatal("no YAML documents")
				}
				m := newManifests(f)
				for _, d := range docs {
					if err := m.add(d); err != nil {
						t.Error(err)
					}
				}
			}
		})
	}
	// Kustomizations reached from an overlay, cnpg/prod or compose count as used.
	roots := []string{"overlays/dev/kustomization.yaml", "overlays/prod/kustomization.yaml", "cnpg/prod/kustomization.yaml", "components/tls/kustomization.yaml", "components/monitoring/kustomization.yaml"}
	for _, r := range roots {
		used[r] = true
	}
	for _, f := range files {
		if !used[f] {
			t.Errorf("%s: no kustomization uses it, so nothing deploys it", f)
		}
	}
}

// TestReadme_deployment: the deployment guide (docs/deployment.md, linked from the README's
// Deployment section) names the secrets prod expects and the way to render the manifests.
func TestReadme_deployment(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Deployment\n")
	if !ok {
		t.Fatal("README.md has no ## Deployment section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	if !strings.Contains(section, "(docs/deployment.md)") {
		t.Error("README's Deployment section does not link docs/deployment.md")
	}
	guide, err := os.ReadFile(filepath.Join(repoRoot, "docs", "deployment.md"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kustomize build deploy/overlays/prod", "make manifests", "docker build -f deploy/docker/Dockerfile", "deploy/compose.yaml", "kubectl scale"}
	want = append(want, mapKeys(externalSecrets)...)
	for _, w := range want {
		if !strings.Contains(string(guide), w) {
			t.Errorf("docs/deployment.md does not mention %s", w)
		}
	}
}
