package apptest_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/migrate"
)

// TestStartServer checks that a test server is the binary's: migrated, health tied to the
// pool, DatabaseMonitor served, auth enforced, and settings at the binary's defaults unless
// the test sets them.
func TestStartServer(t *testing.T) {
	t.Parallel()
	set := migrate.Set{Schema: "apptest", FS: fstest.MapFS{"0001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE apptest.things (id bigint PRIMARY KEY);
`)}}}
	tests := []struct {
		name         string
		env          map[string]string
		wantMaxConns int32
	}{
		{"defaults", nil, 20}, // DB_POOL_SIZE's default
		{"set_by_the_test", map[string]string{"DB_POOL_SIZE": "7"}, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			registered := false
			svc, conn := apptest.StartServer(t, app.Options{Name: "apptest", Migrations: set}, tt.env, func(svc *app.Service) []string {
				registered = svc.Server != nil && svc.Pool != nil && svc.Retry != nil && svc.Locks != nil && svc.Log != nil
				return nil
			})
			if !registered {
				t.Error("register did not get the started service's server, pool, retrier, locks and log")
			}
			if _, err := svc.Pool.Exec(t.Context(), `SELECT FROM apptest.things`); err != nil {
				t.Errorf("migrations not applied: %v", err)
			}
			apptest.AwaitHealth(t, conn, "", healthpb.HealthCheckResponse_SERVING, 30*time.Second)

			resp, err := opsv1.NewDatabaseMonitorClient(conn).GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
			if err != nil {
				t.Fatalf("GetDatabaseStatus as admin: %v", err)
			}
			if got := resp.GetStatus().GetPool().GetMaxConns(); got != tt.wantMaxConns {
				t.Errorf("pool max conns = %d, want %d", got, tt.wantMaxConns)
			}
			anonymous := opsv1.NewDatabaseMonitorClient(apptest.Dial(t, svc.Server.GRPCAddr()))
			if _, err := anonymous.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("GetDatabaseStatus without a token = %v, want Unauthenticated", err)
			}
		})
	}
}

// TestStartServer_lockMetrics: the service's Locker records its waits on the service's
// registry, which /metrics serves beside pgfleet_build_info.
func TestStartServer_lockMetrics(t *testing.T) {
	t.Parallel()
	set := migrate.Set{Schema: "apptest", FS: fstest.MapFS{"0001_init.sql": {Data: []byte(`-- +goose Up
CREATE TABLE apptest.things (id bigint PRIMARY KEY);
`)}}}
	svc, _ := apptest.StartServer(t, app.Options{Name: "apptest", Migrations: set}, nil, func(*app.Service) []string { return nil })
	tx, err := svc.Pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // nothing to keep
	if err := svc.Locks.Acquire(t.Context(), tx, "thing:1", lock.Write); err != nil {
		t.Fatalf("Acquire: %v", err)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+svc.Server.MetricsAddr()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(body), "\n")
	for _, want := range []string{
		`pgfleet_lock_wait_seconds_count{kind="thing",mode="write",outcome="acquired"} 1`,
		`pgfleet_build_info{`,
	} {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, want) }) {
			t.Errorf("GET /metrics lacks a line starting %q", want)
		}
	}
}
