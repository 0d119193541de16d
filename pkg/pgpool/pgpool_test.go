package pgpool_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sethvargo/go-envconfig"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/telemetry"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newPool opens a pool on a fresh database and closes it when t ends.
func newPool(t *testing.T, cfg pgpool.Config) *pgxpool.Pool {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = pgtest.NewDBURL(t)
	}
	pool, err := pgpool.New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestConfig_env(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		want    pgpool.Config
		wantErr bool
	}{
		{
			name: "defaults",
			env:  map[string]string{"DATABASE_URL": "postgres://stock@db/pgfleet"},
			want: pgpool.Config{URL: "postgres://stock@db/pgfleet", MaxConns: 20, MinIdle: 2,
				Acquire: 30 * time.Second, Recycle: 30 * time.Minute, Health: 2 * time.Second},
		},
		{
			name: "overrides",
			env: map[string]string{"DATABASE_URL": "postgres://stock@db/pgfleet", "DB_POOL_SIZE": "8",
				"DB_POOL_MIN_IDLE": "0", "DB_POOL_TIMEOUT": "5s", "DB_POOL_RECYCLE": "1h", "DB_HEALTH_INTERVAL": "500ms"},
			want: pgpool.Config{URL: "postgres://stock@db/pgfleet", MaxConns: 8, MinIdle: 0,
				Acquire: 5 * time.Second, Recycle: time.Hour, Health: 500 * time.Millisecond},
		},
		{name: "missing_url", env: map[string]string{}, wantErr: true},
		{name: "bad_duration", env: map[string]string{"DATABASE_URL": "postgres://db", "DB_POOL_TIMEOUT": "soon"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got pgpool.Config
			err := envconfig.ProcessWith(t.Context(), &envconfig.Config{Target: &got, Lookuper: envconfig.MapLookuper(tt.env)})
			if (err != nil) != tt.wantErr {
				t.Fatalf("ProcessWith() = %v, want error %t", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNew_invalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  pgpool.Config
	}{
		{"bad_url", pgpool.Config{URL: "postgres://db:notaport/x"}},
		{"min_idle_over_size", pgpool.Config{URL: "postgres://db/x", MaxConns: 2, MinIdle: 3}},
		{"negative_size", pgpool.Config{URL: "postgres://db/x", MaxConns: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if pool, err := pgpool.New(t.Context(), tt.cfg); err == nil {
				pool.Close()
				t.Errorf("New(%+v) = nil error, want one", tt.cfg)
			}
		})
	}
}

func TestNew_databaseDown(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	pool, err := pgpool.New(t.Context(), pgpool.Config{URL: "postgres://x@127.0.0.1:" + strconv.Itoa(port) + "/x?connect_timeout=1", MinIdle: 2})
	if err != nil {
		t.Fatalf("New() with the database down = %v, want a pool that connects later", err)
	}
	defer pool.Close()
	if err := pool.Ping(t.Context()); err == nil {
		t.Error("Ping() = nil with nothing listening")
	}
}

func TestNew_settings(t *testing.T) {
	t.Parallel()
	url := pgtest.NewDBURL(t)
	tests := []struct {
		name    string
		url     string
		wantApp string
	}{
		{"default_application_name", url, filepath.Base(os.Args[0])},
		{"application_name_from_url", url + "&application_name=custom", "custom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := newPool(t, pgpool.Config{URL: tt.url, MaxConns: 3, MinIdle: 1, Recycle: time.Hour})
			var app string
			if err := pool.QueryRow(t.Context(), "SELECT current_setting('application_name')").Scan(&app); err != nil {
				t.Fatalf("read application_name: %v", err)
			}
			if app != tt.wantApp {
				t.Errorf("application_name = %q, want %q", app, tt.wantApp)
			}
			cfg := pool.Config()
			if cfg.MaxConns != 3 || cfg.MinIdleConns != 1 || cfg.MaxConnLifetime != time.Hour || cfg.MaxConnLifetimeJitter != 6*time.Minute {
				t.Errorf("pool config = max %d, min idle %d, lifetime %v + %v; want 3, 1, 1h + 6m",
					cfg.MaxConns, cfg.MinIdleConns, cfg.MaxConnLifetime, cfg.MaxConnLifetimeJitter)
			}
		})
	}
}

// backendPIDs returns the server process of every connection the pool holds.
func backendPIDs(t *testing.T, pool *pgxpool.Pool) []uint32 {
	t.Helper()
	conns := pool.AcquireAllIdle(t.Context())
	var pids []uint32
	for _, c := range conns {
		pids = append(pids, c.Conn().PgConn().PID())
		c.Release()
	}
	slices.Sort(pids)
	return pids
}

func TestPool_backendsTerminated(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		idle time.Duration // how long the connections sit idle after the kill
	}{
		{"right_after_the_kill", 0},
		{"idle_over_a_second", 1100 * time.Millisecond}, // past pgxpool's own ping-if-idle rule
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := pgtest.NewDBURL(t)
			pool := newPool(t, pgpool.Config{URL: url, MaxConns: 8, MinIdle: 0})
			// Open all 8 connections: hold them at once.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					if _, err := pool.Exec(t.Context(), "SELECT pg_sleep(0.1)"); err != nil {
						t.Errorf("warm up: %v", err)
					}
				})
			}
			wg.Wait()
			before := backendPIDs(t, pool)
			if len(before) != 8 {
				t.Fatalf("pool holds %d connections, want 8", len(before))
			}

			admin, err := pgx.Connect(t.Context(), url)
			if err != nil {
				t.Fatalf("admin connection: %v", err)
			}
			defer admin.Close(context.Background())
			// Signal every backend first and then wait for them all: pg_terminate_backend's own
			// wait takes about 100 ms a backend, long enough for pgxpool's idle rule to kick in.
			var pids []int32
			err = admin.QueryRow(t.Context(), `
				SELECT coalesce(array_agg(pid) FILTER (WHERE pg_terminate_backend(pid)), '{}')
				FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&pids)
			if err != nil {
				t.Fatalf("terminate backends: %v", err)
			}
			if len(pids) != 8 {
				t.Fatalf("terminated %d backends, want 8", len(pids))
			}
			killedAt := time.Now()
			for alive := len(pids); alive > 0; {
				if time.Since(killedAt) > 5*time.Second {
					t.Fatalf("%d terminated backends still running after 5s", alive)
				}
				if err := admin.QueryRow(t.Context(), "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&alive); err != nil {
					t.Fatalf("watch backends exit: %v", err)
				}
			}
			t.Logf("backends gone %v after the kill", time.Since(killedAt))
			time.Sleep(tt.idle)

			for i := range 16 { // more than the pool holds: every dead connection gets its turn
				var one int
				if err := pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
					t.Fatalf("query %d after the kill: %v", i, err)
				}
			}
			var wg2 sync.WaitGroup
			for i := range 8 {
				wg2.Go(func() {
					if _, err := pool.Exec(t.Context(), "SELECT pg_sleep(0.01)"); err != nil {
						t.Errorf("concurrent query %d after the kill: %v", i, err)
					}
				})
			}
			wg2.Wait()
			for _, pid := range backendPIDs(t, pool) {
				if _, found := slices.BinarySearch(before, pid); found {
					t.Errorf("pool still holds terminated backend %d", pid)
				}
			}
		})
	}
}

func TestPool_concurrentCalls(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgpool.Config{MaxConns: 8, MinIdle: 2})
	const calls = 200
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			_, err := pool.Exec(ctx, "SELECT pg_sleep(0.005)")
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	var failed int
	for err := range errs {
		if err != nil {
			failed++
			if failed <= 3 {
				t.Errorf("call: %v", err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d calls failed", failed, calls)
	}
	s := pool.Stat()
	if s.AcquiredConns() != 0 || s.TotalConns() > 8 {
		t.Errorf("after the calls: %d acquired, %d total; want 0 and at most 8", s.AcquiredConns(), s.TotalConns())
	}
	if s.AcquireCount() < calls {
		t.Errorf("AcquireCount() = %d, want at least %d", s.AcquireCount(), calls)
	}
}

// watch runs mon until t ends and returns a channel of its transitions.
func watch(t *testing.T, mon *pgpool.Monitor) <-chan bool {
	t.Helper()
	changes := make(chan bool, 16)
	mon.OnChange(func(serving bool) { changes <- serving })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		mon.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return changes
}

// await fails t unless the next transition, within 5 s, is to want.
func await(t *testing.T, changes <-chan bool, want bool) {
	t.Helper()
	select {
	case got := <-changes:
		if got != want {
			t.Fatalf("monitor changed to serving=%t, want %t", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("monitor did not report serving=%t within 5s", want)
	}
}

func TestMonitor_serverRestart(t *testing.T) {
	t.Parallel()
	c := pgtest.NewCluster(t)
	pool := newPool(t, pgpool.Config{URL: c.NewDBURL(t), MaxConns: 4, MinIdle: 2, Health: time.Second})
	// The default 2 s would do; 1 s leaves more of the 5 s promised for each transition.
	mon := pgpool.NewMonitor(pool, time.Second, slog.New(slog.NewTextHandler(t.Output(), nil)))
	changes := watch(t, mon)

	await(t, changes, true)
	if !mon.Serving() || mon.Last().Err != nil || mon.Last().RTT <= 0 {
		t.Errorf("serving = %t, last = %+v; want serving with a round trip", mon.Serving(), mon.Last())
	}

	c.Stop(t)
	await(t, changes, false)
	if mon.Serving() || mon.Last().Err == nil {
		t.Errorf("serving = %t, last = %+v; want not serving with an error", mon.Serving(), mon.Last())
	}

	c.Start(t)
	await(t, changes, true)
	var one int
	if err := pool.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Errorf("query on the same pool after the restart: %v", err)
	}
	select {
	case got := <-changes:
		t.Errorf("unexpected transition to serving=%t", got)
	default:
	}
}

func TestMonitor_canceled(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgpool.Config{MaxConns: 2})
	mon := pgpool.NewMonitor(pool, time.Hour, nil)
	var calls []bool
	mon.OnChange(func(serving bool) { calls = append(calls, serving) })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	mon.Run(ctx) // returns at once; a canceled check is not a failure to report
	if len(calls) != 0 || mon.Serving() || !mon.Last().At.IsZero() {
		t.Errorf("after a canceled run: calls %v, serving %t, last %+v; want nothing recorded", calls, mon.Serving(), mon.Last())
	}
}

// TestMonitor_logRequestID: the monitor's lines are correlated as a call's are; each check has a
// request_id of its own (telemetry.LogHandler adds it; tracing is off in tests).
func TestMonitor_logRequestID(t *testing.T) {
	t.Parallel()
	pool := newPool(t, pgpool.Config{MaxConns: 2})
	var out syncBuffer
	mon := pgpool.NewMonitor(pool, time.Hour, slog.New(telemetry.NewLogHandler(slog.NewJSONHandler(&out, nil))))
	await(t, watch(t, mon), true)

	var line struct {
		Msg       string `json:"msg"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(out.Bytes(), &line); err != nil {
		t.Fatalf("log %q: %v", out.Bytes(), err)
	}
	if line.Msg != "database serving" || !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(line.RequestID) {
		t.Errorf("log line = %s; want \"database serving\" with a request_id of 32 hex digits", out.Bytes())
	}
}

