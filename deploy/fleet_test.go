package deploy

import (
	"fmt"
	"go/ast"
	"math"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// externalSecrets are the Secrets that prod takes from a secret store, never from these
// manifests, with the keys each must hold. The README's Deployment section names them; the
// dev overlay generates the same names with the same keys.
var externalSecrets = map[string][]string{
	"stock-secrets":          {"PAGE_TOKEN_KEY"},
	"portfolio-secrets":      {"PAGE_TOKEN_KEY"},
	"interview-secrets":      {"PAGE_TOKEN_KEY"},
	"pgfleet-jwt":            {"JWT_SECRET"},
	"pgfleet-stock-role":     {"username", "password"},
	"pgfleet-portfolio-role": {"username", "password"},
	"pgfleet-interview-role": {"username", "password"},
}

// databaseEnv are the settings that name a database: an overlay sets them in the service's
// ConfigMap, with its Cluster's Service names.
var databaseEnv = []string{"DATABASE_URL", "DATABASE_READ_URL"}

// renderCase is one way the manifests are rendered and what it must satisfy.
type renderCase struct {
	name     string
	dirs     []string // kustomizations rendered apart and merged (the fleet, its database)
	external bool     // secrets may come from outside the render (documented in externalSecrets)
	noDB     bool     // no database named: its settings (databaseEnv) come with an overlay
	ha       bool     // two or more replicas per component, three instances per database
	tagged   bool     // images carry a tag or digest
	tls      bool     // dirs[0] with its commented-out TLS component turned on (prodWith)
	monitor  bool     // dirs[0] with its commented-out monitoring component turned on
}

func renderCases() []renderCase {
	return []renderCase{
		{name: "base", dirs: []string{"base"}, external: true, noDB: true},
		{name: "dev", dirs: []string{"overlays/dev"}, tagged: true},
		{name: "prod", dirs: []string{"overlays/prod", "cnpg/prod"}, external: true, ha: true, tagged: true},
		// prod as its kustomization says to turn components on (see prodWith)
		{name: "prod+tls", dirs: []string{"overlays/prod", "cnpg/prod"}, external: true, ha: true, tagged: true, tls: true},
		{name: "prod+monitoring", dirs: []string{"overlays/prod", "cnpg/prod"}, external: true, ha: true, tagged: true, monitor: true},
	}
}

// optional lists the components c turns on.
func (c renderCase) optional() []string {
	var names []string
	if c.tls {
		names = append(names, "tls")
	}
	if c.monitor {
		names = append(names, "monitoring")
	}
	return names
}

// TestFleet renders base and each overlay with kustomize's Go API and checks the result
// against the code: ports, probes, env names and values, images, shutdown budget, security
// settings, Services, autoscaling, disruption budgets, network policies and databases.
func TestFleet(t *testing.T) {
	t.Parallel()
	for _, c := range renderCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var m *manifests
			if c.tls || c.monitor {
				m = prodWith(t, c.optional()...)
			} else {
				m = render(t, c.dirs[0])
			}
			for _, d := range c.dirs[1:] {
				m.merge(t, render(t, d))
			}
			if t.Failed() {
				return
			}
			checkFleet(t, m, c)
		})
	}
}

