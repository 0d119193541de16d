package deploy

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The monitoring component, and its promtool unit tests (which manifestFiles leaves to
// promtool: they are no Kubernetes objects).
const (
	monitoringDir   = "components/monitoring"
	monitoringTests = monitoringDir + "/tests"
)

// runbookBase is where every alert's runbook_url points: docs/operations.md, which has a
// "### <alert>" heading per alert (GitHub's anchor is the heading in lower case).
const runbookBase = "https://github.com/pgfleet/pgfleet/blob/main/docs/operations.md#"

// cnpgMetrics are the names the expressions read from CloudNativePG's exporter (its own
// PodMonitor), not from pgfleet's processes.
var cnpgMetrics = []string{"cnpg_pg_replication_lag"}

// tlsOnly are names a process exports only when it serves TLS, which the live fleet of
// TestMonitoring_namesExported does not: pkg/server's and the gateway's TLS tests read them from
// a real scrape (the certificate's NotAfter).
var tlsOnly = []string{"pgfleet_tls_certificate_expiry_timestamp_seconds"}

// severities are the alerts' severity labels, as kube-prometheus-stack's Alertmanager routes them.
var severities = []string{"critical", "warning"}

var promQL = parser.NewParser(parser.Options{})

// checkMonitoring (components/monitoring, rendered into an overlay): a PodMonitor per
// component selects exactly its pods and scrapes its metrics port by name; the rules parse
// and every alert is documented; every dashboard ConfigMap holds a valid dashboard.
func checkMonitoring(t *testing.T, m *manifests) {
	for _, name := range components {
		pm, ok := m.podMonitors[name]
		if !ok {
			t.Errorf("no PodMonitor %s", name)
			continue
		}
		checkPodMonitor(t, m, name, pm)
	}
	if extra := slices.DeleteFunc(mapKeys(m.podMonitors), func(n string) bool { return slices.Contains(components, n) }); len(extra) > 0 {
		t.Errorf("PodMonitors %v are for no pgfleet component", extra)
	}
	if len(m.rules) == 0 {
		t.Error("no PrometheusRule")
	}
	// Labelled like the base's objects, so a Prometheus can select them by it.
	for _, o := range slices.Concat(objectMetas(m.podMonitors), objectMetas(m.rules)) {
		if o.GetLabels()["app.kubernetes.io/part-of"] != "pgfleet" {
			t.Errorf("%s lacks the label app.kubernetes.io/part-of=pgfleet", o.GetName())
		}
	}
	lagAlert := false
	for _, name := range mapKeys(m.rules) {
		if groups := ruleGroups(t, name, m.rules[name]); groups != nil {
			checkAlerts(t, groups)
			lagAlert = checkReplicationLagAlert(t, m, groups) || lagAlert
		}
	}
	if !lagAlert {
		t.Errorf("no alert %s on CloudNativePG's replication lag", replicationLagAlert)
	}
	var uids []string
	for _, name := range mapKeys(m.configMaps) {
		cm := m.configMaps[name]
		if cm.Labels["grafana_dashboard"] != "1" {
			continue
		}
		for _, key := range mapKeys(cm.Data) {
			d, _ := parseDashboard(t, name+"/"+key, []byte(cm.Data[key]))
			if d != nil {
				if slices.Contains(uids, d.UID) {
					t.Errorf("%s/%s: uid %q used by another dashboard", name, key, d.UID)
				}
				uids = append(uids, d.UID)
			}
		}
	}
	if want := len(components) + 1; len(uids) != want { // one per component and the fleet's
		t.Errorf("%d dashboards in ConfigMaps labelled grafana_dashboard=1, want %d", len(uids), want)
	}
}

// objectMetas returns the metadata of objs, sorted by name.
func objectMetas[T metav1.Object](objs map[string]T) []metav1.Object {
	var metas []metav1.Object
	for _, k := range mapKeys(objs) {
		metas = append(metas, objs[k])
	}
	return metas
}

func checkPodMonitor(t *testing.T, m *manifests, name string, pm *monitoringv1.PodMonitor) {
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		t.Errorf("PodMonitor %s: %v", name, err)
		return
	}
	var selected []string
	for n, d := range m.deployments {
		if sel.Matches(k8slabels.Set(d.Spec.Template.Labels)) {
			selected = append(selected, n)
		}
	}
	slices.Sort(selected)
	if !slices.Equal(selected, []string{name}) {
		t.Errorf("PodMonitor %s selects the pods of %v, want [%s]", name, selected, name)
	}
	if ns := pm.Spec.NamespaceSelector; ns.Any || len(ns.MatchNames) > 0 {
		t.Errorf("PodMonitor %s: namespaceSelector %+v, want none (its own namespace: the fleet's)", name, ns)
	}
	// The rules and dashboards select job="<component>".
	d := m.deployments[name]
	if pm.Spec.JobLabel == "" || d == nil || d.Spec.Template.Labels[pm.Spec.JobLabel] != name {
		t.Errorf("PodMonitor %s: jobLabel %q must name a pod label whose value is %s", name, pm.Spec.JobLabel, name)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Errorf("PodMonitor %s: %d endpoints, want one", name, len(pm.Spec.PodMetricsEndpoints))
		return
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Port == nil || *ep.Port != "metrics" || ep.PortNumber != nil {
		t.Errorf("PodMonitor %s: want port: metrics, by name only", name)
	} else if d != nil && !hasPort(&d.Spec.Template.Spec.Containers[0], *ep.Port) {
		t.Errorf("PodMonitor %s: container %s has no port named %s", name, name, *ep.Port)
	}
	if ep.Path != "/metrics" {
		t.Errorf("PodMonitor %s: path %q, want /metrics", name, ep.Path)
	}
}

// ruleGroups parses a PrometheusRule's spec, which is a Prometheus rule file, as Prometheus
// does: strictly, every expression and template checked.
func ruleGroups(t *testing.T, name string, r *monitoringv1.PrometheusRule) *rulefmt.RuleGroups {
	t.Helper()
	b, err := yaml.Marshal(r.Spec) // JSON names: the rule file's
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(b, false, model.UTF8Validation, promQL, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("PrometheusRule %s: %v", name, err)
	}
	return groups
}

// checkAlerts: every alert has a severity, a summary, a description, and a runbook in
// docs/operations.md under its own heading.
func checkAlerts(t *testing.T, groups *rulefmt.RuleGroups) {
	doc, err := os.ReadFile(filepath.Join(repoRoot, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := regexp.MustCompile(`(?m)^### (\S+)$`).FindAllStringSubmatch(string(doc), -1)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !slices.Contains(severities, r.Labels["severity"]) {
				t.Errorf("%s: severity %q, want one of %v", r.Alert, r.Labels["severity"], severities)
			}
			for _, a := range []string{"summary", "description"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if got, want := r.Annotations["runbook_url"], runbookBase+strings.ToLower(r.Alert); got != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, got, want)
			}
			if !slices.ContainsFunc(headings, func(h []string) bool { return h[1] == r.Alert }) {
				t.Errorf("%s: docs/operations.md has no heading \"### %s\" (its runbook)", r.Alert, r.Alert)
			}
		}
	}
}