// syncBuffer is a bytes.Buffer the monitor's goroutine writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// A URL may list several hosts (libpq's form); the pool connects to the first that answers,
// here past a port nothing listens on, with the binary's application_name as for one host.
func TestNew_severalHosts(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	u, err := url.Parse(pgtest.NewDBURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = dead + "," + u.Host
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	cfg := pgpool.Config{URL: u.String(), MaxConns: 2}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate() of %s = %v", u.Redacted(), err)
	}
	pool := newPool(t, cfg)
	var app string
	if err := pool.QueryRow(t.Context(), "SELECT current_setting('application_name')").Scan(&app); err != nil {
		t.Fatalf("query through %s: %v", u.Redacted(), err)
	}
	if want := filepath.Base(os.Args[0]); app != want {
		t.Errorf("application_name = %q, want %q", app, want)
	}
}

// With a URL that lists a primary and its standby (target_session_attrs=read-write), the
// monitor reports not serving once the primary dies and serving again once the standby is
// promoted, and the same pool writes on the promoted standby.
func TestMonitor_failover(t *testing.T) {
	t.Parallel()
	r := pgtest.NewReplicatedCluster(t)
	_, standby := r.NewDBURLs(t)
	db, err := pgx.ParseConfig(standby)
	if err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, pgpool.Config{URL: r.FailoverURL(db.Database), MaxConns: 4, MinIdle: 2, Health: time.Second})
	mon := pgpool.NewMonitor(pool, 200*time.Millisecond, slog.New(slog.NewTextHandler(t.Output(), nil)))
	changes := watch(t, mon)
	await(t, changes, true)

	r.StopPrimary(t)
	await(t, changes, false)
	r.Promote(t)
	await(t, changes, true)
	if _, err := pool.Exec(t.Context(), "CREATE TABLE after_failover (id int)"); err != nil {
		t.Fatalf("write on the same pool after the promotion: %v", err)
	}
	var inRecovery bool
	if err := pool.QueryRow(t.Context(), "SELECT pg_is_in_recovery()").Scan(&inRecovery); err != nil || inRecovery {
		t.Error("the pool's connection is to a server in recovery, want the promoted standby")
	}
}

