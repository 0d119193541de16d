package pgserver_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

// show returns the server's value of each setting.
func show(t *testing.T, url string, settings []pgserver.Setting) map[string]string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	got := map[string]string{}
	for _, s := range settings {
		var v string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", s.Name).Scan(&v); err != nil {
			t.Fatal(err)
		}
		got[s.Name] = v
	}
	return got
}

func want(settings ...[]pgserver.Setting) map[string]string {
	m := map[string]string{}
	for _, list := range settings {
		for _, s := range list {
			m[s.Name] = s.Value
		}
	}
	return m
}

func TestStart_settings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		throwaway bool
		want      map[string]string
	}{
		{"throwaway", true, want(pgserver.Base, pgserver.Throwaway)},
		{"kept", false, want(pgserver.Base, []pgserver.Setting{{"fsync", "on"}, {"synchronous_commit", "on"}, {"full_page_writes", "on"}})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := pgserver.Start(t.Context(), pgserver.Options{DataDir: filepath.Join(t.TempDir(), "data"), Throwaway: tt.throwaway})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
			var names []pgserver.Setting
			for k := range tt.want {
				names = append(names, pgserver.Setting{Name: k})
			}
			if diff := cmp.Diff(tt.want, show(t, s.URL("postgres"), names)); diff != "" {
				t.Errorf("settings (-want +got):\n%s", diff)
			}
		})
	}
}

// A kept data directory survives a stop: a second Start on it finds the first one's data, and
// Running reports the server only while it runs.
func TestStart_keptDataDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	s, err := pgserver.Start(t.Context(), pgserver.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	if pid, port, ok := pgserver.Running(dir); !ok || pid != s.Pid() || port != s.Port {
		t.Errorf("Running = %d, %d, %v; want %d, %d, true", pid, port, ok, s.Pid(), s.Port)
	}
	conn, err := pgx.Connect(t.Context(), s.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), "CREATE DATABASE kept"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := pgserver.Running(dir); ok {
		t.Error("Running reports a stopped server")
	}

	again, err := pgserver.Start(t.Context(), pgserver.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = again.Stop() })
	conn, err = pgx.Connect(t.Context(), again.URL("kept"))
	if err != nil {
		t.Fatalf("database made before the restart: %v", err)
	}
	conn.Close(t.Context())
}

// A standby made by StartStandby streams from its primary under its name, has the Replication
// settings, refuses writes, and accepts them once promoted after the primary's crash.
func TestStartStandby(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	primary, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "primary"), Throwaway: true, Replication: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = primary.Stop() })
	began := time.Now()
	standby, err := primary.StartStandby(ctx, pgserver.StandbyOptions{DataDir: filepath.Join(dir, "standby"), Name: "standby1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = standby.Stop() })
	t.Logf("standby started in %v", time.Since(began).Round(time.Millisecond))
	all := slices.Concat(pgserver.Base, pgserver.Throwaway, pgserver.Replication)
	if diff := cmp.Diff(want(all), show(t, primary.URL("postgres"), all)); diff != "" {
		t.Errorf("primary settings (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want(pgserver.Base, pgserver.Throwaway, pgserver.Replication), show(t, standby.URL("postgres"), slices.Concat(pgserver.Base, pgserver.Throwaway, pgserver.Replication))); diff != "" {
		t.Errorf("standby settings (-want +got):\n%s", diff)
	}
	if in, err := standby.InRecovery(ctx); err != nil || !in {
		t.Errorf("standby InRecovery = %v, %v; want true", in, err)
	}

	exec(t, primary.URL("postgres"), "CREATE TABLE t (v int); INSERT INTO t VALUES (1)")
	lsn, err := primary.CurrentLSN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pgtest.Poll(t, "the standby replays the insert", func() bool {
		got, err := standby.ReplayLSN(ctx)
		return err == nil && got >= lsn
	})
	pgtest.Poll(t, "pg_stat_replication names the standby", func() bool {
		return one(t, primary.URL("postgres"), "SELECT count(*)::text FROM pg_stat_replication WHERE application_name = 'standby1' AND state = 'streaming'") == "1"
	})
	if got := one(t, standby.URL("postgres"), "SELECT count(*)::text FROM t"); got != "1" {
		t.Errorf("rows on the standby = %s, want 1", got)
	}
	var pgErr *pgconn.PgError
	if err := execErr(t, standby.URL("postgres"), "INSERT INTO t VALUES (2)"); !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Errorf("insert on the standby: %v, want SQLSTATE 25006", err)
	}

	if err := primary.StopImmediate(); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	if err := standby.Promote(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("promoted in %v", time.Since(began).Round(time.Millisecond))
	exec(t, standby.URL("postgres"), "INSERT INTO t VALUES (2)")
	if in, err := standby.InRecovery(ctx); err != nil || in {
		t.Errorf("promoted InRecovery = %v, %v; want false", in, err)
	}
}

func TestParseLSN(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0/0", "16/B374D848", "FFFFFFFF/FFFFFFFF"} {
		l, err := pgserver.ParseLSN(s)
		if err != nil || l.String() != s {
			t.Errorf("ParseLSN(%q) = %v, %v; want it back", s, l, err)
		}
	}
	if a, b := must(pgserver.ParseLSN("1/0")), must(pgserver.ParseLSN("0/FFFFFFFF")); a <= b {
		t.Errorf("1/0 (%d) <= 0/FFFFFFFF (%d)", a, b)
	}
	for _, s := range []string{"", "1", "x/1", "1/"} {
		if _, err := pgserver.ParseLSN(s); err == nil {
			t.Errorf("ParseLSN(%q): no error", s)
		}
	}
}

func must(l pgserver.LSN, err error) pgserver.LSN {
	if err != nil {
		panic(err)
	}
	return l
}

func execErr(t *testing.T, url, sql string) error {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	_, err = conn.Exec(t.Context(), sql)
	return err
}

func exec(t *testing.T, url, sql string) {
	t.Helper()
	if err := execErr(t, url, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func one(t *testing.T, url, sql string) string {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var s string
	if err := conn.QueryRow(t.Context(), sql).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}