func checkFleet(t *testing.T, m *manifests, c renderCase) {
	for _, name := range components {
		t.Run(name, func(t *testing.T) {
			d, ok := m.deployments[name]
			if !ok {
				t.Fatalf("%s: no Deployment %s", m.source, name)
			}
			checkDeployment(t, m, c, name, d)
			checkServices(t, m, name, d)
			checkScaling(t, m, c, name, d)
		})
	}
	if extra := slices.DeleteFunc(mapKeys(m.deployments), func(n string) bool { return slices.Contains(components, n) }); len(extra) > 0 {
		t.Errorf("Deployments %v are not pgfleet components: teach the tests about them", extra)
	}
	t.Run("networkpolicies", func(t *testing.T) { checkNetworkPolicies(t, m) })
	if c.name != "base" {
		t.Run("databases", func(t *testing.T) { checkDatabases(t, m, c) })
	}
	if c.tls {
		t.Run("tls", func(t *testing.T) { checkTLS(t, m) })
	} else if len(m.certificates) > 0 {
		t.Errorf("Certificates without the TLS component: %v", mapKeys(m.certificates))
	}
	if c.monitor {
		t.Run("monitoring", func(t *testing.T) { checkMonitoring(t, m) })
	} else if len(m.podMonitors)+len(m.rules) > 0 {
		t.Errorf("PodMonitors or PrometheusRules without the monitoring component: %v %v", mapKeys(m.podMonitors), mapKeys(m.rules))
	}
	for name, s := range m.secrets {
		if base, ok := generatedName(name); ok && externalSecrets[base] != nil {
			if got, want := slices.Sorted(slices.Values(secretKeys(s))), slices.Sorted(slices.Values(externalSecrets[base])); !slices.Equal(got, want) {
				t.Errorf("Secret %s holds %v; prod's external %s must hold %v: keep them alike", name, got, base, want)
			}
		}
	}
}

// generatedName strips kustomize's content hash suffix from a generated object's name.
func generatedName(name string) (string, bool) {
	if m := hashSuffix.FindStringIndex(name); m != nil {
		name = name[:m[0]]
	}
	_, ok := externalSecrets[name]
	return name, ok
}

var hashSuffix = regexp.MustCompile(`-[a-z0-9]{10}$`)

// envValue is one variable as a container sees it.
type envValue struct {
	value string
	known bool   // false: from a Secret outside the render, or from the downward API
	from  string // for messages
}

// containerEnv resolves a container's environment: envFrom sources, then env entries, which
// win. A reference to a ConfigMap, Secret or key that does not exist is an error, unless
// the render takes that Secret from outside (external) and it is documented.
func containerEnv(m *manifests, external bool, c *corev1.Container) (map[string]envValue, []error) {
	env := map[string]envValue{}
	var errs []error
	set := func(name string, v envValue) {
		if old, dup := env[name]; dup {
			errs = append(errs, fmt.Errorf("%s set twice: by %s and %s", name, old.from, v.from))
		}
		env[name] = v
	}
	secretKey := func(name, key string) (envValue, error) {
		from := "Secret " + name
		if s, ok := m.secrets[name]; ok {
			if v, ok := s.Data[key]; ok {
				return envValue{string(v), true, from}, nil
			}
			if v, ok := s.StringData[key]; ok {
				return envValue{v, true, from}, nil
			}
			return envValue{}, fmt.Errorf("%s has no key %s", from, key)
		}
		if external && slices.Contains(externalSecrets[name], key) {
			return envValue{from: from + " (external)"}, nil
		}
		return envValue{}, fmt.Errorf("%s: not in %s, nor a documented external secret with key %s", from, m.source, key)
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm, ok := m.configMaps[ef.ConfigMapRef.Name]
			if !ok {
				errs = append(errs, fmt.Errorf("ConfigMap %s: not in %s", ef.ConfigMapRef.Name, m.source))
				continue
			}
			for k, v := range cm.Data {
				set(ef.Prefix+k, envValue{v, true, "ConfigMap " + cm.Name})
			}
		case ef.SecretRef != nil:
			name := ef.SecretRef.Name
			if s, ok := m.secrets[name]; ok {
				for _, k := range secretKeys(s) {
					v, _ := secretKey(name, k)
					set(ef.Prefix+k, v)
				}
			} else if keys := externalSecrets[name]; external && keys != nil {
				for _, k := range keys {
					set(ef.Prefix+k, envValue{from: "Secret " + name + " (external)"})
				}
			} else {
				errs = append(errs, fmt.Errorf("Secret %s: not in %s, nor a documented external secret", name, m.source))
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			set(e.Name, envValue{e.Value, true, "env"})
		case e.ValueFrom.SecretKeyRef != nil:
			v, err := secretKey(e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", e.Name, err))
				continue
			}
			set(e.Name, v)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, ok := m.configMaps[ref.Name]
			if !ok || cm.Data[ref.Key] == "" {
				errs = append(errs, fmt.Errorf("%s: ConfigMap %s has no key %s", e.Name, ref.Name, ref.Key))
				continue
			}
			set(e.Name, envValue{cm.Data[ref.Key], true, "ConfigMap " + ref.Name})
		default:
			set(e.Name, envValue{from: "downward API"})
		}
	}
	return env, errs
}