// A first host that accepts connections and never answers (a hung server, or one behind a
// network partition that lets the handshake through) must not hold the pool: the next host
// is tried after the per-host connect timeout.
func TestNew_severalHostsFirstHangs(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // read nothing, answer nothing
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	})
	u, err := url.Parse(pgtest.NewDBURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Host = l.Addr().String() + "," + u.Host
	q := u.Query()
	q.Set("target_session_attrs", "read-write")
	u.RawQuery = q.Encode()
	pool := newPool(t, pgpool.Config{URL: u.String(), MaxConns: 2, MinIdle: 0})
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("Ping through a hung first host = %v after %v, want the second host", err, time.Since(start).Round(time.Millisecond))
	}
	t.Logf("connected past the hung host in %v", time.Since(start).Round(time.Millisecond))
}

// Each host of a URL that lists several gets HostConnectTimeout unless the URL sets
// connect_timeout; a single host keeps the caller's deadline alone.
func TestNew_connectTimeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url  string
		want time.Duration
	}{
		{"postgres://u@127.0.0.1:1/db", 0},
		{"postgres://u@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write", pgpool.HostConnectTimeout},
		{"postgres://u@127.0.0.1:1,127.0.0.1:2/db?connect_timeout=2", 2 * time.Second},
		{"host=127.0.0.1,127.0.0.2 port=1 dbname=db", pgpool.HostConnectTimeout},
	}
	for _, tt := range tests {
		pool, err := pgpool.New(t.Context(), pgpool.Config{URL: tt.url, MinIdle: 0})
		if err != nil {
			t.Fatalf("New(%q) = %v", tt.url, err)
		}
		if got := pool.Config().ConnConfig.ConnectTimeout; got != tt.want {
			t.Errorf("New(%q): connect timeout %v, want %v", tt.url, got, tt.want)
		}
		pool.Close()
	}
}
