package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/replica"
	"github.com/pgfleet/pgfleet/pkg/retry"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

// Export limits.
const (
	defaultExportBatch = 10000
	maxExportBatch     = 100000
	// exportBuffered is how many batches each symbol's queue holds ahead of the sender: with
	// the one a worker is filling, memory holds at most EXPORT_WORKERS × (exportBuffered+1)
	// batches plus the one the sender holds back (it must know whether a batch is the last).
	exportBuffered = 2
)

// ExportConfig holds ExportPrices' settings.
type ExportConfig struct {
	// Workers read one export's symbols in parallel, each in its own transaction on the
	// export's snapshot.
	Workers int `env:"EXPORT_WORKERS, default=2" help:"parallel readers of one ExportPrices call, each a connection on the export's snapshot"`
	// ResumeWindow is how long a cut export's snapshot stays importable for a resume.
	ResumeWindow time.Duration `env:"EXPORT_RESUME_WINDOW, default=2m" help:"how long the snapshot of a cut ExportPrices stays held for a resume (one connection and an open transaction each)"`
	// MaxHeld bounds the snapshots held for resumes at once; the oldest goes first.
	MaxHeld int `env:"EXPORT_MAX_HELD, default=4" help:"cut exports' snapshots held at once for resumes; past it the oldest is let go"`
}

func (c ExportConfig) withDefaults() ExportConfig {
	if c.Workers <= 0 {
		c.Workers = 2
	}
	if c.ResumeWindow <= 0 {
		c.ResumeWindow = 2 * time.Minute
	}
	if c.MaxHeld <= 0 {
		c.MaxHeld = 4
	}
	return c
}

// exportMetrics are ExportPrices' Prometheus figures.
type exportMetrics struct {
	rows, bytes *prometheus.CounterVec
	held        prometheus.Gauge
}

func newExportMetrics(reg prometheus.Registerer) exportMetrics {
	m := exportMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_export_rows_total",
			Help: "Rows ExportPrices sent, by format."}, []string{"format"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgfleet_export_bytes_total",
			Help: "Bytes of the messages ExportPrices sent (protobuf size, or Arrow IPC bytes), by format."}, []string{"format"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgfleet_export_snapshots_held",
			Help: "Snapshots of cut exports held for a resume (EXPORT_MAX_HELD at most)."}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.bytes, m.held)
	}
	return m
}

// anchor is the transaction that exported a snapshot: the snapshot can be imported while it
// is open, on the server it runs on, and no longer.
type anchor struct {
	id    string
	pool  *pgxpool.Pool
	conn  *pgxpool.Conn
	tx    pgx.Tx
	timer *time.Timer // while held
	done  bool        // its export was complete: let go before the cut ones
}

// close ends the transaction, which lets the snapshot go, and gives the connection back.
func (a *anchor) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.tx.Rollback(ctx); err != nil {
		_ = a.conn.Conn().Close(ctx) // a connection in an unknown state goes, not back to the pool
	}
	a.conn.Release()
}

// holds keeps the anchors of cut exports for their resumes, EXPORT_RESUME_WINDOW each, at
// most EXPORT_MAX_HELD at once. It is in-process: a resume that reaches another process of
// the service imports the snapshot from this one's held transaction (same database server).
type holds struct {
	window time.Duration
	max    int
	gauge  prometheus.Gauge

	mu    sync.Mutex
	held  map[string]*anchor
	order []string // ids, oldest first
}

// hold keeps a until the window passes or take claims it; if full, it lets go the oldest
// complete export's first, else the oldest.
func (h *holds) hold(a *anchor) {
	h.mu.Lock()
	var evicted []*anchor
	for len(h.order) >= h.max {
		old := h.held[h.order[0]]
		for _, id := range h.order {
			if h.held[id].done {
				old = h.held[id]
				break
			}
		}
		h.remove(old)
		old.timer.Stop()
		evicted = append(evicted, old)
	}
	h.held[a.id] = a
	h.order = append(h.order, a.id)
	a.timer = time.AfterFunc(h.window, func() { h.expire(a) })
	h.gauge.Set(float64(len(h.held)))
	h.mu.Unlock()
	for _, old := range evicted {
		old.close()
	}
}

