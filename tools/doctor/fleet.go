package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Fleet is what doctor checks, read from a JSON fleet file (pgfleet-run writes one for the
// fleet it starts, .tmp/run/fleet.json):
//
//	{
//	  "services": {
//	    "stock": {
//	      "grpc_addr": "localhost:50051",       // host:port of the gRPC listener
//	      "health_addr": "",                    // HEALTH_ADDR (plaintext health), if the service has one
//	      "metrics_addr": "localhost:9101",     // host:port of /metrics and /healthz
//	      "database_url": "postgres://stock:...@127.0.0.1:5433/pgfleet", // the service's own DATABASE_URL
//	      "database_read_url": "postgres://stock:...@127.0.0.1:5434/pgfleet", // its DATABASE_READ_URL, if any
//	      "max_replica_lag": "10s",             // its MAX_REPLICA_LAG; default 10s
//	      "tls_ca_file": "",                    // CA of its TLS certificate; empty: plaintext gRPC
//	      "replicas": 1                         // how many run (for the connection budget); default 1
//	    }
//	  },
//	  "gateway": {"url": "http://localhost:8080", "metrics_url": "http://localhost:9100", "tls_ca_file": ""},
//	  "admin_token": "...",          // a token with role admin, for DatabaseMonitor (pgfleet-token -roles admin)
//	  "admin_token_file": ""         // or a file holding one; relative to the fleet file
//	}
type Fleet struct {
	Services       map[string]Service `json:"services"`
	Gateway        *Gateway           `json:"gateway,omitempty"`
	AdminToken     string             `json:"admin_token,omitempty"`
	AdminTokenFile string             `json:"admin_token_file,omitempty"`
}

// Service is one service of the fleet: where it listens and how it reaches its database.
type Service struct {
	GRPCAddr    string `json:"grpc_addr"`
	HealthAddr  string `json:"health_addr,omitempty"`
	MetricsAddr string `json:"metrics_addr,omitempty"`
	DatabaseURL string `json:"database_url"`
	// DatabaseReadURL is the service's DATABASE_READ_URL: its read replicas, each checked.
	DatabaseReadURL string   `json:"database_read_url,omitempty"`
	MaxReplicaLag   Duration `json:"max_replica_lag,omitempty"`
	TLSCAFile       string   `json:"tls_ca_file,omitempty"`
	Replicas        int      `json:"replicas,omitempty"`
}

// Duration is a time.Duration written as Go writes one ("10s", "1m30s") in the fleet file.
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration such as \"10s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Gateway is the fleet's HTTP edge.
type Gateway struct {
	URL        string `json:"url"`
	MetricsURL string `json:"metrics_url,omitempty"` // serves /healthz
	TLSCAFile  string `json:"tls_ca_file,omitempty"`
}

// readFleet reads and checks a fleet file; file names in it become relative to its directory.
func readFleet(path string) (*Fleet, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f Fleet
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields() // a misspelt field would otherwise skip its check silently
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("%s: no services", path)
	}
	dir := filepath.Dir(path)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	var errs []error
	for name, s := range f.Services {
		if s.GRPCAddr == "" || s.DatabaseURL == "" {
			errs = append(errs, fmt.Errorf("service %s: grpc_addr and database_url are required", name))
		}
		if s.Replicas < 0 {
			errs = append(errs, fmt.Errorf("service %s: replicas must not be negative", name))
		}
		if s.Replicas == 0 {
			s.Replicas = 1
		}
		if s.MaxReplicaLag < 0 {
			errs = append(errs, fmt.Errorf("service %s: max_replica_lag must not be negative", name))
		}
		if s.MaxReplicaLag == 0 {
			s.MaxReplicaLag = Duration(defaultMaxReplicaLag)
		}
		s.TLSCAFile = rel(s.TLSCAFile)
		f.Services[name] = s
	}
	if f.Gateway != nil {
		f.Gateway.TLSCAFile = rel(f.Gateway.TLSCAFile)
	}
	if f.AdminToken == "" && f.AdminTokenFile != "" {
		tok, err := os.ReadFile(rel(f.AdminTokenFile))
		if err != nil {
			errs = append(errs, fmt.Errorf("admin_token_file: %w", err))
		}
		f.AdminToken = strings.TrimSpace(string(tok))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &f, nil
}

// names are the fleet's service names, sorted, so reports come in one order.
func (f *Fleet) names() []string {
	names := make([]string, 0, len(f.Services))
	for n := range f.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
