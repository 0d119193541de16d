package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
)

// fleetFile is the file `pgfleet doctor --fleet` reads (tools/doctor/fleet.go documents it).
func (f *fleet) fleetFile() string { return filepath.Join(f.runDir, "fleet.json") }

// writeFleetFile describes the running fleet for pgfleet doctor. It holds the services'
// database passwords and an admin token, so only its owner may read it.
func (f *fleet) writeFleetFile() error {
	type service struct {
		GRPCAddr        string `json:"grpc_addr"`
		MetricsAddr     string `json:"metrics_addr"`
		DatabaseURL     string `json:"database_url"`
		DatabaseReadURL string `json:"database_read_url,omitempty"` // REPLICAS=1: the standby
		MaxReplicaLag   string `json:"max_replica_lag,omitempty"`
		Replicas        int    `json:"replicas"`
	}
	type gateway struct {
		URL        string `json:"url"`
		MetricsURL string `json:"metrics_url"`
	}
	doc := struct {
		Services   map[string]service `json:"services"`
		Gateway    gateway            `json:"gateway"`
		AdminToken string             `json:"admin_token"`
	}{Services: map[string]service{}, AdminToken: f.adminToken,
		Gateway: gateway{URL: f.gatewayURL(), MetricsURL: "http://" + probeHost(f.gatewayMetr) + ":" + strconv.Itoa(mustPort(f.gatewayMetr))}}
	for _, s := range f.svcs {
		doc.Services[s.name] = service{GRPCAddr: f.grpcTarget(s.name),
			MetricsAddr: probeHost(s.metrics) + ":" + strconv.Itoa(mustPort(s.metrics)),
			DatabaseURL: f.serviceURL(s.name, password(s.name)), DatabaseReadURL: f.readURL(s.name, password(s.name)),
			MaxReplicaLag: os.Getenv("MAX_REPLICA_LAG"), Replicas: 1}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.runDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(f.fleetFile(), append(b, '\n'), 0o600)
}