// take returns the anchor held for id, no longer held, or nil.
func (h *holds) take(id string) *anchor {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.held[id]
	if a != nil {
		a.timer.Stop()
		h.remove(a)
	}
	return a
}

// expire lets a go when its window has passed, unless take or eviction came first.
func (h *holds) expire(a *anchor) {
	h.mu.Lock()
	if h.held[a.id] != a {
		h.mu.Unlock()
		return
	}
	h.remove(a)
	h.mu.Unlock()
	a.close()
}

// remove drops a from the maps; h.mu held.
func (h *holds) remove(a *anchor) {
	delete(h.held, a.id)
	for i, id := range h.order {
		if id == a.id {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
	h.gauge.Set(float64(len(h.held)))
}

// closeAll lets every held snapshot go (the server is stopping: the pool cannot close while
// they hold connections).
func (h *holds) closeAll() {
	h.mu.Lock()
	all := make([]*anchor, 0, len(h.held))
	for _, a := range h.held {
		a.timer.Stop()
		all = append(all, a)
	}
	h.held, h.order = map[string]*anchor{}, nil
	h.gauge.Set(0)
	h.mu.Unlock()
	for _, a := range all {
		a.close()
	}
}

// exporter is ExportPrices' state in a Server.
type exporter struct {
	cfg     ExportConfig
	metrics exportMetrics
	holds   *holds
	reads   *replica.Router
	primary *pgxpool.Pool
}

func newExporter(cfg ExportConfig, reg prometheus.Registerer, reads *replica.Router, primary *pgxpool.Pool) *exporter {
	cfg = cfg.withDefaults()
	m := newExportMetrics(reg)
	return &exporter{cfg: cfg, metrics: m, reads: reads, primary: primary,
		holds: &holds{window: cfg.ResumeWindow, max: cfg.MaxHeld, gauge: m.held, held: map[string]*anchor{}}}
}

// Close lets go the snapshots held for resumes; call it before the pool closes.
func (s *Server) Close() { s.export.holds.closeAll() }

// exportSnapshot is where one ExportPrices call reads: a coordinator transaction on one
// server, on the snapshot id, which the workers import on the same pool. own: the
// coordinator is the snapshot's anchor (it exported it), to hold after a cut.
type exportSnapshot struct {
	id  string
	own *anchor
	// coord is the coordinator's transaction when it only imported the snapshot (a resume
	// on a process that does not hold it); nil when own is set.
	coordConn *pgxpool.Conn
	coordTx   pgx.Tx
	pool      *pgxpool.Pool
	done      bool // the export sent its last message
}

// tx is the coordinator's transaction.
func (x *exportSnapshot) tx() pgx.Tx {
	if x.own != nil {
		return x.own.tx
	}
	return x.coordTx
}

// end closes the coordinator: a cut export's anchor is held for a resume, any other closed.
func (x *exportSnapshot) end(e *exporter, cut bool) {
	switch {
	case x.own != nil && cut:
		x.own.done = x.done
		e.holds.hold(x.own)
	case x.own != nil:
		x.own.close()
	default:
		(&anchor{conn: x.coordConn, tx: x.coordTx}).close()
	}
}

var exportTxOptions = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// pools are the servers an export may read on, in order: the one its call reads on (the
// Replica route: a usable replica, one that has replayed the call's consistency token if it
// has one, else the primary), then the primary. Every transaction of one export runs on the
// server its coordinator chose, since a snapshot can only be imported on the server that
// exported it. A hot standby (PostgreSQL 10 and later) exports snapshots too:
// pg_export_snapshot needs no transaction id there, and SET TRANSACTION SNAPSHOT imports
// the snapshot in other sessions of the same standby; what a standby cannot do is import a
// snapshot of its primary, or keep its snapshot's rows from replay's cleanup: a replay
// conflict cancels the export's queries after max_standby_streaming_delay unless
// hot_standby_feedback is on. A DATABASE_READ_URL that names a load balancer over several
// standbys breaks "one server": name each standby.
func (e *exporter) pools(ctx context.Context) []*pgxpool.Pool {
	if e.reads == nil {
		return []*pgxpool.Pool{e.primary}
	}
	read := e.reads.CallPool(ctx)
	if read == e.primary {
		return []*pgxpool.Pool{read}
	}
	return []*pgxpool.Pool{read, e.primary}
}

// begin opens the coordinator of a new export on pool: a REPEATABLE READ READ ONLY
// transaction that exports its snapshot.
func (e *exporter) begin(ctx context.Context, pool *pgxpool.Pool) (*exportSnapshot, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("export: acquire: %w", err)
	}
	tx, err := conn.BeginTx(ctx, exportTxOptions)
	if err != nil {
		conn.Release()
		return nil, fmt.Errorf("export: begin: %w", err)
	}
	a := &anchor{pool: pool, conn: conn, tx: tx}
	if err := tx.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&a.id); err != nil {
		a.close()
		return nil, fmt.Errorf("export: export snapshot: %w", err)
	}
	return &exportSnapshot{id: a.id, own: a, pool: pool}, nil
}