func secretKeys(s *corev1.Secret) []string {
	keys := mapKeys(s.Data)
	for k := range s.StringData {
		keys = append(keys, k)
	}
	return keys
}

// setting returns the value a binary runs with: the container's, else the code's default.
func setting(env map[string]envValue, code codeEnv, name string) (string, bool) {
	if v, ok := env[name]; ok {
		return v.value, v.known
	}
	return code[name].Default, true
}

func addrPort(addr string) (int32, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("address %q: want a fixed port", addr)
	}
	return int32(n), nil
}

// listenPorts are the ports a binary listens on, by the name its container must give them:
// grpc or http, metrics, and health when HEALTH_ADDR is set.
func listenPorts(env map[string]envValue, code codeEnv) (map[string]int32, error) {
	ports := map[string]int32{}
	for portName, envName := range map[string]string{"grpc": "GRPC_ADDR", "http": "HTTP_ADDR", "metrics": "METRICS_ADDR", "health": "HEALTH_ADDR"} {
		if _, reads := code[envName]; !reads {
			continue
		}
		addr, known := setting(env, code, envName)
		if !known {
			return nil, fmt.Errorf("%s comes from a Secret: listen addresses belong in ConfigMaps", envName)
		}
		if addr == "" {
			continue // HEALTH_ADDR unset: no health listener
		}
		p, err := addrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", envName, err)
		}
		ports[portName] = p
	}
	return ports, nil
}

func checkDeployment(t *testing.T, m *manifests, c renderCase, name string, d *appsv1.Deployment) {
	code := binaryEnv(t, name)
	pod := &d.Spec.Template.Spec
	if len(pod.Containers) != 1 || pod.Containers[0].Name != name || len(pod.InitContainers) > 0 {
		t.Fatalf("want one container named %s, no init containers", name)
	}
	ctr := &pod.Containers[0]

	env, errs := containerEnv(m, c.external, ctr)
	for _, err := range errs {
		t.Error(err)
	}
	for n, v := range env {
		cv, reads := code[n]
		if !reads {
			t.Errorf("%s (from %s): services/%s does not read it", n, v.from, name)
			continue
		}
		if v.known {
			if err := cv.checkValue(v.value); err != nil {
				t.Errorf("from %s: %v", v.from, err)
			}
		}
	}
	for n, cv := range code {
		if c.noDB && slices.Contains(databaseEnv, n) {
			continue
		}
		if _, ok := env[n]; cv.Required && !ok {
			t.Errorf("%s is required (%s) but not set", n, cv.Where)
		}
	}

	// Ports: the container declares exactly what the binary listens on.
	ports, err := listenPorts(env, code)
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]int32{}
	for _, p := range ctr.Ports {
		declared[p.Name] = p.ContainerPort
		if p.Protocol != corev1.ProtocolTCP {
			t.Errorf("port %s: protocol %q, want TCP", p.Name, p.Protocol)
		}
	}
	if !mapsEqual(declared, ports) {
		t.Errorf("container ports %v, but services/%s listens on %v (its env and defaults)", declared, name, ports)
	}
	if got := d.Spec.Template.Annotations["prometheus.io/port"]; got != strconv.Itoa(int(ports["metrics"])) {
		t.Errorf("prometheus.io/port = %q, want the metrics port %d", got, ports["metrics"])
	}
	if d.Spec.Template.Annotations["prometheus.io/scrape"] != "true" || d.Spec.Template.Annotations["prometheus.io/path"] != "/metrics" {
		t.Errorf("want prometheus.io/scrape \"true\" and prometheus.io/path /metrics annotations")
	}

	checkProbes(t, env, code, ports, ctr)
	checkShutdown(t, env, code, name, pod, ctr)
	checkSecurity(t, pod, ctr)
	checkImage(t, c, name, ctr.Image)

	if d.Spec.Replicas != nil {
		t.Errorf("replicas = %d: leave it to the HorizontalPodAutoscaler", *d.Spec.Replicas)
	}
	if pod.EnableServiceLinks == nil || *pod.EnableServiceLinks {
		t.Errorf("enableServiceLinks must be false: Services' link variables (STOCK_PORT, ...) share the clients' env prefixes")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("automountServiceAccountToken must be false: no pgfleet binary calls the Kubernetes API")
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod template's labels %v", d.Spec.Selector, d.Spec.Template.Labels)
	}
	if d.Spec.Template.Labels["app.kubernetes.io/part-of"] != "pgfleet" {
		t.Errorf("pods lack app.kubernetes.io/part-of=pgfleet: the fleet's NetworkPolicies select by it")
	}
	if v, ok := env["JWT_SECRET"]; ok && v.known && len(v.value) < intConst(t, filepath.Join(repoRoot, "pkg/auth"), "minSecretLen") {
		t.Errorf("JWT_SECRET from %s is shorter than pkg/auth accepts", v.from)
	}
	for _, v := range pod.Volumes {
		switch {
		case v.Secret != nil:
			if !secretExists(m, c.external, v.Secret.SecretName) {
				t.Errorf("volume %s: Secret %s is not in %s, nor made by a Certificate, nor documented as external", v.Name, v.Secret.SecretName, m.source)
			}
		case v.ConfigMap != nil:
			if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
				t.Errorf("volume %s: ConfigMap %s is not in %s", v.Name, v.ConfigMap.Name, m.source)
			}
		default:
			t.Errorf("volume %s: a kind these tests do not check", v.Name)
		}
	}
	checkClients(t, m, c, name, env, code)
}

