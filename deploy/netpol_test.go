package deploy

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// endpoint is one end of a connection the NetworkPolicies are asked about.
type endpoint struct {
	name      string
	namespace string
	labels    map[string]string // pod labels; nil for an address outside the cluster
	ports     map[string]int32  // named ports, for policies that name them
	kind      string            // "app" (a pgfleet Deployment), "db" (a CloudNativePG instance), "other"
	app       string            // the component, for kind "app"; the Cluster, for kind "db"
}

var internetAddr = netip.MustParseAddr("203.0.113.7")

func nsLabels(ns string) map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": ns}
}

// checkNetworkPolicies asks the policies about every connection to, from and between the
// fleet's pods and compares the answers with the intended matrix (base/networkpolicies.yaml):
// only the gateway is reachable from outside; portfolio and the gateway reach stock, the
// gateway reaches the rest; the schema owners reach their database and nothing else does;
// Prometheus scrapes metrics ports; everything else is denied.
func checkNetworkPolicies(t *testing.T, m *manifests) {
	ns := m.namespace
	if ns == "" {
		ns = "pgfleet"
	}
	var apps, dbs []endpoint
	for _, name := range mapKeys(m.deployments) {
		d := m.deployments[name]
		ports := map[string]int32{}
		for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
			ports[p.Name] = p.ContainerPort
		}
		apps = append(apps, endpoint{name: name, namespace: ns, labels: d.Spec.Template.Labels, ports: ports, kind: "app", app: name})
	}
	clusters := mapKeys(m.clusters)
	if len(clusters) == 0 {
		clusters = []string{"any-cnpg-cluster"} // base: the policies admit any CloudNativePG instance
	}
	// A Cluster's instances as CloudNativePG labels them: its -rw Service selects the primary,
	// -ro the standbys (cnpg.io/instanceRole: replica), which DATABASE_READ_URL names.
	for _, c := range clusters {
		roles := []string{"primary"}
		if cl, ok := m.clusters[c]; !ok || cl.Spec.Instances > 1 {
			roles = append(roles, "replica")
		}
		for _, role := range roles {
			dbs = append(dbs, endpoint{name: "db " + c + " " + role, namespace: ns, kind: "db", app: c,
				labels: map[string]string{"cnpg.io/cluster": c, "cnpg.io/instanceRole": role, "cnpg.io/podRole": "instance"},
				ports:  map[string]int32{"postgresql": 5432, "status": 8000, "metrics": 9187}})
		}
	}
	monitoring := endpoint{name: "prometheus", namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}, kind: "other"}
	operator := endpoint{name: "cnpg operator", namespace: "cnpg-system", labels: map[string]string{"app.kubernetes.io/name": "cloudnative-pg"}, kind: "other"}
	elsewhere := endpoint{name: "pod in another namespace", namespace: "elsewhere", labels: map[string]string{"app": "x"}, kind: "other"}
	dns := endpoint{name: "kube-dns", namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, kind: "other"}
	internet := endpoint{name: "internet", kind: "other"}

	for _, a := range apps {
		if !isolated(m, ns, a, networkingv1.PolicyTypeIngress) || !isolated(m, ns, a, networkingv1.PolicyTypeEgress) {
			t.Errorf("%s: no policy isolates it for both ingress and egress", a.name)
		}
	}

	dbManages := func(cluster, role string) bool {
		c, ok := m.clusters[cluster]
		if !ok {
			return true // base: no database, the app side alone decides
		}
		return slices.ContainsFunc(c.roles(), func(r cnpgRole) bool { return r.Name == role })
	}
	want := func(src, dst endpoint, port int32) bool {
		switch {
		case dst.kind == "app" && port == dst.ports["metrics"]:
			return src.name == monitoring.name
		case dst.kind == "app" && dst.app == "gateway" && port == dst.ports["http"]:
			return src.kind != "app" // the world, but not the fleet's own pods (their egress is closed)
		case dst.kind == "app" && port == dst.ports["grpc"]:
			callers := map[string][]string{"stock": {"portfolio", "gateway"}, "portfolio": {"gateway"}, "interview": {"gateway"}}
			return src.kind == "app" && slices.Contains(callers[dst.app], src.app)
		case dst.kind == "db" && port == 5432:
			return src.kind == "app" && slices.Contains(dbServices, src.app) && dbManages(dst.app, src.app) ||
				src.kind == "db" && src.app == dst.app
		case dst.kind == "db" && port == 8000:
			return src.kind == "db" && src.app == dst.app || src.name == operator.name
		case dst.kind == "db" && port == 9187:
			return src.name == monitoring.name
		case dst.name == dns.name:
			return src.kind == "app"
		}
		return false
	}

	type probe struct {
		dst   endpoint
		proto corev1.Protocol
		port  int32
	}
	var probes []probe
	for _, d := range append(slices.Clone(apps), dbs...) {
		for _, p := range d.ports {
			probes = append(probes, probe{d, corev1.ProtocolTCP, p})
		}
	}
	probes = append(probes, probe{dns, corev1.ProtocolUDP, 53}, probe{dns, corev1.ProtocolTCP, 53},
		probe{internet, corev1.ProtocolTCP, 443}, probe{elsewhere, corev1.ProtocolTCP, 8080})
	sources := append(append(slices.Clone(apps), dbs...), monitoring, operator, elsewhere, internet)
	for _, src := range sources {
		for _, p := range probes {
			inNS := func(e endpoint) bool { return e.labels != nil && e.namespace == ns }
			if src.name == p.dst.name || !inNS(src) && !inNS(p.dst) || src.kind == "db" && !inNS(p.dst) {
				continue // not this namespace's business, or the database's own egress (unrestricted)
			}
			if len(m.clusters) == 0 && (src.kind == "db" || p.dst.kind == "db" && src.kind != "app") {
				continue // base has no database policies
			}
			got := allowed(m, ns, src, p.dst, p.proto, p.port)
			if w := want(src, p.dst, p.port); got != w {
				t.Errorf("%s -> %s:%d/%s: allowed %v, want %v", src.name, p.dst.name, p.port, p.proto, got, w)
			}
		}
	}
}

