package pgserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// allowReplication adds the replication line to a pg_hba.conf without one, once, and leaves
// one that has initdb's line as it is.
func TestAllowReplication(t *testing.T) {
	t.Parallel()
	const initdbLine = "host    replication     all             127.0.0.1/32            trust\n"
	tests := []struct {
		name, hba string
		added     bool
	}{
		{"initdb's line", "local all all trust\n" + initdbLine, false},
		{"none", "local all all trust\nhost all all 127.0.0.1/32 trust\n", true},
		{"commented out", "local all all trust\n#" + initdbLine, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "pg_hba.conf")
			if err := os.WriteFile(path, []byte(tt.hba), 0o600); err != nil {
				t.Fatal(err)
			}
			s := &Server{Options: Options{DataDir: dir}}
			for range 2 { // the second call finds the first one's line
				if err := s.allowReplication(); err != nil {
					t.Fatal(err)
				}
			}
			b, _ := os.ReadFile(path)
			want := tt.hba
			if tt.added {
				want += "\n" + hbaReplication + "\n"
			}
			if string(b) != want {
				t.Errorf("pg_hba.conf:\n%s\nwant:\n%s", b, want)
			}
			if n := strings.Count(string(b), hbaReplication); tt.added && n != 1 {
				t.Errorf("%d replication lines added, want 1", n)
			}
		})
	}
}
