package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository root: the tests run in deploy/.
const repoRoot = ".."

// components are the fleet's binaries: a Deployment, an image and a Dockerfile stage each.
var components = []string{"stock", "portfolio", "interview", "gateway"}

// dbServices are the components that own a schema.
var dbServices = []string{"stock", "portfolio", "interview"}

// scheme knows the built-in kinds the manifests may hold, and the Prometheus Operator's (its
// own API module, light enough to import); any other CRD we decode into our own types
// (cnpg_test.go, tls_test.go), anything else is an error.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strictYAML decodes YAML into the built-in API types the way the API server's strict field
// validation does: an unknown or duplicate field, or a field in the wrong case, is an error.
var strictYAML = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme,
	kjson.SerializerOptions{Yaml: true, Strict: true})

// manifests is one namespace's worth of decoded objects, by name.
type manifests struct {
	source       string // what was rendered, for messages
	namespaces   map[string]*corev1.Namespace
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	netpols      map[string]*networkingv1.NetworkPolicy
	clusters     map[string]*cnpgCluster
	certificates map[string]*certificate
	podMonitors  map[string]*monitoringv1.PodMonitor
	rules        map[string]*monitoringv1.PrometheusRule
	namespace    string // the objects' namespace ("" in base)
}

func newManifests(source string) *manifests {
	return &manifests{
		source:       source,
		namespaces:   map[string]*corev1.Namespace{},
		deployments:  map[string]*appsv1.Deployment{},
		services:     map[string]*corev1.Service{},
		configMaps:   map[string]*corev1.ConfigMap{},
		secrets:      map[string]*corev1.Secret{},
		hpas:         map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		pdbs:         map[string]*policyv1.PodDisruptionBudget{},
		netpols:      map[string]*networkingv1.NetworkPolicy{},
		clusters:     map[string]*cnpgCluster{},
		certificates: map[string]*certificate{},
		podMonitors:  map[string]*monitoringv1.PodMonitor{},
		rules:        map[string]*monitoringv1.PrometheusRule{},
	}
}

// typeMeta is enough of an object to pick its decoder.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// add decodes one YAML document strictly and files it under its kind.
func (m *manifests) add(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	if tm.Metadata.Name == "" {
		return fmt.Errorf("%s without metadata.name", tm.Kind)
	}
	if m.namespace == "" {
		m.namespace = tm.Metadata.Namespace
	}
	if tm.Kind != "Namespace" && tm.Metadata.Namespace != m.namespace {
		return fmt.Errorf("%s %s: namespace %q, others have %q", tm.Kind, tm.Metadata.Name, tm.Metadata.Namespace, m.namespace)
	}
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return err
	}
	switch gv.WithKind(tm.Kind) {
	case cnpgClusterGVK:
		var c cnpgCluster
		if err := decodeStrictJSON(doc, &c); err != nil {
			return fmt.Errorf("Cluster %s: %w", tm.Metadata.Name, err)
		}
		return put(m.clusters, c.Metadata.Name, &c, tm.Kind)
	case certificateGVK:
		var c certificate
		if err := decodeStrictJSON(doc, &c); err != nil {
			return fmt.Errorf("Certificate %s: %w", tm.Metadata.Name, err)
		}
		return put(m.certificates, c.Metadata.Name, &c, tm.Kind)
	}
	obj, _, err := strictYAML.Decode(doc, nil, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", tm.Kind, tm.Metadata.Name, err)
	}
	switch o := obj.(type) {
	case *corev1.Namespace:
		return put(m.namespaces, o.Name, o, tm.Kind)
	case *appsv1.Deployment:
		return put(m.deployments, o.Name, o, tm.Kind)
	case *corev1.Service:
		return put(m.services, o.Name, o, tm.Kind)
	case *corev1.ConfigMap:
		return put(m.configMaps, o.Name, o, tm.Kind)
	case *corev1.Secret:
		return put(m.secrets, o.Name, o, tm.Kind)
	case *autoscalingv2.HorizontalPodAutoscaler:
		return put(m.hpas, o.Name, o, tm.Kind)
	case *policyv1.PodDisruptionBudget:
		return put(m.pdbs, o.Name, o, tm.Kind)
	case *networkingv1.NetworkPolicy:
		return put(m.netpols, o.Name, o, tm.Kind)
	case *monitoringv1.PodMonitor:
		return put(m.podMonitors, o.Name, o, tm.Kind)
	case *monitoringv1.PrometheusRule:
		return put(m.rules, o.Name, o, tm.Kind)
	}
	return fmt.Errorf("%s %s: a kind these tests do not check: teach load_test.go about it", tm.Kind, tm.Metadata.Name)
}

