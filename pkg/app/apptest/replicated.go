package apptest

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/app"
	"github.com/pgfleet/pgfleet/pkg/pgserver"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
	"github.com/pgfleet/pgfleet/pkg/replica"
)

// Replicated is a service's server reading on a hot standby, started by StartReplicated.
type Replicated struct {
	Cluster *pgtest.ReplicatedCluster
	Svc     *app.Service
	Conn    *grpc.ClientConn // calls as an admin
	// Env is the server's database settings: DATABASE_URL (the primary), DATABASE_READ_URL
	// (the standby), MAX_REPLICA_LAG, REPLICA_CHECK_INTERVAL. Another server on the same
	// database starts with them (and its own lag bound, say).
	Env map[string]string
}

// StartReplicated starts a service's server as StartServer does, on a fresh database of c's
// primary (DATABASE_URL) reading on c's standby (DATABASE_READ_URL), with MAX_REPLICA_LAG 1h
// and REPLICA_CHECK_INTERVAL 20ms unless env sets them; if env sets DATABASE_URL, the server
// runs on that database (another Replicated's Env). It returns once the server has found the
// standby usable (pgfleet_db_replica_up 1).
func StartReplicated(tb testing.TB, c *pgtest.ReplicatedCluster, opts app.Options, env map[string]string, register func(svc *app.Service) []string) *Replicated {
	tb.Helper()
	vars := map[string]string{"MAX_REPLICA_LAG": "1h", "REPLICA_CHECK_INTERVAL": "20ms"}
	maps.Copy(vars, env)
	if vars["DATABASE_URL"] == "" {
		vars["DATABASE_URL"], vars["DATABASE_READ_URL"] = c.NewDBURLs(tb, opts.Migrations)
	}
	svc, conn := StartServer(tb, opts, vars, register)
	r := &Replicated{Cluster: c, Svc: svc, Conn: conn, Env: map[string]string{}}
	for _, k := range []string{"DATABASE_URL", "DATABASE_READ_URL", "MAX_REPLICA_LAG", "REPLICA_CHECK_INTERVAL"} {
		r.Env[k] = vars[k]
	}
	r.WaitStandby(tb, true)
	return r
}

// WaitStandby waits until the server finds the standby usable (up true) or not (up false),
// by pgfleet_db_replica_up.
func (r *Replicated) WaitStandby(tb testing.TB, up bool) {
	tb.Helper()
	want := 0.0
	if up {
		want = 1
	}
	pgtest.Poll(tb, "pgfleet_db_replica_up of the standby becoming "+map[bool]string{true: "1", false: "0"}[up], func() bool {
		return r.Metric(tb, "pgfleet_db_replica_up", nil) == want
	})
}

