package main

import "testing"

// A DATABASE_URL listing several hosts (failover) passes to every service whole: all hosts,
// the query (target_session_attrs), and only the role and database changed; printed masked.
func TestServiceURL_severalHosts(t *testing.T) {
	t.Parallel()
	tests := []struct{ admin, want, masked string }{
		{"postgres://admin:s3cret@db1:5432,db2:5433/postgres?target_session_attrs=read-write",
			"postgres://stock:pw@db1:5432,db2:5433/pgfleet?target_session_attrs=read-write",
			"postgres://admin:****@db1:5432,db2:5433/postgres?target_session_attrs=read-write"},
		{"postgresql://admin:s3cret@[::1]:5432,[::2]:5433/postgres?sslmode=disable&target_session_attrs=read-write",
			"postgres://stock:pw@[::1]:5432,[::2]:5433/pgfleet?sslmode=disable&target_session_attrs=read-write",
			"postgresql://admin:****@[::1]:5432,[::2]:5433/postgres?sslmode=disable&target_session_attrs=read-write"},
	}
	for _, tt := range tests {
		m := adminURLPattern.FindStringSubmatch(tt.admin)
		if m == nil {
			t.Errorf("DATABASE_URL %s refused", tt.admin)
			continue
		}
		f := &fleet{pgHostPort: m[4], pgQuery: m[6]}
		if got := f.serviceURL("stock", "pw"); got != tt.want {
			t.Errorf("serviceURL from %s = %s, want %s", tt.admin, got, tt.want)
		}
		if got := mask(tt.admin); got != tt.masked {
			t.Errorf("mask(%s) = %s, want %s", tt.admin, got, tt.masked)
		}
	}
}
