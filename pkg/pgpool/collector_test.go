package pgpool_test

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
)

func TestCollector(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgpool.Config{MaxConns: 5, MinIdle: 1})
	mon := pgpool.NewMonitor(pool, time.Hour, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgpool.NewCollector(pool, mon))

	gather := func() map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatalf("Gather() = %v", err)
		}
		got := make(map[string]float64)
		for _, f := range families {
			m := f.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				got[f.GetName()] = c.GetValue()
			} else {
				got[f.GetName()] = m.GetGauge().GetValue()
			}
		}
		return got
	}

	before := gather()
	if before["pgfleet_db_up"] != 0 {
		t.Errorf("pgfleet_db_up before any ping = %v, want 0", before["pgfleet_db_up"])
	}
	if _, ok := before["pgfleet_db_ping_seconds"]; ok {
		t.Error("pgfleet_db_ping_seconds reported before any ping")
	}

	for range 10 {
		if _, err := pool.Exec(t.Context(), "SELECT 1"); err != nil {
			t.Fatalf("query: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	mon.OnChange(func(bool) { cancel() }) // stop after the first check
	mon.Run(ctx)

	got := gather()
	wantNames := []string{
		"pgfleet_db_ping_seconds",
		"pgfleet_db_pool_acquire_duration_seconds_total",
		"pgfleet_db_pool_acquired_conns",
		"pgfleet_db_pool_acquires_total",
		"pgfleet_db_pool_canceled_acquires_total",
		"pgfleet_db_pool_constructing_conns",
		"pgfleet_db_pool_empty_acquire_wait_seconds_total",
		"pgfleet_db_pool_empty_acquires_total",
		"pgfleet_db_pool_idle_conns",
		"pgfleet_db_pool_max_conns",
		"pgfleet_db_pool_max_idle_destroys_total",
		"pgfleet_db_pool_max_lifetime_destroys_total",
		"pgfleet_db_pool_new_conns_total",
		"pgfleet_db_pool_total_conns",
		"pgfleet_db_up",
	}
	if diff := cmp.Diff(wantNames, slices.Sorted(maps.Keys(got))); diff != "" {
		t.Errorf("metric names mismatch (-want +got):\n%s", diff)
	}
	checks := []struct {
		name   string
		ok     func(float64) bool
		expect string
	}{
		{"pgfleet_db_pool_max_conns", func(v float64) bool { return v == 5 }, "5"},
		{"pgfleet_db_pool_acquires_total", func(v float64) bool { return v >= 11 }, ">= 11 (10 queries and a ping)"},
		{"pgfleet_db_pool_acquired_conns", func(v float64) bool { return v == 0 }, "0"},
		{"pgfleet_db_pool_total_conns", func(v float64) bool { return v >= 1 && v <= 5 }, "1..5"},
		{"pgfleet_db_pool_new_conns_total", func(v float64) bool { return v >= 1 }, ">= 1"},
		{"pgfleet_db_pool_acquire_duration_seconds_total", func(v float64) bool { return v > 0 && v < 60 }, "in (0, 60)"},
		{"pgfleet_db_up", func(v float64) bool { return v == 1 }, "1"},
		{"pgfleet_db_ping_seconds", func(v float64) bool { return v > 0 && v < 5 }, "in (0, 5)"},
	}
	for _, c := range checks {
		if v := got[c.name]; !c.ok(v) {
			t.Errorf("%s = %v, want %s", c.name, v, c.expect)
		}
	}
	if got["pgfleet_db_pool_idle_conns"] > got["pgfleet_db_pool_total_conns"] {
		t.Errorf("idle conns %v > total conns %v", got["pgfleet_db_pool_idle_conns"], got["pgfleet_db_pool_total_conns"])
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	if problems, err := promlint.NewWithMetricFamilies(families).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("Lint() = %v, %v; want no problems", problems, err)
	}
}

func TestCollector_noMonitor(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgpool.Config{MaxConns: 2})
	reg := prometheus.NewRegistry()
	reg.MustRegister(pgpool.NewCollector(pool, nil))
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	if len(families) != 13 {
		t.Errorf("Gather() returned %d metrics, want the 13 pool metrics", len(families))
	}
}