// Metric returns the sum of the server's series of metric name whose labels include labels.
func (r *Replicated) Metric(tb testing.TB, name string, labels map[string]string) float64 {
	tb.Helper()
	families, err := r.Svc.Server.Registry().Gather()
	if err != nil {
		tb.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// ReplicaReads is pgfleet_db_reads_total{target="replica"}: calls whose reads the standby served.
func (r *Replicated) ReplicaReads(tb testing.TB) float64 {
	tb.Helper()
	return r.Metric(tb, "pgfleet_db_reads_total", map[string]string{"target": "replica"})
}

// ReadCall calls a method that reads, with opts (a header to fill), and returns what its
// answer showed of the data, as text equal for two answers from the same data (Seen).
type ReadCall func(ctx context.Context, opts ...grpc.CallOption) (string, error)

// WriteCall is one call of a method that writes, with opts (a header to fill).
type WriteCall struct {
	Method string // full method name, "/pgfleet.stock.v1.StockService/UpsertStocks"
	Do     func(ctx context.Context, opts ...grpc.CallOption) error
}

// Seen is m as text for a ReadCall, without its next_page_token (a page token may differ
// between two answers of the same rows); "" for no answer (nil, after an error).
func Seen(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return ""
	}
	m = proto.Clone(m)
	if f := m.ProtoReflect().Descriptor().Fields().ByName("next_page_token"); f != nil {
		m.ProtoReflect().Clear(f)
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return "unprintable: " + err.Error()
	}
	return string(b)
}

// Routing proves a service's Routes by data, on a server reading on a hot standby whose
// replay is paused: after Writes change the data on the primary, every method routed
// Replica still answers the old data (it read the standby), every other read answers the new
// data (it read the primary), and every write succeeds (on the standby it would fail: read
// only). Reads and Writes must hold every method of Files, so that a new RPC cannot be left
// out of the proof.
type Routing struct {
	Routes replica.Routes
	Files  []protoreflect.FileDescriptor
	// Reads calls each method that reads (idempotency_level NO_SIDE_EFFECTS), by full name.
	// The data the test arranged must make each answer show the Writes' change.
	Reads map[string]ReadCall
	// Writes are calls of every method that writes, in the order they run; together they
	// change what every read answers.
	Writes []WriteCall
}

// Run proves the routes (see Routing), then read-your-writes: while replay is paused, every
// Replica read carrying the last write's consistency token answers the new data (it waited
// REPLICA_WAIT, then read the primary); once replay resumes, the standby serves the same
// token-carrying reads (pgfleet_db_reads_total{target="replica"} moves) with the same data.
// Every method refuses a malformed token (INVALID_ARGUMENT, CONSISTENCY_TOKEN_MALFORMED),
// every write answers with a token in its header, no read does, nor gRPC's health check.
// The data is left changed
// and replayed.
func (p Routing) Run(t *testing.T, r *Replicated) {
	t.Helper()
	p.checkCovered(t)
	ctx := t.Context()
	r.Cluster.WaitReplayed(t, r.Cluster.PrimaryLSN(t))
	r.WaitStandby(t, true)
	reads := slices.Sorted(maps.Keys(p.Reads))
	old := map[string]string{}
	for _, m := range reads {
		old[m] = p.read(t, m, ctx)
	}

	r.Cluster.PauseReplay(t)
	paused := true
	defer func() {
		if paused {
			r.Cluster.ResumeReplay(t)
		}
	}()
	var last pgserver.LSN
	var token string
	for _, w := range p.Writes {
		var hdr metadata.MD
		if err := w.Do(ctx, grpc.Header(&hdr)); err != nil {
			t.Fatalf("%s with the standby's replay paused: %v; want it to succeed on the primary", w.Method, err)
		}
		toks := hdr.Get(replica.TokenHeader)
		if len(toks) != 1 {
			t.Fatalf("%s answered with %s %q, want one token", w.Method, replica.TokenHeader, toks)
		}
		l, err := replica.ParseToken(toks[0])
		if err != nil {
			t.Fatalf("%s's token %q: %v", w.Method, toks[0], err)
		}
		if l < last {
			t.Errorf("%s's token names %v, before the previous write's %v", w.Method, l, last)
		}
		last, token = l, toks[0]
	}
	if replayed := r.Cluster.ReplayLSN(t); replayed >= last {
		t.Fatalf("the standby replayed %v, past the last write's %v, while paused: the proof below would prove nothing", replayed, last)
	}

	paused1 := map[string]string{}
	for _, m := range reads {
		got := p.read(t, m, ctx)
		paused1[m] = got
		switch p.Routes[m] {
		case replica.Replica:
			if got != old[m] {
				t.Errorf("%s (routed Replica) answered the new data, want the old: it did not read the standby\nold: %s\nnew: %s", m, old[m], got)
			}
		default:
			if got == old[m] {
				t.Errorf("%s (routed Primary) answered the old data, want the writes' change: it read the standby (or the writes change nothing it shows)\n%s", m, got)
			}
		}
	}

	withToken := metadata.AppendToOutgoingContext(ctx, replica.TokenHeader, token)
	seenWithToken := map[string]string{}
	var slowest time.Duration
	for _, m := range reads {
		if p.Routes[m] != replica.Replica {
			continue
		}
		began := time.Now()
		got := p.read(t, m, withToken)
		slowest = max(slowest, time.Since(began))
		seenWithToken[m] = got
		if got == old[m] {
			t.Errorf("%s with the last write's consistency token answered the old data, want the write's\n%s", m, got)
		}
	}
	t.Logf("reads carrying a token not replayed answered (from the primary) in at most %v (REPLICA_WAIT 100ms)", slowest.Round(time.Millisecond))

	bad := metadata.AppendToOutgoingContext(ctx, replica.TokenHeader, "0/16B3748")
	for _, m := range reads {
		_, err := p.Reads[m](bad)
		wantMalformed(t, m, err)
	}
	for _, w := range p.Writes {
		wantMalformed(t, w.Method, w.Do(bad)) // refused before the handler: nothing written
	}

	// The server's own services write nothing: no token, and no query of the primary's WAL
	// position for one (Kubernetes probes health every few seconds).
	var hdr metadata.MD
	if _, err := healthpb.NewHealthClient(r.Conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&hdr)); err != nil {
		t.Errorf("health Check: %v", err)
	}
	if toks := hdr.Get(replica.TokenHeader); len(toks) != 0 {
		t.Errorf("health Check answered with %s %q, want none: it writes nothing", replica.TokenHeader, toks)
	}

	r.Cluster.ResumeReplay(t)
	paused = false
	r.Cluster.WaitReplayed(t, last)
	for _, m := range reads {
		before := r.ReplicaReads(t)
		if p.Routes[m] != replica.Replica {
			if got := p.read(t, m, withToken); got != paused1[m] {
				t.Errorf("%s after replay: answer changed with no write\nwas: %s\nnow: %s", m, paused1[m], got)
			}
			if after := r.ReplicaReads(t); after != before {
				t.Errorf("%s (routed Primary) counted as a read on the replica", m)
			}
			continue
		}
		if got := p.read(t, m, withToken); got != seenWithToken[m] {
			t.Errorf("%s with the token after replay: answer differs from the primary's\nprimary: %s\nstandby: %s", m, seenWithToken[m], got)
		}
		if after := r.ReplicaReads(t); after <= before {
			t.Errorf("%s with a token the standby has replayed: not served by the standby (pgfleet_db_reads_total{target=\"replica\"} %v, was %v)", m, after, before)
		}
	}
}