func put[T any](into map[string]T, name string, v T, kind string) error {
	if _, dup := into[name]; dup {
		return fmt.Errorf("two %ss named %s", kind, name)
	}
	into[name] = v
	return nil
}

// merge adds other's objects to m (the fleet and its database, rendered apart).
func (m *manifests) merge(t *testing.T, other *manifests) {
	t.Helper()
	if other.namespace != m.namespace {
		t.Fatalf("%s is in namespace %q, %s in %q", other.source, other.namespace, m.source, m.namespace)
	}
	m.source += " + " + other.source
	for _, err := range []error{
		mergeInto(m.namespaces, other.namespaces), mergeInto(m.deployments, other.deployments),
		mergeInto(m.services, other.services), mergeInto(m.configMaps, other.configMaps),
		mergeInto(m.secrets, other.secrets), mergeInto(m.hpas, other.hpas), mergeInto(m.pdbs, other.pdbs),
		mergeInto(m.netpols, other.netpols), mergeInto(m.clusters, other.clusters),
		mergeInto(m.certificates, other.certificates), mergeInto(m.podMonitors, other.podMonitors),
		mergeInto(m.rules, other.rules),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func mergeInto[T any](dst, src map[string]T) error {
	for k, v := range src {
		if _, dup := dst[k]; dup {
			return fmt.Errorf("%s defined twice", k)
		}
		dst[k] = v
	}
	return nil
}

// decodeStrictJSON decodes YAML into v strictly: duplicate keys, unknown fields and fields in
// the wrong case are errors (sigs.k8s.io/json, as the API server decodes custom resources).
func decodeStrictJSON(doc []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strictErrs, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}

// splitYAML returns the non-empty documents of a multi-document YAML stream.
func splitYAML(data []byte) ([][]byte, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		var v any
		if err := yaml.Unmarshal(doc, &v); err != nil {
			return nil, err
		}
		if v != nil { // only comments
			docs = append(docs, doc)
		}
	}
}

// render builds the kustomization in dir with kustomize's Go API, as `kustomize build` does,
// and decodes every object it prints strictly.
func render(t *testing.T, dir string) *manifests {
	t.Helper()
	return renderFS(t, filesys.MakeFsOnDisk(), dir)
}

func renderFS(t *testing.T, fsys filesys.FileSystem, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fsys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	m := newManifests(dir)
	for _, r := range rm.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			t.Fatalf("kustomize build %s: %s: %v", dir, r.CurId(), err)
		}
		if err := m.add(doc); err != nil {
			t.Errorf("kustomize build %s: %v", dir, err)
		}
	}
	return m
}

// prodWith renders overlays/prod as its comment says to turn optional components on: with
// its components line and theirs uncommented. The edit happens on an in-memory copy of deploy/.
func prodWith(t *testing.T, optional ...string) *manifests {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if d.IsDir() {
			if p == "local" || strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return mem.MkdirAll(filepath.Join("/deploy", p))
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/deploy", p), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	const k = "/deploy/overlays/prod/kustomization.yaml"
	b, err := mem.ReadFile(k)
	if err != nil {
		t.Fatal(err)
	}
	edits := []string{"components:\n"}
	for _, c := range optional {
		edits = append(edits, "  - ../../components/"+c+"\n")
	}
	for _, e := range edits {
		commented := "# " + e
		if !bytes.Contains(b, []byte(commented)) {
			t.Fatalf("overlays/prod/kustomization.yaml: no commented-out %q to turn on", commented)
		}
		b = bytes.Replace(b, []byte(commented), []byte(e), 1)
	}
	if err := mem.WriteFile(k, b); err != nil {
		t.Fatal(err)
	}
	m := renderFS(t, mem, "/deploy/overlays/prod")
	m.source = "overlays/prod with components " + strings.Join(optional, ", ")
	return m
}

// manifestFiles lists deploy/'s YAML files, leaving out deploy/local (make run's scripts and
// data) and nested modules.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// local: make run's scripts and data; monitoring tests: promtool's unit tests,
			// which promtool itself reads strictly (make rules).
			if path == "local" || path == monitoringTests || strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext == ".yaml" || ext == ".yml" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	return files
}

// decodeKustomization reads a kustomization.yaml strictly into kustomize's own type.
func decodeKustomization(data []byte) (*types.Kustomization, error) {
	var k types.Kustomization
	if err := decodeStrictJSON(data, &k); err != nil {
		return nil, err
	}
	return &k, nil
}
