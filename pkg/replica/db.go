package replica

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgfleet/pgfleet/pkg/pgserver"
)

// Where says where an RPC may read.
type Where int

const (
	// Primary: every statement on the primary. Writes, reads inside write transactions, and
	// reads that must see the latest commit (lock status, a trade's prices).
	Primary Where = iota + 1
	// Replica: the RPC's reads tolerate the lag bound (MAX_REPLICA_LAG), or see the write
	// named by the caller's consistency token. They run on a usable replica, else on the
	// primary. Its writes, if any, still go to the primary.
	Replica
)

// Routes says where each RPC of a service reads, by full method name
// ("/pgfleet.stock.v1.StockService/ListStocks"). It is declared once per service, beside its
// auth policy; a test of each service walks its methods and fails on one missing here.
type Routes map[string]Where

// call is a replica-routed call's state, in its context: the position its reads must see,
// and where its first statement chose to read, which its later statements keep (one server's
// view for the whole call) until it fails.
//
// A call with a token holds the replica connection on which it saw its position replayed
// until it ends: behind one address (a load-balanced Service such as CloudNativePG's -ro)
// two connections may reach two standbys, and only the one checked is known to have
// replayed the write.
type call struct {
	minLSN   pgserver.LSN
	hasToken bool
	began    time.Time

	mu     sync.Mutex
	picked bool
	rep    *replica      // nil: the primary
	conn   *pgxpool.Conn // a token call's checked connection to rep
}

// release gives back a token call's connection; the call's later reads use the primary.
// It runs when the call ends (the interceptors, or its context's end).
func (c *call) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drop()
}

// drop releases c.conn and leaves the replica; c.mu held.
func (c *call) drop() {
	if c.conn != nil {
		c.conn.Release()
		c.conn = nil
	}
	c.rep = nil
}

type callKey struct{}

// withCall marks ctx as a call whose reads may run on a replica that has replayed minLSN
// (0: any position); hasToken makes its first read wait up to Config.Wait for one. The call's
// connection, if it holds one, goes back to its pool when ctx ends.
func withCall(ctx context.Context, minLSN pgserver.LSN, hasToken bool) (context.Context, *call) {
	c := &call{minLSN: minLSN, hasToken: hasToken, began: time.Now()}
	if hasToken {
		context.AfterFunc(ctx, c.release)
	}
	return context.WithValue(ctx, callKey{}, c), c
}

// WithReplicaReads marks ctx as a Replica call outside gRPC (tests, tools): DB's reads under
// ctx may run on a replica that has replayed minLSN, waiting up to Config.Wait for one
// when minLSN is not 0. A connection the call holds goes back when ctx ends.
func WithReplicaReads(ctx context.Context, minLSN pgserver.LSN) context.Context {
	ctx, _ = withCall(ctx, minLSN, minLSN != 0)
	return ctx
}

// querier is where a read runs: a pool, or a token call's checked connection.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// target returns the replica ctx's call reads on and how to reach it, or nil for the primary
// (a call not marked as Replica, or no usable replica). The first read of a call chooses,
// and counts it in pgfleet_db_reads_total; later reads keep the choice.
func (r *Router) target(ctx context.Context) (*replica, querier) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.picked {
		c.picked = true
		rep, reason := r.pick(0)
		if c.hasToken {
			rep, c.conn, reason = r.waitReplayed(ctx, c.minLSN, c.began.Add(r.cfg.Wait))
		}
		c.rep = rep
		r.count(rep, reason)
	}
	switch {
	case c.rep == nil:
		return nil, nil
	case c.conn != nil:
		return c.rep, c.conn
	}
	return c.rep, c.rep.pool
}

// replayedConn returns a connection to rep on which minLSN has been replayed, asking until
// deadline (after 1ms, then up to every 10ms), or nil.
func (r *Router) replayedConn(ctx context.Context, rep *replica, minLSN pgserver.LSN, deadline time.Time) *pgxpool.Conn {
	conn, err := rep.pool.Acquire(ctx)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for poll := firstPoll; ; poll = nextPoll(poll) {
		var text *string
		err := conn.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&text)
		if err == nil && text != nil {
			if l, perr := pgserver.ParseLSN(*text); perr == nil && l >= minLSN {
				return conn
			}
		}
		if err != nil && ctx.Err() == nil {
			conn.Release()
			return nil
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil
		case <-time.After(poll):
		}
	}
}

// failed handles a read that failed on rep: if the replica is at fault (see replicaFault), the
// call leaves it for the primary, a lost replica is marked down until its next check, and
// failed reports true: the read may run again on the primary.
func (r *Router) failed(ctx context.Context, rep *replica, err error) bool {
	if ctx.Err() != nil || !replicaFault(err) {
		return false
	}
	if c, _ := ctx.Value(callKey{}).(*call); c != nil {
		c.mu.Lock()
		c.drop()
		c.mu.Unlock()
	}
	if lost(err) {
		r.markDown(rep)
	}
	r.log.WarnContext(ctx, "read failed on a replica, run again on the primary", "replica", rep.label, "err", err)
	r.countRead("primary", ReasonNoReplica)
	return true
}

// DB runs a service's statements where its calls' routes say: the reads of a Replica call
// (Query, QueryRow, and read-only transactions other than SERIALIZABLE, which a standby
// refuses) on the replica Router chooses, everything else on the primary. A read that fails
// for the replica's sake before returning a row runs again on the primary, so a replica dying
// between two checks fails no read; one that fails after rows were returned marks the
// replica down, and the caller's retry (pkg/retry) runs on the primary. *DB has the methods
// of the services' store.DBTX and of retry.Beginner.
type DB struct{ r *Router }