// replicationLagAlert fires on a standby's replay lag, which CloudNativePG's exporter reports.
const replicationLagAlert = "PgfleetReplicationLag"

// checkReplicationLagAlert: the lag alert reads CloudNativePG's cnpg_pg_replication_lag (in
// seconds) and fires above a bound no lower than any service's MAX_REPLICA_LAG. pgfleet stops
// reading from a standby beyond MAX_REPLICA_LAG by itself (its reads go to the primary), so
// the alert marks a standby left out for longer than routing alone explains: a lower bound
// would page for lag the services already route around. It reports whether it found the alert.
func checkReplicationLagAlert(t *testing.T, m *manifests, groups *rulefmt.RuleGroups) bool {
	t.Helper()
	var maxLag time.Duration
	for _, svc := range dbServices {
		d, ok := m.deployments[svc]
		if !ok {
			continue
		}
		env, _ := containerEnv(m, true, &d.Spec.Template.Spec.Containers[0])
		if env["DATABASE_READ_URL"].value == "" {
			continue // no replica reads: MAX_REPLICA_LAG means nothing
		}
		v, _ := setting(env, binaryEnv(t, svc), "MAX_REPLICA_LAG")
		lag, err := time.ParseDuration(v)
		if err != nil {
			t.Errorf("%s: MAX_REPLICA_LAG %q: %v", svc, v, err)
			continue
		}
		maxLag = max(maxLag, lag)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != replicationLagAlert {
				continue
			}
			e, err := promQL.ParseExpr(r.Expr)
			if err != nil {
				return true // reported by ruleGroups
			}
			be, ok := e.(*parser.BinaryExpr)
			num, isNum := (*parser.NumberLiteral)(nil), false
			if ok {
				num, isNum = be.RHS.(*parser.NumberLiteral)
			}
			if !ok || be.Op != parser.GTR || !isNum || !strings.Contains(be.LHS.String(), "cnpg_pg_replication_lag") {
				t.Errorf("%s: expr %q: want <aggregation of cnpg_pg_replication_lag> > <seconds>", r.Alert, r.Expr)
				return true
			}
			if bound := time.Duration(num.Val * float64(time.Second)); bound < maxLag {
				t.Errorf("%s fires above %v of lag, below MAX_REPLICA_LAG %v: it would page for standbys the services already skip", r.Alert, bound, maxLag)
			}
			return true
		}
	}
	return false
}

