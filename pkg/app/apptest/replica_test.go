package apptest_test

import (
	"testing"
	"testing/fstest"

	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/migrate"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// TestStartServer_replicaBehindMigrations: a service started while its replica has not
// replayed its migrations reads on the primary, not on the replica that lacks its tables,
// though the replica's lag in time is within MAX_REPLICA_LAG; once the replica has replayed
// them, reads go to it.
func TestStartServer_replicaBehindMigrations(t *testing.T) {
	cluster := pgtest.NewReplicatedCluster(t)
	primaryURL, standbyURL := cluster.NewDBURLs(t) // empty: the service migrates it
	cluster.WaitReplayed(t, cluster.PrimaryLSN(t))
	cluster.PauseReplay(t)
	set := migrate.Set{Schema: "floor", FS: fstest.MapFS{"0001_init.sql": {Data: []byte(
		"-- +goose Up\nCREATE TABLE floor.notes (id int PRIMARY KEY);\n")}}}
	svc, _ := apptest.StartServer(t, app.Options{Name: "floor", Migrations: set}, map[string]string{
		"DATABASE_URL": primaryURL, "DATABASE_READ_URL": standbyURL,
		"MAX_REPLICA_LAG": "1h", "REPLICA_CHECK_INTERVAL": "50ms",
	}, func(*app.Service) []string { return nil })
	read := func() error {
		var n int
		return svc.DB.QueryRow(replica.WithReplicaReads(t.Context(), 0), "SELECT count(*) FROM floor.notes").Scan(&n)
	}

	// Within its lag bound, but behind the migrations: up, not usable.
	pgtest.Poll(t, "the paused standby checked and up", func() bool {
		rs := svc.Reads.Status().Replicas
		return len(rs) == 1 && rs[0].Up
	})
	if rs := svc.Reads.Status().Replicas; rs[0].Usable {
		t.Error("the standby behind the service's migrations is usable, want not")
	}
	if err := read(); err != nil {
		t.Fatalf("read with the standby behind the migrations: %v; want it run on the primary", err)
	}
	cluster.ResumeReplay(t)
	pgtest.Poll(t, "a read on the standby once it has replayed the migrations", func() bool {
		before := svc.Reads.Status().Replicas[0].Reads
		if err := read(); err != nil {
			t.Fatalf("read: %v", err)
		}
		return svc.Reads.Status().Replicas[0].Reads > before
	})
}
