package client

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
)

func TestServiceConfig(t *testing.T) {
	t.Parallel()
	const policy = `"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.05s","maxBackoff":"1s",` +
		`"backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}`
	const lb = `{"loadBalancingConfig":[{"round_robin":{}}]`
	monitor := []jsonName{{Service: "pgfleet.ops.v1.DatabaseMonitor", Method: "GetDatabaseStatus"}}
	cases := []struct {
		name        string
		maxAttempts int
		methods     []jsonName
		want        string
	}{
		{
			name: "listed methods", maxAttempts: 3,
			methods: append([]jsonName{{Service: "pgfleet.stock.v1.StockService", Method: "GetStock"}}, monitor...),
			want: lb + `,"methodConfig":[{"name":[{"service":"pgfleet.stock.v1.StockService","method":"GetStock"},` +
				`{"service":"pgfleet.ops.v1.DatabaseMonitor","method":"GetDatabaseStatus"}],` + policy + `}]}`,
		},
		{name: "retries off", maxAttempts: 1, methods: monitor, want: lb + `}`},
		{name: "nothing to retry", maxAttempts: 3, want: lb + `}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := serviceConfig(tc.maxAttempts, tc.methods)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestRetryable_onlyDeclared: the retry policy names exactly the methods whose proto declares
// idempotency_level, of every service linked in; a method without it (a write that is not
// IDEMPOTENT, grpc's health check) is named nowhere, so gRPC never retries it.
func TestRetryable_onlyDeclared(t *testing.T) {
	t.Parallel()
	got := map[jsonName]bool{}
	for _, n := range retryable() {
		got[n] = true
	}
	if len(got) == 0 {
		t.Fatal("retryable() is empty")
	}
	seen := 0
	protoregistry.GlobalFiles.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				n := jsonName{Service: string(svc.FullName()), Method: string(m.Name())}
				if got[n] != Retryable(m) {
					t.Errorf("%s/%s: in the retry policy %v, declares a safe retry %v", n.Service, n.Method, got[n], Retryable(m))
				}
				seen++
			}
		}
		return true
	})
	if seen == 0 {
		t.Fatal("no services registered")
	}
	monitor := opsv1.File_pgfleet_ops_v1_ops_proto.Services().ByName("DatabaseMonitor").Methods().ByName("GetDatabaseStatus")
	check := healthpb.File_grpc_health_v1_health_proto.Services().ByName("Health").Methods().ByName("Check")
	if !Retryable(monitor) || Retryable(check) {
		t.Errorf("Retryable(GetDatabaseStatus) = %v, Retryable(Health/Check) = %v; want true, false", Retryable(monitor), Retryable(check))
	}
	if diff := cmp.Diff(retryable(), retryable()); diff != "" {
		t.Errorf("retryable() is not stable:\n%s", diff)
	}
}

func TestSeconds(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		50 * time.Millisecond:   "0.05s",
		time.Second:             "1s",
		1500 * time.Microsecond: "0.0015s",
	} {
		if got := seconds(d); got != want {
			t.Errorf("seconds(%v) = %q, want %q", d, got, want)
		}
	}
}