// allowed is NetworkPolicy's verdict: the source's egress and the destination's ingress both
// admit the connection (a pod no policy selects for a direction is open in it).
func allowed(m *manifests, ns string, src, dst endpoint, proto corev1.Protocol, port int32) bool {
	return admits(m, ns, src, dst, dst, networkingv1.PolicyTypeEgress, proto, port) &&
		admits(m, ns, dst, src, dst, networkingv1.PolicyTypeIngress, proto, port)
}

// admits reports whether the policies selecting pod (for dir) let peer through on
// proto/port; target is the connection's destination, whose named ports the rules may use.
func admits(m *manifests, ns string, pod, peer, target endpoint, dir networkingv1.PolicyType, proto corev1.Protocol, port int32) bool {
	if !isolated(m, ns, pod, dir) {
		return true
	}
	for _, np := range m.netpols {
		if !selects(np, ns, pod) || !hasType(np, dir) {
			continue
		}
		if dir == networkingv1.PolicyTypeIngress {
			for _, r := range np.Spec.Ingress {
				if portsMatch(r.Ports, target, proto, port) && peersMatch(r.From, ns, peer) {
					return true
				}
			}
		} else {
			for _, r := range np.Spec.Egress {
				if portsMatch(r.Ports, target, proto, port) && peersMatch(r.To, ns, peer) {
					return true
				}
			}
		}
	}
	return false
}

func isolated(m *manifests, ns string, pod endpoint, dir networkingv1.PolicyType) bool {
	for _, np := range m.netpols {
		if selects(np, ns, pod) && hasType(np, dir) {
			return true
		}
	}
	return false
}

func selects(np *networkingv1.NetworkPolicy, ns string, pod endpoint) bool {
	if pod.labels == nil || pod.namespace != ns {
		return false
	}
	return matches(&np.Spec.PodSelector, pod.labels)
}

func hasType(np *networkingv1.NetworkPolicy, dir networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 { // the API's default
		return dir == networkingv1.PolicyTypeIngress || len(np.Spec.Egress) > 0
	}
	return slices.Contains(np.Spec.PolicyTypes, dir)
}

func matches(sel *metav1.LabelSelector, l map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		panic(fmt.Sprintf("selector %v: %v", sel, err))
	}
	return s.Matches(labels.Set(l))
}

func portsMatch(ports []networkingv1.NetworkPolicyPort, target endpoint, proto corev1.Protocol, port int32) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		switch {
		case p.Port == nil:
			return true
		case p.Port.Type == intstr.Int && p.EndPort != nil && port >= p.Port.IntVal && port <= *p.EndPort:
			return true
		case p.Port.Type == intstr.Int && p.Port.IntVal == port:
			return true
		case p.Port.Type == intstr.String && target.ports[p.Port.StrVal] == port:
			return true
		}
	}
	return false
}

func peersMatch(peers []networkingv1.NetworkPolicyPeer, ns string, other endpoint) bool {
	if len(peers) == 0 {
		return true
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			if other.labels != nil {
				continue // pod traffic is matched by selectors (pod IPs in a block are not modeled)
			}
			cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
			if err != nil || !cidr.Contains(internetAddr) {
				continue
			}
			excluded := slices.ContainsFunc(p.IPBlock.Except, func(e string) bool {
				x, err := netip.ParsePrefix(e)
				return err == nil && x.Contains(internetAddr)
			})
			if !excluded {
				return true
			}
			continue
		}
		if other.labels == nil {
			continue // selectors match pods only
		}
		nsOK := other.namespace == ns
		if p.NamespaceSelector != nil {
			nsOK = matches(p.NamespaceSelector, nsLabels(other.namespace))
		}
		podOK := p.PodSelector == nil || matches(p.PodSelector, other.labels)
		if nsOK && podOK {
			return true
		}
	}
	return false
}
