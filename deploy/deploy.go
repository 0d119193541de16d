// Package deploy holds pgfleet's container build, Kubernetes manifests (kustomize base,
// overlays, CloudNativePG clusters) and docker compose file. It has no code: its tests decode
// every manifest strictly into the Kubernetes API types, render each overlay with kustomize's
// Go API, and check ports, probes, env names and images against the services' Go sources.
package deploy
