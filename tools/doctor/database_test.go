package main

import (
	"fmt"
	"strings"
	"testing"
)

// The budget counts each pool once per replica against max_connections less the reserved
// slots: over it fails, above 80% warns, and a pool of unknown size makes the sum a guess.
func TestCheckBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		pools  []pool
		want   Status
		detail string
	}{
		{"fits", []pool{{"stock", 20, 1}, {"portfolio", 20, 1}}, OK, "pools 40 (stock 20×1 + portfolio 20×1) of 97 allowed"},
		{"replicas_count", []pool{{"stock", 20, 4}, {"portfolio", 20, 1}}, Fail, "pools 100 (stock 20×4 + portfolio 20×1) of 97 allowed"},
		{"above_80_percent", []pool{{"stock", 40, 2}}, Warn, "pools 80 (stock 40×2) of 97 allowed (max_connections 100 - 3 reserved): 82%"},
		{"unknown_pool", []pool{{"stock", 20, 1}, {"interview", 0, 1}}, Warn, "pool size unknown for interview"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []Check
			checkBudget(tt.pools, 100, 3, func(check string, st Status, format string, args ...any) {
				got = append(got, Check{Check: check, Status: st, Detail: fmt.Sprintf(format, args...)})
			})
			if len(got) != 1 || got[0].Status != tt.want || !strings.Contains(got[0].Detail, tt.detail) {
				t.Errorf("checkBudget = %+v, want one %s check with %q", got, tt.want, tt.detail)
			}
		})
	}
}

// serverOf names every host of a URL that lists several (failover), each once, in order.
func TestServerOf(t *testing.T) {
	t.Parallel()
	tests := []struct{ url, want string }{
		{"postgres://u:pw@db:5432/pgfleet", "db:5432"},
		{"postgres://u:pw@db1:5432,db2:5433/pgfleet?target_session_attrs=read-write", "db1:5432,db2:5433"},
		{"postgres://u:pw@[::1]:5432,db2/pgfleet?sslmode=disable", "[::1]:5432,db2:5432"},
		{"host=db1,db2 port=5432,5433 dbname=pgfleet", "db1:5432,db2:5433"},
		{"postgres://u:pw@db:notaport/pgfleet", ""},
	}
	for _, tt := range tests {
		if got := serverOf(tt.url); got != tt.want {
			t.Errorf("serverOf(%q) = %q, want %q", tt.url, got, tt.want)
		}
	}
}
