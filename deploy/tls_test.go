package deploy

import (
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// certificate is the part of cert-manager's Certificate (cert-manager.io/v1) that
// components/tls uses, with its JSON names; decoding is strict, as for cnpgCluster. Importing
// cert-manager's API module would bring its controller dependencies for one struct.
var certificateGVK = schema.GroupVersionKind{Group: "cert-manager.io", Version: "v1", Kind: "Certificate"}

type certificate struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       certificateSpec   `json:"spec"`
}

type certificateSpec struct {
	SecretName  string                 `json:"secretName"`
	CommonName  string                 `json:"commonName,omitempty"`
	DNSNames    []string               `json:"dnsNames,omitempty"`
	Duration    *metav1.Duration       `json:"duration,omitempty"`
	RenewBefore *metav1.Duration       `json:"renewBefore,omitempty"`
	PrivateKey  *certificatePrivateKey `json:"privateKey,omitempty"`
	Usages      []string               `json:"usages,omitempty"`
	IssuerRef   certificateIssuerRef   `json:"issuerRef"`
}

type certificatePrivateKey struct {
	Algorithm      string `json:"algorithm,omitempty"`
	Size           int    `json:"size,omitempty"`
	Encoding       string `json:"encoding,omitempty"`
	RotationPolicy string `json:"rotationPolicy,omitempty"`
}

type certificateIssuerRef struct {
	Name  string `json:"name"`
	Kind  string `json:"kind,omitempty"`
	Group string `json:"group,omitempty"`
}

// checkTLS (components/tls): every component serves TLS from a cert-manager certificate
// whose names are the ones its callers dial; every caller trusts the CA and checks that name.
func checkTLS(t *testing.T, m *manifests) {
	for _, name := range mapKeys(m.certificates) {
		checkCertificate(t, name, m.certificates[name])
	}
	for _, name := range components {
		d := m.deployments[name]
		if d == nil {
			continue
		}
		pod := &d.Spec.Template.Spec
		ctr := &pod.Containers[0]
		env, _ := containerEnv(m, true, ctr)
		cert := mountedCertificate(t, m, pod, ctr, "TLS_CERT_FILE", env["TLS_CERT_FILE"].value, "tls.crt")
		mountedCertificate(t, m, pod, ctr, "TLS_KEY_FILE", env["TLS_KEY_FILE"].value, "tls.key")
		if cert != nil {
			want := []string{name}
			if hasPort(ctr, "grpc") {
				want = append(want, name+"-headless") // what dns:/// targets resolve
			}
			for _, n := range want {
				if !slices.Contains(cert.Spec.DNSNames, n) {
					t.Errorf("%s: its certificate %s lacks DNS name %s", name, cert.Metadata.Name, n)
				}
			}
		}
		for _, peer := range dbServices {
			prefix := strings.ToUpper(peer) + "_"
			if _, calls := env[prefix+"ADDR"]; !calls {
				continue
			}
			mountedCertificate(t, m, pod, ctr, prefix+"TLS_CA_FILE", env[prefix+"TLS_CA_FILE"].value, "ca.crt")
			serverName := env[prefix+"TLS_SERVER_NAME"].value
			if serverName == "" {
				serverName = peer + "-headless"
			}
			for _, c := range m.certificates {
				if c.Metadata.Labels["app.kubernetes.io/name"] == peer && !slices.Contains(c.Spec.DNSNames, serverName) {
					t.Errorf("%s checks %s's certificate for %q; %s has %v", name, peer, serverName, c.Metadata.Name, c.Spec.DNSNames)
				}
			}
		}
	}
}

// mountedCertificate checks that file (the value of env var) lies in a read-only mount of a
// Secret written by a Certificate of the render, is named base, and is readable by the
// container's non-root user; it returns that Certificate.
func mountedCertificate(t *testing.T, m *manifests, pod *corev1.PodSpec, ctr *corev1.Container, env, file, base string) *certificate {
	t.Helper()
	if file == "" {
		t.Errorf("%s: %s is not set", ctr.Name, env)
		return nil
	}
	if path.Base(file) != base {
		t.Errorf("%s: %s=%s: cert-manager names that file %s", ctr.Name, env, file, base)
	}
	for _, vm := range ctr.VolumeMounts {
		if path.Dir(file) != path.Clean(vm.MountPath) {
			continue
		}
		if !vm.ReadOnly || vm.SubPath != "" {
			t.Errorf("%s: mount %s must be read-only and whole (a subPath mount never sees renewals)", ctr.Name, vm.Name)
		}
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if v.Secret.DefaultMode != nil && *v.Secret.DefaultMode&0o004 == 0 && (pod.SecurityContext == nil || pod.SecurityContext.FSGroup == nil) {
				t.Errorf("%s: Secret volume %s is not world-readable and the pod has no fsGroup: the non-root user cannot read it", ctr.Name, v.Name)
			}
			for _, c := range m.certificates {
				if c.Spec.SecretName == v.Secret.SecretName {
					return c
				}
			}
			t.Errorf("%s: %s is in Secret %s, which no Certificate writes", ctr.Name, env, v.Secret.SecretName)
			return nil
		}
	}
	t.Errorf("%s: %s=%s is not in a mounted Secret", ctr.Name, env, file)
	return nil
}

func checkCertificate(t *testing.T, name string, c *certificate) {
	s := &c.Spec
	if s.SecretName == "" || len(s.DNSNames) == 0 || s.IssuerRef.Name == "" {
		t.Errorf("Certificate %s: want secretName, dnsNames and issuerRef", name)
	}
	if !slices.Contains([]string{"", "Issuer", "ClusterIssuer"}, s.IssuerRef.Kind) || !slices.Contains([]string{"", "cert-manager.io"}, s.IssuerRef.Group) {
		t.Errorf("Certificate %s: issuerRef %+v", name, s.IssuerRef)
	}
	if pk := s.PrivateKey; pk != nil {
		sizes := map[string][]int{"RSA": {0, 2048, 3072, 4096}, "ECDSA": {0, 256, 384, 521}, "Ed25519": {0}}
		if !slices.Contains(sizes[pk.Algorithm], pk.Size) || !slices.Contains([]string{"", "Never", "Always"}, pk.RotationPolicy) ||
			!slices.Contains([]string{"", "PKCS1", "PKCS8"}, pk.Encoding) {
			t.Errorf("Certificate %s: privateKey %+v", name, *pk)
		}
	}
	known := []string{"signing", "digital signature", "content commitment", "key encipherment", "key agreement",
		"data encipherment", "cert sign", "crl sign", "encipher only", "decipher only", "any", "server auth",
		"client auth", "code signing", "email protection", "s/mime", "ipsec end system", "ipsec tunnel",
		"ipsec user", "timestamping", "ocsp signing", "microsoft sgc", "netscape sgc"}
	for _, u := range s.Usages {
		if !slices.Contains(known, u) {
			t.Errorf("Certificate %s: unknown usage %q", name, u)
		}
	}
	if len(s.Usages) > 0 && !slices.Contains(s.Usages, "server auth") {
		t.Errorf("Certificate %s: usages %v lack server auth", name, s.Usages)
	}
	if s.Duration != nil && s.RenewBefore != nil && (s.RenewBefore.Duration >= s.Duration.Duration || s.Duration.Duration < time.Hour) {
		t.Errorf("Certificate %s: duration %v, renewBefore %v", name, s.Duration.Duration, s.RenewBefore.Duration)
	}
}
