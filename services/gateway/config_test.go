package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sethvargo/go-envconfig"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	interviewv1 "github.com/pgfleet/pgfleet/gen/pgfleet/interview/v1"
	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/client"
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
			name: "upstream_breaker_from_env",
			env:  with("PORTFOLIO_BREAKER_MIN_REQUESTS", "7"),
			check: func(t *testing.T, cfg config) {
				if got := cfg.Portfolio.Breaker.MinRequests; got == nil || *got != 7 || cfg.Stock.Breaker.MinRequests != nil {
					t.Errorf("PORTFOLIO_BREAKER_MIN_REQUESTS=7: portfolio %v, stock %v; want 7 and unset", got, cfg.Stock.Breaker.MinRequests)
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

// TestRetries: the upstream clients retry (on UNAVAILABLE) exactly the RPCs whose protos
// declare idempotency_level, which pkg/client reads: the reads (NO_SIDE_EFFECTS) and the
// writes listed here as IDEMPOTENT. No other write is retried: a create, a delete or an
// answer that UNAVAILABLE cut short after the service ran it must not run twice. A new RPC
// fails this test until it is listed here or declared a read.
func TestRetries(t *testing.T) {
	t.Parallel()
	const idempotent = descriptorpb.MethodOptions_IDEMPOTENT
	const once = descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
	writes := map[string]descriptorpb.MethodOptions_IdempotencyLevel{
		// Upserts by key.
		"UpsertStocks": idempotent, "IngestPrices": idempotent, "UpsertRecommendations": idempotent,
		"BulkImportQuestions": idempotent,
		// A required request_id: a repeat returns the first answer.
		"Deposit": idempotent, "Withdraw": idempotent, "ExecuteTrade": idempotent,
		// A repeat returns the summary stored the first time.
		"CompleteSession": idempotent,
		// Sets the masked fields of a job by key: a repeat sets them again.
		"UpdateIngestionJob": idempotent,
		// Tried once: a repeat would run again (request_id optional) or fail after a success.
		"CreateUser": once, "CreatePortfolio": once, "CreateQuestion": once, "UpdateQuestion": once,
		"DeleteQuestion": once, "DeleteStock": once, "StartSession": once, "SubmitAnswer": once,
		"CreateIngestionJob": once, "DeleteIngestionJob": once, "RunIngestionJob": once, "CancelIngestionRun": once,
		// /health answers at once for a service that is down.
		"Check": once, "Watch": once, "List": once,
	}
	for _, svc := range []protoreflect.ServiceDescriptor{
		stockv1.File_pgfleet_stock_v1_stock_proto.Services().Get(0),
		portfoliov1.File_pgfleet_portfolio_v1_portfolio_proto.Services().Get(0),
		interviewv1.File_pgfleet_interview_v1_interview_proto.Services().ByName("QuestionBankService"),
		interviewv1.File_pgfleet_interview_v1_interview_proto.Services().ByName("InterviewService"),
		opsv1.File_pgfleet_ops_v1_ops_proto.Services().Get(0),
		healthpb.File_grpc_health_v1_health_proto.Services().Get(0),
	} {
		for i := range svc.Methods().Len() {
			m := svc.Methods().Get(i)
			want, isWrite := writes[string(m.Name())]
			if !isWrite {
				want = descriptorpb.MethodOptions_NO_SIDE_EFFECTS // a read
			}
			got := m.Options().(*descriptorpb.MethodOptions).GetIdempotencyLevel()
			if got != want || client.Retryable(m) != (want != once) {
				t.Errorf("%s: idempotency_level %v (retried: %v), want %v", m.FullName(), got, client.Retryable(m), want)
			}
		}
	}
}
