package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	base := map[string]string{"STOCK_ADDR": "stock:50051", "PORTFOLIO_ADDR": "portfolio:50052", "INTERVIEW_ADDR": "interview:50053"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		env     map[string]string
		check   func(t *testing.T, cfg config)
		wantErr string
	}{
		{
			name: "defaults",
			env:  base,
			check: func(t *testing.T, cfg config) {
				got := []any{cfg.HTTPAddr, cfg.MetricsAddr, cfg.MaxRequestBytes, cfg.StreamTimeout, cfg.Drain, len(cfg.CORSAllowedOrigins),
					cfg.MaxConnections, cfg.MaxInFlight, cfg.MaxQueued, cfg.Profiles}
				want := []any{":8080", ":9100", int64(4 << 20), 10 * time.Minute, 20 * time.Second, 0, 256, 128, 1024, false}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("defaults mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "writes_are_not_retried_by_default",
			env:  base,
			check: func(t *testing.T, cfg config) {
				all := strings.Join(append(append(cfg.Stock.RetryMethods, cfg.Portfolio.RetryMethods...), cfg.Interview.RetryMethods...), " ")
				for _, write := range []string{"ExecuteTrade", "Deposit", "Withdraw", "CreateUser", "CreatePortfolio",
					"StartSession", "SubmitAnswer", "CompleteSession", "DeleteStock", "CreateQuestion", "grpc.health"} {
					if strings.Contains(all, write) {
						t.Errorf("default RetryMethods include %s: %s", write, all)
					}
				}
				if len(cfg.Stock.RetryMethods) == 0 || len(cfg.Portfolio.RetryMethods) == 0 || len(cfg.Interview.RetryMethods) == 0 {
					t.Error("an upstream has no default RetryMethods, which pkg/client reads as every method")
				}
			},
		},
		{
			name: "retry_methods_from_env",
			env:  with("PORTFOLIO_RETRY_METHODS", "pgfleet.portfolio.v1.PortfolioService/GetPortfolio"),
			check: func(t *testing.T, cfg config) {
				if diff := cmp.Diff([]string{"pgfleet.portfolio.v1.PortfolioService/GetPortfolio"}, cfg.Portfolio.RetryMethods); diff != "" {
					t.Errorf("PORTFOLIO_RETRY_METHODS mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "cors_origins",
			env:  with("CORS_ALLOWED_ORIGINS", "http://localhost:3000,https://app.example.com"),
			check: func(t *testing.T, cfg config) {
				if diff := cmp.Diff([]string{"http://localhost:3000", "https://app.example.com"}, cfg.CORSAllowedOrigins); diff != "" {
					t.Errorf("CORS_ALLOWED_ORIGINS mismatch (-want +got):\n%s", diff)
				}
			},
		},
		{name: "missing_upstream", env: map[string]string{"STOCK_ADDR": "x:1", "PORTFOLIO_ADDR": "y:1"}, wantErr: "INTERVIEW_ADDR"},
		{name: "bad_body_limit", env: with("MAX_REQUEST_BYTES", "0"), wantErr: "MAX_REQUEST_BYTES"},
		{name: "bad_stream_timeout", env: with("STREAM_TIMEOUT", "-1s"), wantErr: "STREAM_TIMEOUT"},
		{name: "bad_in_flight", env: with("MAX_IN_FLIGHT", "0"), wantErr: "MAX_IN_FLIGHT"},
		{name: "bad_connections", env: with("MAX_CONNECTIONS", "0"), wantErr: "MAX_CONNECTIONS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := loadConfig(t.Context(), envconfig.MapLookuper(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("loadConfig() error = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadConfig(): %v", err)
			}
			tt.check(t, cfg)
		})
	}
}
