package pgpool

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolMetrics are read from pgxpool.Stat at every scrape.
var poolMetrics = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(*pgxpool.Stat) float64
}{
	{"pgfleet_db_pool_max_conns", "Maximum size of the pool.", prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }},
	{"pgfleet_db_pool_total_conns", "Connections in the pool: idle, acquired and being opened.", prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }},
	{"pgfleet_db_pool_idle_conns", "Idle connections.", prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }},
	{"pgfleet_db_pool_acquired_conns", "Connections lent out.", prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }},
	{"pgfleet_db_pool_constructing_conns", "Connections being opened.", prometheus.GaugeValue,
		func(s *pgxpool.Stat) float64 { return float64(s.ConstructingConns()) }},
	{"pgfleet_db_pool_acquires_total", "Successful acquires of a connection.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }},
	{"pgfleet_db_pool_acquire_duration_seconds_total", "Time spent in successful acquires.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }},
	{"pgfleet_db_pool_empty_acquires_total", "Successful acquires that had to wait: no idle connection.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }},
	{"pgfleet_db_pool_empty_acquire_wait_seconds_total", "Time spent waiting in acquires that found no idle connection.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return s.EmptyAcquireWaitTime().Seconds() }},
	{"pgfleet_db_pool_canceled_acquires_total", "Acquires abandoned because their context ended.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }},
	{"pgfleet_db_pool_new_conns_total", "Connections opened.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.NewConnsCount()) }},
	{"pgfleet_db_pool_max_lifetime_destroys_total", "Connections closed for reaching DB_POOL_RECYCLE.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxLifetimeDestroyCount()) }},
	{"pgfleet_db_pool_max_idle_destroys_total", "Connections closed for idling too long.", prometheus.CounterValue,
		func(s *pgxpool.Stat) float64 { return float64(s.MaxIdleDestroyCount()) }},
}

var (
	upDesc = prometheus.NewDesc("pgfleet_db_up",
		"1 if the last health ping succeeded, else 0.", nil, nil)
	pingDesc = prometheus.NewDesc("pgfleet_db_ping_seconds",
		"Round trip of the last successful health ping.", nil, nil)
)

type collector struct {
	pool  *pgxpool.Pool
	mon   *Monitor
	descs []*prometheus.Desc // parallel to poolMetrics
}

// NewCollector returns a collector of pool's figures, read from pool.Stat at scrape time so no
// goroutine polls, and of mon's last ping (pgfleet_db_up, pgfleet_db_ping_seconds). mon may be
// nil. Register it on the process's own registry.
func NewCollector(pool *pgxpool.Pool, mon *Monitor) prometheus.Collector {
	c := &collector{pool: pool, mon: mon}
	for _, m := range poolMetrics {
		c.descs = append(c.descs, prometheus.NewDesc(m.name, m.help, nil, nil))
	}
	return c
}

// Describe sends the descriptors of every metric the collector makes.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
	if c.mon != nil {
		ch <- upDesc
		ch <- pingDesc
	}
}

// Collect reads the pool's statistics and the monitor's last ping.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	for i, m := range poolMetrics {
		ch <- prometheus.MustNewConstMetric(c.descs[i], m.kind, m.value(s))
	}
	if c.mon == nil {
		return
	}
	last := c.mon.Last() // one read, so up and the round trip describe the same ping
	if last.At.IsZero() || last.Err != nil {
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(pingDesc, prometheus.GaugeValue, last.RTT.Seconds())
}