// secretExists: the Secret is in the render, or a Certificate in it makes it, or (external)
// prod takes it from its secret store.
func secretExists(m *manifests, external bool, name string) bool {
	if _, ok := m.secrets[name]; ok {
		return true
	}
	for _, c := range m.certificates {
		if c.Spec.SecretName == name {
			return true
		}
	}
	_, documented := externalSecrets[name]
	return external && documented
}

// checkProbes: gRPC services are probed with Kubernetes' gRPC probes on grpc.health.v1, on
// the gRPC port or, with TLS on, on the plaintext health port; the gateway on /healthz of its
// metrics port. Liveness gives up later than readiness, so a pod is taken out of the
// endpoints before it is restarted.
func checkProbes(t *testing.T, env map[string]envValue, code codeEnv, ports map[string]int32, ctr *corev1.Container) {
	probes := map[string]*corev1.Probe{"startup": ctr.StartupProbe, "readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe}
	tlsOn := false
	if v, _ := setting(env, code, "TLS_CERT_FILE"); v != "" {
		tlsOn = true
	}
	for kind, p := range probes {
		if p == nil {
			t.Errorf("no %s probe", kind)
			continue
		}
		if _, grpcService := ports["grpc"]; grpcService {
			want := ports["grpc"]
			if tlsOn {
				hp, ok := ports["health"]
				if !ok {
					t.Errorf("TLS on without HEALTH_ADDR: gRPC probes cannot speak TLS")
					continue
				}
				want = hp
			}
			if p.GRPC == nil || p.GRPC.Port != want {
				t.Errorf("%s probe: want grpc on port %d (tls %v), got %+v", kind, want, tlsOn, p.ProbeHandler)
				continue
			}
			// pkg/server: "liveness" stays SERVING through a database outage; "" follows the pool.
			wantService := ""
			if kind == "liveness" {
				wantService = "liveness"
			}
			got := ""
			if p.GRPC.Service != nil {
				got = *p.GRPC.Service
			}
			if got != wantService {
				t.Errorf("%s probe: health service %q, want %q", kind, got, wantService)
			}
			continue
		}
		if p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || resolvePort(p.HTTPGet.Port, ctr) != ports["metrics"] {
			t.Errorf("%s probe: want GET /healthz on the metrics port %d, got %+v", kind, ports["metrics"], p.ProbeHandler)
		}
	}
	if ctr.LivenessProbe != nil && ctr.ReadinessProbe != nil && budget(ctr.LivenessProbe) <= budget(ctr.ReadinessProbe) {
		t.Errorf("liveness gives up after %v, readiness after %v: liveness must wait longer", budget(ctr.LivenessProbe), budget(ctr.ReadinessProbe))
	}
	if _, grpcService := ports["grpc"]; grpcService && ctr.StartupProbe != nil && budget(ctr.StartupProbe) < time.Minute {
		t.Errorf("startup probe gives up after %v: migrations (waiting for another replica's migration lock) need longer", budget(ctr.StartupProbe))
	}
}

// budget is how long a probe fails before it acts (Kubernetes' defaults for zeros).
func budget(p *corev1.Probe) time.Duration {
	period, threshold := p.PeriodSeconds, p.FailureThreshold
	if period == 0 {
		period = 10
	}
	if threshold == 0 {
		threshold = 3
	}
	return time.Duration(period*threshold) * time.Second
}

func resolvePort(p intstr.IntOrString, ctr *corev1.Container) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range ctr.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

// checkShutdown: terminationGracePeriodSeconds outlasts the preStop sleep, the drain
// (DRAIN_TIMEOUT as configured) and the metrics listener's shutdown (a constant in code).
func checkShutdown(t *testing.T, env map[string]envValue, code codeEnv, name string, pod *corev1.PodSpec, ctr *corev1.Container) {
	drainS, _ := setting(env, code, "DRAIN_TIMEOUT")
	drain, err := time.ParseDuration(drainS)
	if err != nil {
		t.Fatalf("DRAIN_TIMEOUT %q: %v", drainS, err)
	}
	metricsDir := filepath.Join(repoRoot, "pkg/server")
	if name == "gateway" {
		metricsDir = filepath.Join(repoRoot, "services/gateway")
	}
	var preStop time.Duration
	if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil || ctr.Lifecycle.PreStop.Sleep == nil {
		t.Errorf("no preStop sleep: endpoints must drop the pod before it stops serving")
	} else {
		preStop = time.Duration(ctr.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	}
	need := preStop + drain + durationConst(t, metricsDir, "metricsShutdown")
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= need {
		t.Errorf("terminationGracePeriodSeconds must exceed preStop %v + DRAIN_TIMEOUT %v + metrics shutdown = %v", preStop, drain, need)
	}
}

// checkSecurity: the restricted Pod Security Standard and then some (read-only root).
func checkSecurity(t *testing.T, pod *corev1.PodSpec, ctr *corev1.Container) {
	psc, sc := pod.SecurityContext, ctr.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
		t.Errorf("pod must run as a non-root numeric user")
	} else if uid := dockerUser(t); *psc.RunAsUser != uid {
		t.Errorf("runAsUser %d, but the image's USER is %d", *psc.RunAsUser, uid)
	}
	if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod seccompProfile must be RuntimeDefault")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 ||
		sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container securityContext must forbid privilege escalation, drop ALL capabilities and mount the root read-only: %+v", sc)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := ctr.Resources.Requests[r]
		lim, okLim := ctr.Resources.Limits[r]
		if !okReq || !okLim {
			t.Errorf("resources: want a %s request and limit", r)
		} else if req.Cmp(lim) > 0 {
			t.Errorf("resources: %s request %s above its limit %s", r, req.String(), lim.String())
		}
	}
}

