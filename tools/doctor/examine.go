package main

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgfleet/pgfleet/pkg/migrate"
	interviewmigrations "github.com/pgfleet/pgfleet/services/interview/migrations"
	portfoliomigrations "github.com/pgfleet/pgfleet/services/portfolio/migrations"
	stockmigrations "github.com/pgfleet/pgfleet/services/stock/migrations"
)

// migrationSets are the migrations this build of pgfleet carries, by service name: a
// database behind them has pending versions, one ahead has unknown ones.
var migrationSets = map[string]migrate.Set{
	"stock":     stockmigrations.Set,
	"portfolio": portfoliomigrations.Set,
	"interview": interviewmigrations.Set,
}

// Thresholds of the checks that measure.
const (
	skewWarn, skewFail = time.Second, 5 * time.Second
	certWarn           = 14 * 24 * time.Hour
	budgetWarn         = 0.8
	lagWarn, lagFail   = 10 * time.Second, 60 * time.Second
)

// serviceResult is what one service's checks found, and what the fleet-wide checks need.
type serviceResult struct {
	checks   []Check
	server   string // host:port of its database server; "" when its URL does not parse
	dbOK     bool   // connected with its own URL
	poolMax  int    // from DatabaseMonitor; 0 when unknown
	replicas int
}

// examine runs every check of f, the services' concurrently, each network call bounded by
// timeout, and returns them in report order: services by name, database servers, gateway.
func examine(ctx context.Context, f *Fleet, timeout time.Duration) []Check {
	names := f.names()
	results := make([]serviceResult, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { results[i] = examineService(ctx, f, name, timeout) })
	}
	var gateway []Check
	if f.Gateway != nil {
		wg.Go(func() { gateway = examineGateway(ctx, f.Gateway, timeout) })
	}
	wg.Wait()

	var checks []Check
	for _, r := range results {
		checks = append(checks, r.checks...)
	}
	checks = append(checks, examineServers(ctx, f, names, results, timeout)...)
	return append(checks, gateway...)
}

func examineService(ctx context.Context, f *Fleet, name string, timeout time.Duration) serviceResult {
	s := f.Services[name]
	r := serviceResult{replicas: s.Replicas}
	add := func(check string, st Status, format string, args ...any) {
		r.checks = append(r.checks, Check{Target: name, Check: check, Status: st, Detail: fmt.Sprintf(format, args...)})
	}
	r.server = serverOf(s.DatabaseURL)
	db := checkDatabase(ctx, name, s.DatabaseURL, timeout, add)
	if db != nil {
		r.dbOK = true
		checkIsolation(ctx, db, name, f, timeout, add)
		checkMigrations(ctx, db, name, timeout, add)
	}
	if s.DatabaseReadURL != "" {
		checkReadReplicas(ctx, s.DatabaseReadURL, time.Duration(s.MaxReplicaLag), db, timeout, add)
	}
	if db != nil {
		db.Close()
	}
	conn, err := dial(s.GRPCAddr, s.TLSCAFile, f.AdminToken)
	if err != nil {
		add("health", Fail, "gRPC %s: %v", s.GRPCAddr, err)
	} else {
		defer conn.Close()
		checkHealth(ctx, s, conn, timeout, add)
		r.poolMax = checkMonitor(ctx, conn, f.AdminToken != "", timeout, add)
	}
	if s.MetricsAddr != "" {
		checkClock(ctx, httpURL(s.MetricsAddr)+"/healthz", timeout, add)
	}
	if s.TLSCAFile != "" {
		checkCertificate(ctx, s.GRPCAddr, s.TLSCAFile, timeout, add)
	}
	return r
}

// serverOf is the host:port of a database URL, naming its server in the report; for a URL
// that lists several hosts (failover: h1:5432,h2:5432/db?target_session_attrs=read-write), all
// of them in order, each once (sslmode=prefer makes pgconn try each host twice).
func serverOf(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return ""
	}
	hosts := []string{net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))}
	for _, f := range cfg.Fallbacks {
		if h := net.JoinHostPort(f.Host, fmt.Sprint(f.Port)); !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return strings.Join(hosts, ",")
}

// examineServers checks each database server the services use, through the first service
// that reached it: connection budget, replica lag and clock.
func examineServers(ctx context.Context, f *Fleet, names []string, results []serviceResult, timeout time.Duration) []Check {
	var checks []Check
	seen := map[string]bool{}
	for i, r := range results {
		if r.server == "" || seen[r.server] {
			continue
		}
		seen[r.server] = true
		// The group: every service on this server; the first one that connected speaks for it.
		var group []int
		via := ""
		for j := i; j < len(results); j++ {
			if results[j].server == r.server {
				group = append(group, j)
				if via == "" && results[j].dbOK {
					via = names[j]
				}
			}
		}
		target := "postgres " + r.server
		if via == "" {
			checks = append(checks, Check{target, "server", Fail, "no service could connect: nothing to check on it"})
			continue
		}
		add := func(check string, st Status, format string, args ...any) {
			checks = append(checks, Check{target, check, st, fmt.Sprintf(format, args...)})
		}
		var pools []pool
		for _, j := range group {
			pools = append(pools, pool{name: names[j], max: results[j].poolMax, replicas: results[j].replicas})
		}
		checkServer(ctx, f.Services[via].DatabaseURL, via, pools, timeout, add)
	}
	return checks
}

func examineGateway(ctx context.Context, g *Gateway, timeout time.Duration) []Check {
	var checks []Check
	add := func(check string, st Status, format string, args ...any) {
		checks = append(checks, Check{"gateway", check, st, fmt.Sprintf(format, args...)})
	}
	health := g.MetricsURL
	if health == "" {
		health = g.URL
	}
	checkGateway(ctx, health+"/healthz", g.TLSCAFile, timeout, add)
	if rest, ok := strings.CutPrefix(g.URL, "https://"); ok {
		checkCertificate(ctx, hostPort(rest), g.TLSCAFile, timeout, add)
	}
	return checks
}

// hostPort is the host:port at the start of a URL's remainder after its scheme.
func hostPort(rest string) string {
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		return rest + ":443"
	}
	return rest
}

// httpURL makes a listen address (host:port) a URL; a URL stays as it is.
func httpURL(addr string) string {
	if strings.HasPrefix(addr, "http://") || strings.HasPrefix(addr, "https://") {
		return addr
	}
	return "http://" + addr
}
