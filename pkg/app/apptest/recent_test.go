package apptest_test

import (
	"testing"
	"testing/fstest"
	"time"

	opsv1 "github.com/pgfleet/pgfleet/gen/pgfleet/ops/v1"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/migrate"
)

// TestStartServer_recent: a started service samples its own traffic every HISTORY_INTERVAL,
// and DatabaseMonitor answers the samples: once calls were served, one has a rate, a p99 and
// pool use within [0, 1]. The monitor's own calls are the traffic.
func TestStartServer_recent(t *testing.T) {
	t.Parallel()
	set := migrate.Set{Schema: "apptest", FS: fstest.MapFS{"0001_init.sql": {Data: []byte("-- +goose Up\nSELECT 1;\n")}}}
	_, conn := apptest.StartServer(t, app.Options{Name: "apptest", Migrations: set},
		map[string]string{"HISTORY_INTERVAL": "100ms"}, func(*app.Service) []string { return nil })
	monitor := opsv1.NewDatabaseMonitorClient(conn)

	deadline := time.Now().Add(60 * time.Second) // generous: a busy machine
	for {
		resp, err := monitor.GetDatabaseStatus(t.Context(), &opsv1.GetDatabaseStatusRequest{})
		if err != nil {
			t.Fatalf("GetDatabaseStatus: %v", err)
		}
		recent := resp.GetStatus().GetRecent()
		for _, s := range recent {
			if s.GetCallsPerSecond() > 0 && s.GetP99Seconds() > 0 {
				if s.GetPoolUse() < 0 || s.GetPoolUse() > 1 || s.GetErrorRatio() != 0 {
					t.Errorf("sample %v: want pool use within [0, 1] and no server error", s)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sample with calls after 60 s; recent = %v", recent)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