// checkImage: pgfleet/<component> (under any registry), tagged or pinned in overlays.
func checkImage(t *testing.T, c renderCase, name, image string) {
	repo, digest, _ := strings.Cut(image, "@")
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	if path.Base(repo) != name || path.Base(path.Dir(repo)) != "pgfleet" {
		t.Errorf("image %q: want .../pgfleet/%s (the Dockerfile's `-t pgfleet/%s`)", image, name, name)
	}
	if c.tagged && (tag == "" && digest == "" || tag == "latest") {
		t.Errorf("image %q: an overlay pins a tag or digest", image)
	}
}

// checkServices: a ClusterIP Service for each component and, for the gRPC services, a
// headless one, each selecting exactly that component's pods on ports it listens on.
func checkServices(t *testing.T, m *manifests, name string, d *appsv1.Deployment) {
	ctr := &d.Spec.Template.Spec.Containers[0]
	want := []string{name}
	if hasPort(ctr, "grpc") {
		want = append(want, name+"-headless")
	}
	for _, sn := range want {
		s, ok := m.services[sn]
		if !ok {
			t.Errorf("no Service %s", sn)
			continue
		}
		if got := selectedDeployments(m, s.Spec.Selector); !slices.Equal(got, []string{name}) {
			t.Errorf("Service %s selects %v, want [%s]", sn, got, name)
		}
		headless := s.Spec.ClusterIP == corev1.ClusterIPNone
		if headless != strings.HasSuffix(sn, "-headless") || s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service %s: clusterIP %q type %q", sn, s.Spec.ClusterIP, s.Spec.Type)
		}
		if s.Spec.PublishNotReadyAddresses {
			t.Errorf("Service %s publishes unready pods: clients would call pods that are NOT_SERVING", sn)
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if cp := resolvePort(target, ctr); cp < 0 || cp != containerPort(ctr, p.Name) {
				t.Errorf("Service %s port %s: target %s is not the container's %s port", sn, p.Name, target.String(), p.Name)
			}
		}
		if headless && (len(s.Spec.Ports) != 1 || s.Spec.Ports[0].Name != "grpc" || s.Spec.Ports[0].Port != containerPort(ctr, "grpc")) {
			t.Errorf("Service %s: want one port, grpc, %d", sn, containerPort(ctr, "grpc"))
		}
	}
}