// grafanaDashboard is the part of Grafana's dashboard JSON model that the checks read.
type grafanaDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name       string             `json:"name"`
			Type       string             `json:"type"`
			Query      json.RawMessage    `json:"query"`
			Datasource *grafanaDatasource `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaPanel struct {
	Title      string             `json:"title"`
	Type       string             `json:"type"`
	Datasource *grafanaDatasource `json:"datasource"`
	Targets    []struct {
		Expr       string             `json:"expr"`
		Datasource *grafanaDatasource `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// dashboardDatasource is how every panel, target and query variable names its data source:
// the dashboard's datasource variable, so one file works in any Grafana.
var dashboardDatasource = grafanaDatasource{Type: "prometheus", UID: "${datasource}"}

// Grafana's interval variables stand for durations; other variables stand inside label values.
var (
	grafanaIntervals = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)
	grafanaVars      = regexp.MustCompile(`\$\{?(\w+)\}?`)
	labelValues      = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
)

// parseDashboard checks a dashboard (Grafana 10/11 schema, data source as a variable, every
// expression valid PromQL) and returns it with its expressions, Grafana variables replaced.
func parseDashboard(t *testing.T, what string, data []byte) (*grafanaDashboard, []string) {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Errorf("%s: %v", what, err)
		return nil, nil
	}
	// 38: Grafana 10.0; 39: 10.3 to 11.2; 40 and 41: 11.3 and later.
	if d.SchemaVersion < 38 || d.SchemaVersion > 41 || d.UID == "" || len(d.UID) > 40 || d.Title == "" {
		t.Errorf("%s: schemaVersion %d, uid %q, title %q: want Grafana 10/11's schema, a uid of at most 40 characters and a title", what, d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]bool{}
	var exprs []string
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		switch v.Type {
		case "datasource":
			if v.Name != "datasource" || string(v.Query) != `"prometheus"` {
				t.Errorf("%s: datasource variable %s of %s, want datasource of prometheus", what, v.Name, v.Query)
			}
		case "query":
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("%s: variable %s: %v", what, v.Name, err)
				continue
			}
			m := labelValues.FindStringSubmatch(q.Query)
			if m == nil {
				t.Errorf("%s: variable %s: query %q, want label_values(selector, label)", what, v.Name, q.Query)
				continue
			}
			exprs = append(exprs, m[1])
			if v.Datasource == nil || *v.Datasource != dashboardDatasource {
				t.Errorf("%s: variable %s: datasource %+v, want %+v", what, v.Name, v.Datasource, dashboardDatasource)
			}
		}
	}
	if !vars["datasource"] {
		t.Errorf("%s: no datasource variable", what)
	}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || *p.Datasource != dashboardDatasource || len(p.Targets) == 0 {
				t.Errorf("%s: panel %q: datasource %+v and %d targets, want %+v and some", what, p.Title, p.Datasource, len(p.Targets), dashboardDatasource)
			}
			for _, tg := range p.Targets {
				if tg.Datasource != nil && *tg.Datasource != dashboardDatasource {
					t.Errorf("%s: panel %q: a target on datasource %+v", what, p.Title, *tg.Datasource)
				}
				exprs = append(exprs, tg.Expr)
			}
		}
	}
	walk(d.Panels)
	for i, e := range exprs {
		e = grafanaIntervals.ReplaceAllString(e, "5m")
		for _, m := range grafanaVars.FindAllStringSubmatch(e, -1) {
			if !vars[m[1]] {
				t.Errorf("%s: %q uses $%s, which the dashboard does not define", what, e, m[1])
			}
		}
		if _, err := promQL.ParseExpr(e); err != nil {
			t.Errorf("%s: %q: %v", what, e, err)
		}
		exprs[i] = e
	}
	return &d, exprs
}

