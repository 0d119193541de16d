package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/app/apptest"
	"github.com/pgfleet/pgfleet/pkg/auth"
	"github.com/pgfleet/pgfleet/pkg/auth/authtest"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/supervise"
	"github.com/pgfleet/pgfleet/pkg/tlsfiles/tlsfilestest"
	"github.com/pgfleet/pgfleet/tools/internal/localdb"
)

// testFleet is a fleet laid out as make run lays it out (deploy/local/bootstrap.sql: one
// database, a login role and schema per service), on a cluster of its own that checks
// passwords, with the built binaries running as processes.
type testFleet struct {
	admin     *pgx.Conn // superuser, on database pgfleet
	file      string    // the fleet file
	fleet     Fleet
	doctor    string // the built pgfleet binary
	bin       string // the built binaries
	interview *apptest.Process
}

func startFleet(t *testing.T) *testFleet {
	t.Helper()
	ctx := t.Context()
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := apptest.Build(bin, "github.com/pgfleet/pgfleet/services/stock", "github.com/pgfleet/pgfleet/services/portfolio",
		"github.com/pgfleet/pgfleet/services/interview", "github.com/pgfleet/pgfleet/services/gateway",
		"github.com/pgfleet/pgfleet/tools/doctor"); err != nil {
		t.Fatal(err)
	}

	// Not t.TempDir: as root, the postgres OS user runs the server and must reach its directory.
	dir, err := os.MkdirTemp("", "pgfleet-doctor-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: filepath.Join(dir, "data"), Throwaway: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	// pgserver's clusters trust every local login; this one checks the services' passwords,
	// as a deployed server does, so that a wrong one is refused.
	hba := "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := os.WriteFile(filepath.Join(dir, "data", "pg_hba.conf"), []byte(hba), 0o600); err != nil {
		t.Fatal(err)
	}
	psql, err := localdb.Psql()
	if err != nil {
		t.Fatal(err)
	}
	adminURL := srv.URL("postgres")
	if _, err := localdb.Run(ctx, psql, adminURL, "-c", "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	f := &testFleet{doctor: filepath.Join(bin, "doctor"), bin: bin, file: filepath.Join(t.TempDir(), "fleet.json"),
		fleet: Fleet{Services: map[string]Service{}, AdminToken: authtest.Token(t, "admin@pgfleet.test", auth.RoleAdmin)}}
	urls := map[string]string{}
	for _, name := range []string{"stock", "portfolio", "interview"} {
		pw := strings.ToLower(rand.Text())
		if err := localdb.Bootstrap(ctx, psql, repo, adminURL, name, pw); err != nil {
			t.Fatal(err)
		}
		urls[name] = "postgres://" + name + ":" + pw + "@127.0.0.1:" + strconv.Itoa(srv.Port) + "/" + localdb.DB + "?sslmode=disable"
	}
	f.admin, err = pgx.Connect(ctx, srv.URL(localdb.DB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.admin.Close(context.Background()) })

	start := func(name string, env ...string) *apptest.Process {
		p := apptest.StartProcess(t, filepath.Join(bin, name), append([]string{"DATABASE_URL=" + urls[name]}, env...)...)
		f.fleet.Services[name] = Service{GRPCAddr: p.Addr, MetricsAddr: p.MetricsAddr, DatabaseURL: urls[name], Replicas: 1}
		return p
	}
	stock := start("stock")
	start("portfolio", "STOCK_ADDR="+stock.Addr)
	f.interview = start("interview")

	gw := apptest.StartGatewayProcess(t, filepath.Join(bin, "gateway"), "STOCK_ADDR="+stock.Addr,
		"PORTFOLIO_ADDR="+f.fleet.Services["portfolio"].GRPCAddr, "INTERVIEW_ADDR="+f.interview.Addr)
	f.fleet.Gateway = &Gateway{URL: "http://" + gw.Addr, MetricsURL: "http://" + gw.MetricsAddr}
	f.write(t, f.fleet)
	return f
}