func hasPort(ctr *corev1.Container, name string) bool { return containerPort(ctr, name) > 0 }

func containerPort(ctr *corev1.Container, name string) int32 {
	for _, p := range ctr.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return -1
}

// selectedDeployments lists the Deployments whose pods a selector matches.
func selectedDeployments(m *manifests, sel map[string]string) []string {
	var names []string
	if len(sel) == 0 {
		return nil
	}
	for n, d := range m.deployments {
		if labels.SelectorFromSet(sel).Matches(labels.Set(d.Spec.Template.Labels)) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// checkScaling: an HPA on CPU owns each Deployment's replica count; a PDB lets one pod go at
// a time.
func checkScaling(t *testing.T, m *manifests, c renderCase, name string, d *appsv1.Deployment) {
	h, ok := m.hpas[name]
	if !ok {
		t.Errorf("no HorizontalPodAutoscaler %s", name)
	} else {
		ref := h.Spec.ScaleTargetRef
		if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != name {
			t.Errorf("HPA %s scales %+v", name, ref)
		}
		minR := int32(1)
		if h.Spec.MinReplicas != nil {
			minR = *h.Spec.MinReplicas
		}
		if minR < 1 || h.Spec.MaxReplicas < minR || c.ha && minR < 2 {
			t.Errorf("HPA %s: replicas %d..%d (ha %v)", name, minR, h.Spec.MaxReplicas, c.ha)
		}
		cpu := slices.ContainsFunc(h.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
			return ms.Type == autoscalingv2.ResourceMetricSourceType && ms.Resource != nil && ms.Resource.Name == corev1.ResourceCPU &&
				ms.Resource.Target.Type == autoscalingv2.UtilizationMetricType && ms.Resource.Target.AverageUtilization != nil
		})
		if !cpu {
			t.Errorf("HPA %s: want a CPU utilization target", name)
		}
		if _, ok := d.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Errorf("HPA %s on CPU utilization needs a CPU request", name)
		}
	}
	p, ok := m.pdbs[name]
	if !ok {
		t.Errorf("no PodDisruptionBudget %s", name)
		return
	}
	if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() != 1 || p.Spec.MinAvailable != nil {
		t.Errorf("PDB %s: want maxUnavailable 1 (works at any replica count)", name)
	}
	if p.Spec.Selector == nil {
		t.Errorf("PDB %s: no selector", name)
	} else if got := selectedDeployments(m, p.Spec.Selector.MatchLabels); !slices.Equal(got, []string{name}) || len(p.Spec.Selector.MatchExpressions) > 0 {
		t.Errorf("PDB %s selects %v", name, got)
	}
}

