package pgserver_test

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
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