// write writes fl as the fleet file.
func (f *testFleet) write(t *testing.T, fl Fleet) string {
	t.Helper()
	b, err := json.Marshal(fl)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fleet.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs the built pgfleet doctor as an operator would, and returns its output and exit code.
func (f *testFleet) run(t *testing.T, fleetFile string, args ...string) (string, int) {
	t.Helper()
	// Generous: a machine busy with other tests is slow, not broken.
	cmd := exec.Command(f.doctor, append([]string{"doctor", "--fleet", fleetFile, "--timeout", "30s"}, args...)...)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("pgfleet doctor: %v", err)
	}
	return string(out), cmd.ProcessState.ExitCode()
}

// wantLine fails t unless out has a line of target's check with status whose detail matches
// (target and detail are regular expressions).
func wantLine(t *testing.T, out, target, check string, st Status, detail string) {
	t.Helper()
	re := regexp.MustCompile(`(?m)^` + target + ` +` + check + ` +` + string(st) + ` +.*` + detail)
	if !re.MatchString(out) {
		t.Errorf("no line %q in the report:\n%s", re, out)
	}
}

// The broken variants share one fleet, each undone before the next (the stopped service comes
// last): starting a fleet per variant would take minutes on a busy machine.
func TestDoctor(t *testing.T) {
	t.Parallel()
	f := startFleet(t)
	ctx := t.Context()

	t.Run("healthy", func(t *testing.T) {
		out, code := f.run(t, f.write(t, f.fleet))
		if code != 0 || !strings.Contains(out, "\nok: ") {
			t.Fatalf("exit code %d, want 0 and every check ok:\n%s", code, out)
		}
		wantLine(t, out, "stock", "isolation", OK, "reading interview, portfolio is refused")
		wantLine(t, out, `postgres 127\.0\.0\.1:[0-9]+`, "passwords", OK, "refused")
	})

	t.Run("json", func(t *testing.T) {
		out, code := f.run(t, f.write(t, f.fleet), "--json")
		var r Report
		if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 {
			t.Fatalf("exit code %d, %v; output:\n%s", code, err, out)
		}
		got := map[string]Status{}
		for _, c := range r.Checks {
			got[c.Target+" "+c.Check] = c.Status
		}
		server := "postgres " + serverOf(f.fleet.Services["stock"].DatabaseURL)
		for _, want := range []string{"stock database", "stock isolation", "stock migrations", "stock health",
			"stock monitor", "stock clock", "portfolio monitor", "interview migrations", server + " connections",
			server + " replication", server + " clock", server + " passwords", "gateway healthz", "gateway clock"} {
			if got[want] != OK {
				t.Errorf("check %q: status %q, want ok", want, got[want])
			}
		}
		if r.Summary.Status != OK || r.Summary.OK != len(r.Checks) {
			t.Errorf("summary %+v of %d checks, want all ok", r.Summary, len(r.Checks))
		}
	})

	t.Run("wrong_password", func(t *testing.T) {
		fl := f.fleet
		fl.Services = map[string]Service{}
		for n, s := range f.fleet.Services {
			if n == "portfolio" {
				s.DatabaseURL = strings.Replace(s.DatabaseURL, "portfolio:", "portfolio:not-", 1)
			}
			fl.Services[n] = s
		}
		out, code := f.run(t, f.write(t, fl))
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		wantLine(t, out, "portfolio", "database", Fail, `password authentication failed for user "portfolio"`)
	})

	t.Run("too_many_rights", func(t *testing.T) {
		grant := "GRANT USAGE ON SCHEMA portfolio TO stock; GRANT SELECT ON ALL TABLES IN SCHEMA portfolio TO stock"
		if _, err := f.admin.Exec(ctx, grant); err != nil {
			t.Fatal(err)
		}
		out, code := f.run(t, f.write(t, f.fleet))
		revoke := "REVOKE SELECT ON ALL TABLES IN SCHEMA portfolio FROM stock; REVOKE USAGE ON SCHEMA portfolio FROM stock"
		if _, err := f.admin.Exec(ctx, revoke); err != nil {
			t.Fatal(err)
		}
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		wantLine(t, out, "stock", "isolation", Fail, `can read portfolio\.`)
	})

	t.Run("missing_migration", func(t *testing.T) {
		var id, version int64
		var applied bool
		var stamp time.Time
		err := f.admin.QueryRow(ctx, `DELETE FROM interview.goose_db_version
			WHERE version_id = (SELECT max(version_id) FROM interview.goose_db_version)
			RETURNING id, version_id, is_applied, tstamp`).Scan(&id, &version, &applied, &stamp)
		if err != nil {
			t.Fatal(err)
		}
		out, code := f.run(t, f.write(t, f.fleet))
		if _, err := f.admin.Exec(ctx, `INSERT INTO interview.goose_db_version (id, version_id, is_applied, tstamp)
			VALUES ($1, $2, $3, $4)`, id, version, applied, stamp); err != nil {
			t.Fatal(err)
		}
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		wantLine(t, out, "interview", "migrations", Fail, "pending "+strconv.FormatInt(version, 10))
	})

	t.Run("tls_replica", func(t *testing.T) {
		// A second stock replica serving gRPC over TLS, with plaintext health on HEALTH_ADDR.
		certFile, keyFile := tlsfilestest.Write(t, t.TempDir()) // self-signed, valid for an hour
		stock := f.fleet.Services["stock"]
		grpcAddr, healthAddr := apptest.FreeAddr(t), apptest.FreeAddr(t)
		env := append(os.Environ(), "DATABASE_URL="+stock.DatabaseURL, "GRPC_ADDR="+grpcAddr, "HEALTH_ADDR="+healthAddr,
			"METRICS_ADDR="+apptest.FreeAddr(t), "TLS_CERT_FILE="+certFile, "TLS_KEY_FILE="+keyFile, "DRAIN_TIMEOUT=1s")
		for k, v := range authtest.Env() {
			env = append(env, k+"="+v)
		}
		p := supervise.New(supervise.Spec{Name: "stock-tls", Path: filepath.Join(f.bin, "stock"), Env: env,
			Log: filepath.Join(t.TempDir(), "stock-tls.log")})
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := p.Stop(); err != nil {
				t.Error(err)
			}
		}()
		if err := p.WaitReady(ctx, supervise.GRPCServing(healthAddr), time.Minute); err != nil {
			t.Fatal(err)
		}
		fl := f.fleet
		fl.Services = maps.Clone(f.fleet.Services)
		fl.Services["stock"] = Service{GRPCAddr: grpcAddr, HealthAddr: healthAddr, MetricsAddr: stock.MetricsAddr,
			DatabaseURL: stock.DatabaseURL, TLSCAFile: certFile, Replicas: 2}
		out, code := f.run(t, f.write(t, fl))
		if code != 0 {
			t.Errorf("exit code %d, want 0 (an expiring certificate only warns)", code)
		}
		wantLine(t, out, "stock", "health", OK, "SERVING on "+regexp.QuoteMeta(healthAddr))
		wantLine(t, out, "stock", "monitor", OK, "database SERVING")
		wantLine(t, out, "stock", "tls", Warn, "expires .*, in 0 days")
		wantLine(t, out, `postgres 127\.0\.0\.1:[0-9]+`, "connections", OK, `stock 20×2`)
	})

	t.Run("stopped_service", func(t *testing.T) {
		f.interview.Stop(t)
		out, code := f.run(t, f.write(t, f.fleet))
		if code != 1 {
			t.Errorf("exit code %d, want 1", code)
		}
		wantLine(t, out, "interview", "health", Fail, "Unavailable")
		wantLine(t, out, "interview", "monitor", Fail, "Unavailable")
		wantLine(t, out, "stock", "health", OK, "SERVING")
	})
}

// Bad usage and an unreadable fleet file exit 2, before any check.
func TestDoctor_usage(t *testing.T) {
	t.Parallel()
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"services": {"stock": {"grpc_adr": "x"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"no_command", nil},
		{"unknown_command", []string{"cure"}},
		{"unknown_flag", []string{"doctor", "--fleat", "x"}},
		{"missing_file", []string{"doctor", "--fleet", filepath.Join(t.TempDir(), "none.json")}},
		{"misspelt_field", []string{"doctor", "--fleet", bad}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			if code := run(t.Context(), tt.args, &out, &errOut); code != 2 {
				t.Errorf("run(%q) = %d, want 2; stderr:\n%s", tt.args, code, errOut.String())
			}
		})
	}
}