// checkClients: a <PEER>_ADDR setting names the peer's headless Service on its gRPC port with
// the dns resolver, so round_robin spreads calls over every replica.
func checkClients(t *testing.T, m *manifests, c renderCase, name string, env map[string]envValue, code codeEnv) {
	for _, peer := range dbServices {
		prefix := strings.ToUpper(peer) + "_"
		if _, reads := code[prefix+"ADDR"]; !reads {
			continue
		}
		addr, known := setting(env, code, prefix+"ADDR")
		if !known {
			t.Errorf("%sADDR comes from a Secret: addresses belong in ConfigMaps", prefix)
			continue
		}
		u, err := url.Parse(addr)
		if err != nil || u.Scheme != "dns" || u.Host != "" {
			t.Errorf("%sADDR=%q: want dns:///%s-headless:<port> (round_robin needs every address)", prefix, addr, peer)
			continue
		}
		host, port, err := net.SplitHostPort(strings.TrimPrefix(u.Path, "/"))
		short, _, _ := strings.Cut(host, ".")
		if err != nil || short != peer+"-headless" {
			t.Errorf("%sADDR=%q: want the headless Service %s-headless", prefix, addr, peer)
			continue
		}
		if rest, ok := strings.CutPrefix(host, short+"."); ok && m.namespace != "" && !strings.HasPrefix(rest, m.namespace+".") {
			t.Errorf("%sADDR=%q: not this namespace (%s)", prefix, addr, m.namespace)
		}
		pd, ok := m.deployments[peer]
		if !ok {
			t.Errorf("%sADDR: no Deployment %s", prefix, peer)
			continue
		}
		if want := strconv.Itoa(int(containerPort(&pd.Spec.Template.Spec.Containers[0], "grpc"))); port != want {
			t.Errorf("%sADDR=%q: %s listens on %s", prefix, addr, peer, want)
		}
		// TLS: a caller trusts its peer exactly when the peer serves TLS.
		peerEnv, _ := containerEnv(m, c.external, &pd.Spec.Template.Spec.Containers[0])
		peerTLS := peerEnv["TLS_CERT_FILE"].value != ""
		ca := env[prefix+"TLS_CA_FILE"].value
		if peerTLS != (ca != "") {
			t.Errorf("%s serves TLS: %v; %sTLS_CA_FILE=%q", peer, peerTLS, prefix, ca)
		}
	}
}

func intConst(t *testing.T, dir, name string) int {
	t.Helper()
	p, err := loadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	lit, ok := p.consts[name].(*ast.BasicLit)
	if !ok {
		t.Fatalf("%s: no integer constant %s", dir, name)
	}
	n, err := strconv.Atoi(lit.Value)
	if err != nil {
		t.Fatalf("%s: constant %s = %s: %v", dir, name, lit.Value, err)
	}
	return n
}

// surge is the most pods a rollout adds above replicas (maxSurge, default 25%, rounded up).
func surge(d *appsv1.Deployment, replicas int32) int32 {
	s := intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		s = *ru.MaxSurge
	}
	if s.Type == intstr.Int {
		return s.IntVal
	}
	pct, _ := strconv.Atoi(strings.TrimSuffix(s.StrVal, "%"))
	return int32(math.Ceil(float64(replicas) * float64(pct) / 100))
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