// selector is one vector selector of an expression: the metric it reads and the labels it
// matches on.
type selector struct {
	name   string
	labels []string
}

// selectors lists the vector selectors of expr. A selector without a metric name would read
// whatever matches its labels, which no check could hold to the fleet's names.
func selectors(expr string) ([]selector, error) {
	e, err := promQL.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var sels []selector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		s := selector{name: vs.Name}
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				if m.Type == labels.MatchEqual {
					s.name = m.Value
				}
				continue
			}
			s.labels = append(s.labels, m.Name)
		}
		if s.name == "" {
			err = fmt.Errorf("%s: a selector without a metric name", vs)
		}
		sels = append(sels, s)
		return nil
	})
	return sels, err
}

// componentExprs reads the monitoring component's sources: its alert rules and its dashboards.
// It returns the rule groups, and every expression (rules' and dashboards') by where it is.
func componentExprs(t *testing.T) ([]*rulefmt.RuleGroups, map[string]string) {
	t.Helper()
	exprs := map[string]string{}
	var all []*rulefmt.RuleGroups
	files, _ := filepath.Glob(filepath.Join(monitoringDir, "rules", "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no rule files in %s/rules", monitoringDir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := newManifests(f)
		if err := m.add(data); err != nil {
			t.Fatal(err)
		}
		for name, r := range m.rules {
			groups := ruleGroups(t, name, r)
			if groups == nil {
				continue
			}
			all = append(all, groups)
			for _, g := range groups.Groups {
				for _, r := range g.Rules {
					exprs[fmt.Sprintf("%s: %s%s", f, r.Alert, r.Record)] = r.Expr
				}
			}
		}
	}
	dashboards, _ := filepath.Glob(filepath.Join(monitoringDir, "dashboards", "*.json"))
	for _, f := range dashboards {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		_, es := parseDashboard(t, f, data)
		for i, e := range es {
			exprs[fmt.Sprintf("%s: expression %d", f, i)] = e
		}
	}
	return all, exprs
}

// promtoolTests is the part of promtool's unit test files that says which alerts are tested.
type promtoolTests struct {
	Tests []struct {
		Name          string `json:"name"`
		AlertRuleTest []struct {
			Alertname string            `json:"alertname"`
			ExpAlerts []json.RawMessage `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// TestMonitoring_everyAlertTested: promtool's unit tests (make rules) see every alert both
// firing and not firing; tests of alerts that no longer exist fail too.
func TestMonitoring_everyAlertTested(t *testing.T) {
	t.Parallel()
	groups, _ := componentExprs(t)
	files, _ := filepath.Glob(filepath.Join(monitoringTests, "*.yaml"))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var pt promtoolTests
		if err := yaml.Unmarshal(data, &pt); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, tc := range pt.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					fires[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range groups {
		for _, rg := range g.Groups {
			for _, r := range rg.Rules {
				if r.Alert != "" {
					alerts[r.Alert] = true
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts")
	}
	for a := range alerts {
		if !fires[a] || !quiet[a] {
			t.Errorf("%s: tested firing %v, not firing %v; want both in %s", a, fires[a], quiet[a], monitoringTests)
		}
	}
	for _, a := range append(mapKeys(fires), mapKeys(quiet)...) {
		if !alerts[a] {
			t.Errorf("%s tests alert %s, which no rule defines", monitoringTests, a)
		}
	}
}
