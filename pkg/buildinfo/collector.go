package buildinfo

import "github.com/prometheus/client_golang/prometheus"

// NewCollector returns the gauge pgfleet_build_info{version,revision,goversion}, always 1,
// so that dashboards can tell which build each replica runs (count by version) and join it
// onto other series.
func NewCollector() prometheus.Collector {
	i := Get()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "pgfleet_build_info",
		Help: "Always 1; the labels say which build of pgfleet the process runs.",
		ConstLabels: prometheus.Labels{
			"version":   i.Version,
			"revision":  i.Revision,
			"goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