// resume opens the coordinator of a resumed export on snapshot id: the anchor this process
// holds for it, else an import of it on the first server that has it.
func (e *exporter) resume(ctx context.Context, id string) (*exportSnapshot, error) {
	if a := e.holds.take(id); a != nil {
		return &exportSnapshot{id: id, own: a, pool: a.pool}, nil
	}
	for _, pool := range e.pools(ctx) {
		conn, tx, err := importSnapshot(ctx, pool, id)
		if store.SnapshotGone(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return &exportSnapshot{id: id, coordConn: conn, coordTx: tx, pool: pool}, nil
	}
	return nil, apierr.Newf(apierr.ExportSnapshotExpired, map[string]string{"window": e.cfg.ResumeWindow.String()},
		"the export's snapshot is gone (EXPORT_RESUME_WINDOW %v after the cut, or another database server): start the export again without resume_token", e.cfg.ResumeWindow)
}

// importSnapshot opens a REPEATABLE READ READ ONLY transaction on snapshot id. id is
// checked (snapshotID) before it is spliced in: SET TRANSACTION SNAPSHOT takes no parameter.
func importSnapshot(ctx context.Context, pool *pgxpool.Pool, id string) (*pgxpool.Conn, pgx.Tx, error) {
	if !snapshotID.MatchString(id) {
		return nil, nil, fmt.Errorf("export: snapshot id %q: %w", id, errExportToken)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("export: acquire: %w", err)
	}
	tx, err := conn.BeginTx(ctx, exportTxOptions)
	if err == nil {
		_, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+id+"'")
		if err == nil {
			return conn, tx, nil
		}
		(&anchor{conn: conn, tx: tx}).close()
		return nil, nil, fmt.Errorf("export: import snapshot: %w", err)
	}
	conn.Release()
	return nil, nil, fmt.Errorf("export: begin: %w", err)
}

// exportTask is one symbol's read: its batches in order, then the channel's close.
type exportTask struct {
	symbol string
	after  time.Time
	out    chan []store.ExportRow
}

// ExportPrices sends the universe's bars, read by EXPORT_WORKERS transactions on one
// exported snapshot, in (symbol, time) order whatever the workers' timing: each symbol's
// batches wait in their own short queue until the sender reaches that symbol. A stream cut
// before its last message leaves its snapshot held for a resume (EXPORT_RESUME_WINDOW).
func (s *Server) ExportPrices(req *stockv1.ExportPricesRequest, stream stockv1.StockService_ExportPricesServer) error {
	ctx := stream.Context()
	done, err := s.shares.openStream()
	if err != nil {
		return err
	}
	defer done()
	if err := s.exportPrices(ctx, req, stream); err != nil {
		return s.grpcError(ctx, err)
	}
	return nil
}