// read calls method m, which must succeed and answer without a consistency token.
func (p Routing) read(t *testing.T, m string, ctx context.Context) string {
	t.Helper()
	var hdr metadata.MD
	got, err := p.Reads[m](ctx, grpc.Header(&hdr))
	if err != nil {
		t.Fatalf("%s: %v", m, err)
	}
	if toks := hdr.Get(replica.TokenHeader); len(toks) != 0 {
		t.Errorf("%s (a read) answered with %s %q, want none", m, replica.TokenHeader, toks)
	}
	return got
}

func wantMalformed(t *testing.T, m string, err error) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || apierr.ReasonOf(err) != apierr.ConsistencyTokenMalformed {
		t.Errorf("%s with a malformed %s = %v, want INVALID_ARGUMENT %s", m, replica.TokenHeader, err, apierr.ConsistencyTokenMalformed)
	}
}

// checkCovered fails t unless Reads and Writes call every method of Files, each as what it
// is (a read: idempotency_level NO_SIDE_EFFECTS), and nothing else; and Routes pass Check.
func (p Routing) checkCovered(t *testing.T) {
	t.Helper()
	if err := p.Routes.Check(p.Files...); err != nil {
		t.Error(err)
	}
	written := map[string]bool{}
	for _, w := range p.Writes {
		written[w.Method] = true
	}
	methods := map[string]bool{}
	for _, f := range p.Files {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				md := svc.Methods().Get(j)
				name := "/" + string(svc.FullName()) + "/" + string(md.Name())
				methods[name] = true
				opts, _ := md.Options().(*descriptorpb.MethodOptions)
				if opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS {
					if p.Reads[name] == nil {
						t.Errorf("%s reads but has no case in Routing.Reads: add one that shows the writes' change", name)
					}
				} else if !written[name] {
					t.Errorf("%s writes but has no call in Routing.Writes: add one", name)
				}
			}
		}
	}
	for name := range p.Reads {
		if !methods[name] {
			t.Errorf("Routing.Reads has %s, no method of Files", name)
		}
	}
	for name := range written {
		if !methods[name] {
			t.Errorf("Routing.Writes has %s, no method of Files", name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// ProveLag shows reads following the replay lag on lagging, a server with a small
// MAX_REPLICA_LAG (500ms, say): with the standby's replay paused and change written, read
// (a Replica method, called on lagging) answers the new data once the lag passes the bound (it fell back to the
// primary); after ResumeReplay, the standby serves it again.
func ProveLag(t *testing.T, lagging *Replicated, read ReadCall, change func(ctx context.Context) error) {
	t.Helper()
	c := lagging.Cluster
	c.WaitReplayed(t, c.PrimaryLSN(t))
	lagging.WaitStandby(t, true)
	old, err := read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	c.PauseReplay(t)
	paused := true
	defer func() {
		if paused {
			c.ResumeReplay(t)
		}
	}()
	if err := change(t.Context()); err != nil {
		t.Fatalf("change with replay paused: %v", err)
	}
	written := time.Now()
	var got string
	pgtest.Poll(t, "reads answering the change (on the primary) once the standby lags past MAX_REPLICA_LAG", func() bool {
		got, err = read(t.Context())
		return err == nil && got != old
	})
	t.Logf("reads on the primary %v after the write (MAX_REPLICA_LAG %s, checks every %s)", time.Since(written).Round(time.Millisecond),
		lagging.Env["MAX_REPLICA_LAG"], lagging.Env["REPLICA_CHECK_INTERVAL"])
	if n := lagging.Metric(t, "pgfleet_db_reads_total", map[string]string{"target": "primary", "reason": replica.ReasonLagging}); n == 0 {
		t.Error(`pgfleet_db_reads_total{target="primary",reason="lagging"} 0 after reads fell back for lag`)
	}
	c.ResumeReplay(t)
	paused = false
	resumed := time.Now()
	pgtest.Poll(t, "the standby serving reads again after ResumeReplay", func() bool {
		before := lagging.ReplicaReads(t)
		now, err := read(t.Context())
		return err == nil && now == got && lagging.ReplicaReads(t) > before
	})
	t.Logf("reads back on the standby %v after ResumeReplay", time.Since(resumed).Round(time.Millisecond))
}

// ProveReplicaDown stops the standby while goroutines call reads (Replica methods) in a
// loop, and fails t on any error: the reads go on, on the primary. The standby stays down.
func ProveReplicaDown(t *testing.T, r *Replicated, reads ...ReadCall) {
	t.Helper()
	const workers, afterStop = 4, 400
	r.WaitStandby(t, true)
	var calls, failed atomic.Int64
	var stopped atomic.Bool
	var afterCalls atomic.Int64
	var mu sync.Mutex
	var errs []error
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				wasStopped := stopped.Load()
				_, err := reads[i%len(reads)](ctx)
				if err != nil && ctx.Err() == nil {
					failed.Add(1)
					mu.Lock()
					if len(errs) < 5 {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
				calls.Add(1)
				if wasStopped {
					afterCalls.Add(1)
				}
			}
		})
	}
	defer func() { cancel(); wg.Wait() }()
	before := r.ReplicaReads(t)
	pgtest.Poll(t, "the read load running on the standby", func() bool {
		return calls.Load() >= 50 && r.ReplicaReads(t) > before+10
	})
	onPrimary := r.Metric(t, "pgfleet_db_reads_total", map[string]string{"target": "primary"})
	r.Cluster.StopStandby(t)
	stopped.Store(true)
	began, callsAtStop := time.Now(), calls.Load()
	pgtest.Poll(t, "reads after the standby stopped", func() bool { return afterCalls.Load() >= afterStop })
	cancel()
	wg.Wait()
	t.Logf("%d reads (%d goroutines) before the standby stopped, %d after in %v: %d errors", callsAtStop, workers,
		calls.Load()-callsAtStop, time.Since(began).Round(time.Millisecond), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d reads failed while the standby stopped, want 0; first: %v", n, errs)
	}
	if r.Metric(t, "pgfleet_db_reads_total", map[string]string{"target": "primary"}) == onPrimary {
		t.Error(`pgfleet_db_reads_total{target="primary"} did not move after the standby stopped: the reads went nowhere else`)
	}
	r.WaitStandby(t, false)
}

// ProveReadYourWrites writes again and again (write stores marker where read shows it) with
// the standby replaying, and reads each write right away with its consistency token: every
// read must show its write's marker, whether the standby (once it has replayed the write) or
// the primary answered it.
func ProveReadYourWrites(t *testing.T, r *Replicated, read ReadCall, write func(ctx context.Context, marker string, opts ...grpc.CallOption) error) {
	t.Helper()
	const rounds = 30
	r.WaitStandby(t, true)
	before := r.ReplicaReads(t)
	var slowest time.Duration
	for i := range rounds {
		marker := "ryw-" + strconv.Itoa(i)
		var hdr metadata.MD
		if err := write(t.Context(), marker, grpc.Header(&hdr)); err != nil {
			t.Fatalf("write %s: %v", marker, err)
		}
		toks := hdr.Get(replica.TokenHeader)
		if len(toks) != 1 {
			t.Fatalf("write %s answered with %s %q, want one token", marker, replica.TokenHeader, toks)
		}
		began := time.Now()
		got, err := read(metadata.AppendToOutgoingContext(t.Context(), replica.TokenHeader, toks[0]))
		slowest = max(slowest, time.Since(began))
		if err != nil {
			t.Fatalf("read after write %s: %v", marker, err)
		}
		if !strings.Contains(got, marker) {
			t.Errorf("read with the token of write %s does not show it:\n%s", marker, got)
		}
	}
	t.Logf("%d writes each read back at once with its token: %v of the reads on the standby, slowest read %v", rounds,
		r.ReplicaReads(t)-before, slowest.Round(time.Millisecond))
}

// EndStream ends a stream the client stops reading (a Watch): it cancels it, then receives
// until its error. The stream has then finished, and filled the call's grpc.Header option,
// which cancelling alone leaves to a goroutine of grpc's, racing the caller's read of it.
func EndStream(cancel context.CancelFunc, recv func() error) {
	cancel()
	for recv() == nil {
	}
}