// DB returns the Router's DB.
func (r *Router) DB() *DB { return &DB{r: r} }

// Exec runs on the primary: statements run by Exec write.
func (d *DB) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return d.r.primary.Exec(ctx, sql, args...)
}

// CopyFrom runs on the primary.
func (d *DB) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return d.r.primary.CopyFrom(ctx, table, columns, src)
}

// SendBatch runs on the primary: the services batch the lookups of their writes.
func (d *DB) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return d.r.primary.SendBatch(ctx, b)
}

// Query runs on the call's replica, else on the primary.
func (d *DB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rep, q := d.r.target(ctx)
	if rep == nil {
		return d.r.primary.Query(ctx, sql, args...)
	}
	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		rows.Close()
		if d.r.failed(ctx, rep, err) {
			return d.r.primary.Query(ctx, sql, args...)
		}
		return rows, err
	}
	return &fallbackRows{Rows: rows, d: d, rep: rep, ctx: ctx, sql: sql, args: args}, nil
}

// fallbackRows are a replica's rows that, if they fail before their first row, are replaced
// by the same query's rows on the primary.
type fallbackRows struct {
	pgx.Rows
	d      *DB
	rep    *replica
	ctx    context.Context
	sql    string
	args   []any
	seen   bool // a row was returned: too late to start again
	redone bool
}

func (f *fallbackRows) Next() bool {
	if f.Rows.Next() {
		f.seen = true
		return true
	}
	err := f.Err()
	if err == nil || f.redone {
		return false
	}
	if !f.d.r.failed(f.ctx, f.rep, err) || f.seen {
		return false
	}
	f.Close() // the failed rows, replaced below
	f.redone = true
	// On error pgx returns rows that hold it: Next is false, Err says why.
	f.Rows, _ = f.d.r.primary.Query(f.ctx, f.sql, f.args...) //nolint:sqlclosecheck // closed by the caller through f
	return f.Next()
}

// QueryRow runs on the call's replica, else on the primary; a row that fails on the replica
// for its sake is read again on the primary.
func (d *DB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rep, q := d.r.target(ctx)
	if rep == nil {
		return d.r.primary.QueryRow(ctx, sql, args...)
	}
	return fallbackRow{d: d, rep: rep, q: q, ctx: ctx, sql: sql, args: args}
}

type fallbackRow struct {
	d    *DB
	rep  *replica
	q    querier
	ctx  context.Context
	sql  string
	args []any
}

func (f fallbackRow) Scan(dest ...any) error {
	err := f.q.QueryRow(f.ctx, f.sql, f.args...).Scan(dest...)
	if err != nil && f.d.r.failed(f.ctx, f.rep, err) {
		return f.d.r.primary.QueryRow(f.ctx, f.sql, f.args...).Scan(dest...)
	}
	return err
}

// BeginTx begins a read-only transaction of a Replica call on its replica (but SERIALIZABLE,
// which a standby refuses), every other on the primary.
func (d *DB) BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error) {
	if opts.AccessMode != pgx.ReadOnly || opts.IsoLevel == pgx.Serializable {
		return d.r.primary.BeginTx(ctx, opts)
	}
	rep, q := d.r.target(ctx)
	if rep == nil {
		return d.r.primary.BeginTx(ctx, opts)
	}
	tx, err := q.BeginTx(ctx, opts)
	if err != nil && d.r.failed(ctx, rep, err) {
		return d.r.primary.BeginTx(ctx, opts)
	}
	return tx, err
}

// Check reports the methods of files' services that routes does not declare, names in
// routes that are no method of theirs, and Replica routes of writes (a method whose proto
// does not declare idempotency_level NO_SIDE_EFFECTS): each service's tests run it.
func (routes Routes) Check(files ...protoreflect.FileDescriptor) error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range files {
		for i := range f.Services().Len() {
			svc := f.Services().Get(i)
			for j := range svc.Methods().Len() {
				name := "/" + string(svc.FullName()) + "/" + string(svc.Methods().Get(j).Name())
				seen[name] = true
				switch routes[name] {
				case Primary:
				case Replica:
					if isWrite(name) {
						errs = append(errs, fmt.Errorf("%s writes (no idempotency_level NO_SIDE_EFFECTS) but is routed to replicas", name))
					}
				default:
					errs = append(errs, fmt.Errorf("%s: no route (replica.Primary or replica.Replica)", name))
				}
			}
		}
	}
	for name := range routes {
		if !seen[name] {
			errs = append(errs, fmt.Errorf("%s is routed but is no method of the services checked", name))
		}
	}
	if len(seen) == 0 {
		errs = append(errs, errors.New("no methods to check"))
	}
	return errors.Join(errs...)
}

// CallPool returns the pool of the server ctx's call reads on (chosen by its first read, as
// DB's statements choose: a Replica call's usable replica, after its consistency token's
// write if it carries one, else the primary), for a call that needs several connections to
// that one server at once: a snapshot exported by one session can be imported only by
// sessions of the same server. A call not marked as Replica gets the primary. Behind a
// DATABASE_READ_URL that names a load balancer, two connections of one pool may reach two
// standbys: name each standby instead.
func (r *Router) CallPool(ctx context.Context) *pgxpool.Pool {
	rep, _ := r.target(ctx)
	if rep == nil {
		return r.primary
	}
	return rep.pool
}

// Primary returns the primary's pool.
func (r *Router) Primary() *pgxpool.Pool { return r.primary }