func (s *Server) exportPrices(ctx context.Context, req *stockv1.ExportPricesRequest, stream stockv1.StockService_ExportPricesServer) error {
	fp := exportFingerprint(req)
	var pos exportToken
	if t := req.GetResumeToken(); t != "" {
		var err error
		if pos, err = decodeExportToken(t); err != nil {
			return exportTokenInvalid("malformed: not a token ExportPrices sent")
		}
		if pos.Fingerprint != fp {
			return exportTokenInvalid("made for another request: every field but resume_token must be as in the cut export's request")
		}
	}
	// The filter first: a bad one is INVALID_ARGUMENT before a snapshot is taken.
	q, err := s.lists.stocks.Build(query.Request{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	// The coordinator's and the workers' connections are taken from the exports' share
	// (EXPORT_DB_CONNS) at once: taken one by one, exports that each hold some would wait
	// for one another's, and coordinators alone could hold the whole pool (issue 12).
	workers, need := s.shares.exportConns(s.export.cfg.Workers)
	if err := s.shares.export.Acquire(ctx, int64(need)); err != nil {
		return err
	}
	defer s.shares.export.Release(int64(need))
	if req.GetResumeToken() != "" {
		snap, err := s.export.resume(ctx, pos.Snapshot)
		if err != nil {
			return err
		}
		_, err = s.exportOn(ctx, snap, workers, q, req, pos, stream)
		return err
	}
	// A new export whose server fails before the first message goes on the primary: a
	// replica that stops fails no export that has not started.
	pools := s.export.pools(ctx)
	for i, pool := range pools {
		snap, err := s.export.begin(ctx, pool)
		sent := false
		if err == nil {
			sent, err = s.exportOn(ctx, snap, workers, q, req, exportToken{Version: exportTokenVersion, Fingerprint: fp}, stream)
		}
		if err != nil && !sent && i < len(pools)-1 && retry.Unavailable(err) {
			s.log.WarnContext(ctx, "export failed on a replica before its first message, run again on the primary", "err", err)
			continue
		}
		return err
	}
	return nil
}

// exportOn runs an export on snap from pos, and reports whether it sent a message.
func (s *Server) exportOn(ctx context.Context, snap *exportSnapshot, workers int, q *query.Query, req *stockv1.ExportPricesRequest, pos exportToken, stream stockv1.StockService_ExportPricesServer) (sent bool, err error) {
	pos.Snapshot = snap.id
	// A stream ended before its last message by its client (a failed Send, or the call's
	// context cancelled) is cut: its snapshot is held for a resume. Any other failure lets
	// it go.
	cut := false
	defer func() { snap.end(s.export, cut) }()

	symbols, err := s.store.WithTx(snap.tx()).ExportUniverse(ctx, q)
	if err != nil {
		return false, err
	}
	start, end := timeRange(req.GetStartTime(), req.GetEndTime())
	first := start.Truncate(time.Microsecond)
	if first.Equal(start) && req.GetStartTime() != nil {
		first = first.Add(-time.Microsecond) // pages read after a time: the start is inclusive
	}
	tasks := make([]exportTask, 0, len(symbols))
	for _, sym := range symbols {
		switch {
		case pos.Symbol == "" || sym > pos.Symbol:
			tasks = append(tasks, exportTask{symbol: sym, after: first})
		case sym == pos.Symbol:
			tasks = append(tasks, exportTask{symbol: sym, after: maxTime(first, pos.after())})
		}
	}
	for i := range tasks {
		tasks[i].out = make(chan []store.ExportRow, exportBuffered)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	var next atomic.Int64
	source, size := req.GetRecommendationSource(), exportBatchSize(req)
	for range min(workers, max(1, len(tasks))) {
		g.Go(func() error { return s.exportWorker(gctx, snap, tasks, &next, end, size, source) })
	}
	send := newExportSender(stream, req, pos, s.export.metrics)
	err = send.run(gctx, tasks)
	cancel()
	// Once the sender is through, every symbol was read: workers still starting see only
	// the cancel above.
	werr := g.Wait()
	if err != nil && werr != nil && !errors.Is(werr, context.Canceled) {
		err = werr // a worker's failure is the cause of the sender's end
	}
	if err != nil {
		cut = send.failed || stream.Context().Err() != nil
		if cut && stream.Context().Err() != nil {
			return send.sent, stream.Context().Err()
		}
		return send.sent, err
	}
	// The last messages may still be on their way when the client is cut: the server cannot
	// tell, so a complete export's snapshot is held too, first in line to be let go.
	cut, snap.done = true, true
	return true, nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// exportWorker imports the snapshot and reads symbols in order, taking the next one not
// taken, until none is left. Each symbol is read in pages of one batch (an index range scan
// of its (symbol, ts) key after the last row read), queued for the sender.
func (s *Server) exportWorker(ctx context.Context, snap *exportSnapshot, tasks []exportTask, next *atomic.Int64, end time.Time, size int, source string) error {
	var conn *pgxpool.Conn
	var tx pgx.Tx
	var err error
	if conn, tx, err = importSnapshot(ctx, snap.pool, snap.id); err != nil {
		if store.SnapshotGone(err) {
			return apierr.New(apierr.ExportSnapshotExpired, "the export's snapshot is gone: start the export again without resume_token", nil)
		}
		return err
	}
	defer (&anchor{conn: conn, tx: tx}).close()
	st := s.store.WithTx(tx)
	for {
		i := int(next.Add(1) - 1)
		if i >= len(tasks) {
			return nil
		}
		t := &tasks[i]
		after := t.after
		for {
			rows, err := st.ExportPage(ctx, make([]store.ExportRow, 0, size), t.symbol, after, end, size, source)
			if err != nil {
				return err
			}
			if len(rows) > 0 {
				select {
				case t.out <- rows:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if len(rows) < size {
				break
			}
			after = rows[len(rows)-1].Time
		}
		close(t.out)
	}
}

// exportSender turns batches into messages. It holds one message back until the next
// batch arrives or the export ends: only the last message goes without a resume token
// (Arrow: with the end-of-stream marker), so it must be known to be last.
type exportSender struct {
	stream  stockv1.StockService_ExportPricesServer
	format  stockv1.ExportFormat
	label   string
	pos     exportToken
	metrics exportMetrics
	arrow   *arrowEncoder
	withRec bool
	failed  bool // a Send failed: the client went
	sent    bool // a message went out

	pending     []store.ExportRow // the batch held back
	havePending bool
}

func newExportSender(stream stockv1.StockService_ExportPricesServer, req *stockv1.ExportPricesRequest, pos exportToken, m exportMetrics) *exportSender {
	f := exportFormat(req)
	label := "proto"
	if f == stockv1.ExportFormat_EXPORT_FORMAT_ARROW {
		label = "arrow"
	}
	return &exportSender{stream: stream, format: f, label: label, pos: pos, metrics: m, withRec: req.GetRecommendationSource() != ""}
}

func (x *exportSender) run(ctx context.Context, tasks []exportTask) error {
	if x.format == stockv1.ExportFormat_EXPORT_FORMAT_ARROW {
		var err error
		if x.arrow, err = newArrowEncoder(x.withRec); err != nil {
			return err
		}
	}
	for i := range tasks {
		for {
			var rows []store.ExportRow
			var ok bool
			select {
			case rows, ok = <-tasks[i].out:
			case <-ctx.Done():
				return ctx.Err()
			}
			if !ok {
				break
			}
			if err := x.push(rows); err != nil {
				return err
			}
		}
	}
	return x.finish()
}

// push sends the batch held back, if any (or, for Arrow, the schema before the first
// batch), with its resume token, and holds rows back.
func (x *exportSender) push(rows []store.ExportRow) error {
	if x.havePending {
		if err := x.send(x.pending, false); err != nil {
			return err
		}
	} else if x.arrow != nil {
		if err := x.sendSchema(false); err != nil {
			return err
		}
	}
	x.pending, x.havePending = rows, true
	return nil
}

// finish sends the last message: the batch held back, or with no row at all an empty
// message (Arrow: the schema and the end-of-stream marker).
func (x *exportSender) finish() error {
	if x.havePending {
		return x.send(x.pending, true)
	}
	if x.arrow != nil {
		return x.sendSchema(true)
	}
	return x.emit(&stockv1.ExportPricesResponse{}, 0)
}

func (x *exportSender) sendSchema(last bool) error {
	msg := &stockv1.ExportPricesResponse{ArrowIpc: x.arrow.schemaMessage(last)}
	if !last {
		msg.ResumeToken = x.pos.encode()
	}
	return x.emit(msg, 0)
}

// send sends one batch; the position moves past it first, so its token resumes after it.
func (x *exportSender) send(rows []store.ExportRow, last bool) error {
	lastRow := rows[len(rows)-1]
	x.pos.Symbol, x.pos.TimeMicros, x.pos.Batches = lastRow.Symbol, lastRow.Time.UnixMicro(), x.pos.Batches+1
	token := ""
	if !last {
		token = x.pos.encode()
	}
	msg := &stockv1.ExportPricesResponse{ResumeToken: token}
	if x.arrow != nil {
		b, err := x.arrow.batch(rows, token, last)
		if err != nil {
			return err
		}
		msg.ArrowIpc = b
	} else {
		msg.Rows = make([]*stockv1.ExportRow, len(rows))
		for i := range rows {
			msg.Rows[i] = toExportRow(&rows[i])
		}
	}
	return x.emit(msg, len(rows))
}

func (x *exportSender) emit(msg *stockv1.ExportPricesResponse, rows int) error {
	size := len(msg.GetArrowIpc())
	if x.arrow == nil {
		size = proto.Size(msg)
	}
	if err := x.stream.Send(msg); err != nil {
		x.failed = true
		return err
	}
	x.sent = true
	x.metrics.rows.WithLabelValues(x.label).Add(float64(rows))
	x.metrics.bytes.WithLabelValues(x.label).Add(float64(size))
	return nil
}

// toExportRow converts a row for EXPORT_FORMAT_PROTO: decimals as ListPrices gives them.
func toExportRow(r *store.ExportRow) *stockv1.ExportRow {
	out := &stockv1.ExportRow{
		Symbol: r.Symbol,
		Time:   timestamppb.New(r.Time),
		Open:   decimal.Trim(r.Open),
		High:   decimal.Trim(r.High),
		Low:    decimal.Trim(r.Low),
		Close:  decimal.Trim(r.Close),
		Volume: r.Volume,
	}
	if r.RecPredictTime != nil {
		rec := &stockv1.PointInTimeRecommendation{
			Action:       stockv1.Action(stockv1.Action_value[*r.RecAction]),
			Confidence:   *r.RecConfidence,
			ModelVersion: *r.RecModelVersion,
			PredictTime:  timestamppb.New(*r.RecPredictTime),
		}
		if r.RecTargetPrice != nil {
			rec.TargetPrice = decimal.Trim(*r.RecTargetPrice)
		}
		out.Recommendation = rec
	}
	return out
}

// HeldExports returns the snapshot ids held for resumes, oldest first (for tests and
// operators: pgfleet_export_snapshots_held counts them).
func (s *Server) HeldExports() []string {
	h := s.export.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.order...)
}
