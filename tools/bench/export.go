package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
)

// --- scenario 13: snapshot exports against a pgx read and COPY TO -------------------------------
//
// A universe of exportSymbols stocks (S0000..S0199, the filter exportFilter) gets cfg.exportBars
// daily bars each from 2000-01-01, ingested append-only through IngestPrices. Then every path
// reads those same rows, the paths taking turns for exportRounds rounds: a pgx read of the SQL
// an export amounts to, COPY of that SQL TO STDOUT in binary and CSV, ExportPrices over gRPC in
// protobuf and in Arrow IPC (decoded with arrow-go's ipc reader), and the Arrow REST download
// through the gateway (bytes counted, and decoded). A line's rows/s is its best round; MiB/s is
// what crossed the wire (COPY: its output) over that round's time.

const (
	exportSymbols = 200
	exportRounds  = 3
	exportPerMsg  = 5000 // rows per IngestPrices message of the seed
	// exportFilter selects the universe: the first exportSymbols stocks.
	exportFilter = `symbol < "S0200"`
	// exportSubsetFilter is the sector line's: one sector of the universe (every 11th stock).
	exportSubsetFilter = exportFilter + ` AND sector = "Technology"`
)

var exportFrom = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// exportRun is what one read of the rows returned.
type exportRun struct {
	rows, bytes int64
	volume      int64 // sum of the volume column where the path decodes rows (a check, 0 where not)
	took        time.Duration
	cpu         [len(exportCPUNames)]time.Duration // CPU time of each process over the read
}

// exportCPUNames are the processes whose CPU time each read reports, in exportRun.cpu's order.
var exportCPUNames = [...]string{"PostgreSQL", "stock", "gateway", "bench"}

// cpuText renders r's CPU times (those above 5 ms) and the rows per CPU second of them all: a
// figure that the machine's other tenants disturb less than the wall-clock rate.
func (r exportRun) cpuText() string {
	var parts []string
	var all time.Duration
	for i, c := range r.cpu {
		all += c
		if c >= 5*time.Millisecond {
			parts = append(parts, fmt.Sprintf("%s %.2f", exportCPUNames[i], c.Seconds()))
		}
	}
	if all <= 0 {
		return ""
	}
	return fmt.Sprintf("CPU s: %s; %s rows per CPU s", strings.Join(parts, " · "), rate(float64(r.rows)/all.Seconds()))
}

// exportPath is one way of reading the rows, run once per round.
type exportPath struct {
	name    string
	fleet   bool // a pgfleet path: it may not be built yet (skipped, not fatal)
	subset  bool
	run     func(ctx context.Context) (exportRun, error)
	runs    []exportRun
	skipped string // why the path stopped running
}

func (p *exportPath) best() exportRun {
	return slices.MinFunc(p.runs, func(a, b exportRun) int { return int(a.took - b.took) })
}

func (p *exportPath) median() exportRun {
	s := slices.Clone(p.runs)
	slices.SortFunc(s, func(a, b exportRun) int { return int(a.took - b.took) })
	return s[len(s)/2]
}

// exportUniverse is the universe's symbols, or the subset's with subset.
func exportUniverse(subset bool) []string {
	var syms []string
	for i := range exportSymbols {
		if !subset || sectors[i%len(sectors)] == "Technology" {
			syms = append(syms, symbolOf(i))
		}
	}
	return syms
}

// exportSQL is the read an export amounts to, the universe spelled out as a literal array (COPY
// takes no parameters, and every path runs the very same text).
func exportSQL(symbols []string, bars int) string {
	return fmt.Sprintf(`SELECT symbol, ts, open, high, low, close, volume FROM stock.prices WHERE symbol = ANY('{%s}'::text[]) AND ts >= '%s' AND ts < '%s' ORDER BY symbol, ts`,
		strings.Join(symbols, ","), exportFrom.Format(time.RFC3339), exportTo(bars).Format(time.RFC3339))
}

func exportTo(bars int) time.Time { return exportFrom.AddDate(0, 0, bars) }

// exportPrices are the decimal strings of the seed's prices: 50.00 to 1049.99.
var exportPrices = func() []string {
	p := make([]string, 100_000)
	for i := range p {
		p[i] = strconv.Itoa(50+i/100) + "." + fmt.Sprintf("%02d", i%100)
	}
	return p
}()

// exportBar is bar i of universe stock s: open, high, low, close vary with both, so that no
// column compresses to a constant.
func exportBar(s, i int) *stockv1.Price {
	k := (s*7919 + i*104729) % (len(exportPrices) - 300)
	return &stockv1.Price{
		Symbol: symbolOf(s), Time: timestamppb.New(exportFrom.AddDate(0, 0, i)),
		Open: exportPrices[k+100], High: exportPrices[k+200], Low: exportPrices[k], Close: exportPrices[k+100+(i%97)],
		Volume: exportVolume(s, i),
	}
}

func exportVolume(s, i int) int64 { return int64(1000 + (s*31+i*7919)%5_000_000) }

// seedExport replaces the universe's prices with the scenario's bars through IngestPrices,
// append-only (the fast path), then vacuums so that no read pays for hint bits.
func (b *bench) seedExport(ctx context.Context, bars int) (volume int64, err error) {
	syms := exportUniverse(false)
	// Earlier scenarios left bars of these symbols (some in 2030); append-only takes only bars
	// later than a symbol's latest, so the slate is wiped first.
	for _, t := range []string{"stock.prices", "stock.latest_prices"} {
		if _, err := b.admin.Exec(ctx, "DELETE FROM "+t+" WHERE symbol = ANY($1)", syms); err != nil {
			return 0, err
		}
	}
	conn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	st, err := stockv1.NewStockServiceClient(conn).IngestPrices(outgoing(ctx, b.ingestTok))
	if err != nil {
		return 0, err
	}
	msg := &stockv1.IngestPricesRequest{AppendOnly: &stockv1.AppendOnly{Symbols: syms}}
	for s := range exportSymbols {
		for i := range bars {
			msg.Prices = append(msg.Prices, exportBar(s, i))
			volume += exportVolume(s, i)
			if len(msg.Prices) == exportPerMsg {
				if err := st.Send(msg); err != nil {
					return 0, fmt.Errorf("IngestPrices send: %w", err)
				}
				msg = &stockv1.IngestPricesRequest{}
			}
		}
	}
	if len(msg.Prices) > 0 {
		if err := st.Send(msg); err != nil {
			return 0, fmt.Errorf("IngestPrices send: %w", err)
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return 0, fmt.Errorf("IngestPrices: %w", err)
	}
	if want := int64(exportSymbols * bars); resp.GetInsertedCount() != want {
		return 0, fmt.Errorf("IngestPrices inserted %d rows, want %d", resp.GetInsertedCount(), want)
	}
	_, err = b.admin.Exec(ctx, "VACUUM ANALYZE stock.prices")
	return volume, err
}

func (b *bench) scenarioExport(ctx context.Context) error {
	bars := b.cfg.exportBars
	want := int64(exportSymbols * bars)
	subsetSyms := exportUniverse(true)
	wantSubset := int64(len(subsetSyms) * bars)
	b.logf("scenario 13: seeding %d symbols × %d daily bars (%d rows) through IngestPrices, append-only", exportSymbols, bars, want)
	t0 := time.Now()
	wantVolume, err := b.seedExport(ctx, bars)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	seeded := time.Since(t0)

	// The baselines' connection, as role stock, its bytes counted.
	var pgWire atomic.Int64
	pcfg, err := pgx.ParseConfig(b.pg.roleURL("stock", "pgfleet-bench-export"))
	if err != nil {
		return err
	}
	pcfg.DialFunc = countingDialer(&pgWire)
	pg, err := pgx.ConnectConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pg.Close(context.Background())

	var grpcWire, httpWire atomic.Int64
	gconn, err := grpc.NewClient(b.stock.grpcAddr, grpcInsecure(), grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		return countingDialer(&grpcWire)(ctx, "tcp", addr)
	}), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer gconn.Close()
	client := stockv1.NewStockServiceClient(gconn)
	tr := &http.Transport{DialContext: countingDialer(&httpWire), DisableCompression: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	sql, subsetSQL := exportSQL(exportUniverse(false), bars), exportSQL(subsetSyms, bars)
	b.command("-- scenario 13 SQL (pgx read; COPY (...) TO STDOUT (FORMAT binary|csv)): " + exportSQL([]string{"S0000", "…", "S0199"}, bars))
	req := func(filter string, f stockv1.ExportFormat) *stockv1.ExportPricesRequest {
		return &stockv1.ExportPricesRequest{Filter: filter, StartTime: timestamppb.New(exportFrom),
			EndTime: timestamppb.New(exportTo(bars)), Format: f}
	}
	restURL := ""
	if b.gateway != nil {
		q := url.Values{"filter": {exportFilter}, "start_time": {exportFrom.Format(time.RFC3339)},
			"end_time": {exportTo(bars).Format(time.RFC3339)}, "format": {stockv1.ExportFormat_EXPORT_FORMAT_ARROW.String()}}
		restURL = "http://" + b.gateway.httpAddr + "/v1/prices:export?" + q.Encode()
	}
	pm, err := b.pg.postmasterPID()
	if err != nil {
		return err
	}
	cpu := func() (c [len(exportCPUNames)]time.Duration) {
		c[0], c[1], c[3] = pgCPU(pm), cpuTime(b.stock.pid()), cpuTime(os.Getpid())
		if pid := b.gatewayPID(); pid > 0 {
			c[2] = cpuTime(pid)
		}
		return c
	}
	// wire times a read, takes its byte count from counter and the CPU time of the processes.
	wire := func(counter *atomic.Int64, fn func() (exportRun, error)) (exportRun, error) {
		before, cpu0 := counter.Load(), cpu()
		t0 := time.Now()
		r, err := fn()
		r.took = time.Since(t0)
		for i, c := range cpu() {
			r.cpu[i] = c - cpu0[i]
		}
		if r.bytes == 0 {
			r.bytes = counter.Load() - before
		}
		return r, err
	}
	paths := []*exportPath{
		{name: "pgx read of the same SQL, rows scanned (numeric as pgtype.Numeric)", run: func(ctx context.Context) (exportRun, error) {
			return wire(&pgWire, func() (exportRun, error) { return pgxExportRead(ctx, pg, sql) })
		}},
		{name: "COPY (the same SQL) TO STDOUT (FORMAT binary), bytes counted", run: func(ctx context.Context) (exportRun, error) {
			return wire(&pgWire, func() (exportRun, error) { return copyExport(ctx, pg, sql, "binary") })
		}},
		{name: "COPY (the same SQL) TO STDOUT (FORMAT csv), bytes counted", run: func(ctx context.Context) (exportRun, error) {
			return wire(&pgWire, func() (exportRun, error) { return copyExport(ctx, pg, sql, "csv") })
		}},
		{name: "ExportPrices, gRPC, EXPORT_FORMAT_PROTO, rows read", fleet: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&grpcWire, func() (exportRun, error) {
				return grpcExportProto(outgoing(ctx, b.readTok), client, req(exportFilter, stockv1.ExportFormat_EXPORT_FORMAT_PROTO))
			})
		}},
		{name: "ExportPrices, gRPC, EXPORT_FORMAT_ARROW, IPC stream decoded", fleet: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&grpcWire, func() (exportRun, error) {
				return grpcExportArrow(outgoing(ctx, b.readTok), client, req(exportFilter, stockv1.ExportFormat_EXPORT_FORMAT_ARROW))
			})
		}},
		{name: "GET /v1/prices:export?format=EXPORT_FORMAT_ARROW → gateway → stock, bytes counted", fleet: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&httpWire, func() (exportRun, error) { return b.restExport(ctx, hc, restURL, false, want) })
		}},
		{name: "GET /v1/prices:export?format=EXPORT_FORMAT_ARROW → gateway → stock, decoded", fleet: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&httpWire, func() (exportRun, error) { return b.restExport(ctx, hc, restURL, true, want) })
		}},
		{name: "sector subset: COPY TO STDOUT (FORMAT binary)", subset: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&pgWire, func() (exportRun, error) { return copyExport(ctx, pg, subsetSQL, "binary") })
		}},
		{name: "sector subset: ExportPrices, gRPC, EXPORT_FORMAT_ARROW, decoded", fleet: true, subset: true, run: func(ctx context.Context) (exportRun, error) {
			return wire(&grpcWire, func() (exportRun, error) {
				return grpcExportArrow(outgoing(ctx, b.readTok), client, req(exportSubsetFilter, stockv1.ExportFormat_EXPORT_FORMAT_ARROW))
			})
		}},
	}
	if b.gateway == nil {
		paths[5].skipped, paths[6].skipped = "not run: gateway not built", "not run: gateway not built"
	}

	plan, err := explain(ctx, pg, sql)
	if err != nil {
		return err
	}
	b.note("scenario 13: the baselines' plan: %s", planSummary(plan))
	// One unmeasured read first, so that round 1 does not pay for reading the table into cache.
	if _, err := copyExport(ctx, pg, sql, "binary"); err != nil {
		return fmt.Errorf("warm-up COPY: %w", err)
	}
	for _, pid := range []int{b.stock.pid(), b.gatewayPID()} {
		if pid > 0 {
			_ = resetPeak(pid) //nolint:errcheck // then the peak covers the process's life, said below
		}
	}
	t0 = time.Now()
	// Paths take turns, round after round, so that a change in the machine's load (it is
	// shared) spreads over all of them instead of landing on one.
	for round := 1; round <= exportRounds; round++ {
		for _, p := range paths {
			if p.skipped != "" {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			b.logf("scenario 13: round %d/%d, %s", round, exportRounds, p.name)
			r, err := p.run(ctx)
			w, wv := want, wantVolume
			if p.subset {
				w, wv = wantSubset, 0
			}
			if err == nil && r.rows != w {
				err = fmt.Errorf("%d rows, want %d", r.rows, w)
			}
			if err == nil && wv != 0 && r.volume != 0 && r.volume != wv {
				err = fmt.Errorf("volume column sums to %d, want %d: not the seeded rows", r.volume, wv)
			}
			switch {
			case err != nil && !p.fleet:
				return fmt.Errorf("%s: %w", p.name, err)
			case unimplemented(err):
				p.skipped = "not run: ExportPrices is not implemented by this build"
			case err != nil:
				p.skipped = "failed: " + err.Error()
				b.note("scenario 13, %s, round %d: %v", p.name, round, err)
			default:
				p.runs = append(p.runs, r)
			}
		}
	}
	measured := time.Since(t0)
	if b.cfg.profile {
		b.profileExports(ctx, map[string]*exportPath{"stock-export-proto": paths[3], "stock-export-arrow": paths[4]})
	}

	copyBin, copyCSV, subsetCopy := paths[1], paths[2], paths[7]
	for _, p := range paths {
		if len(p.runs) == 0 {
			why := p.skipped
			if why == "" {
				why = "not run"
			}
			b.add(row{scenario: "13", path: p.name, missing: why})
			continue
		}
		best := p.best()
		res := result{ops: best.rows, window: best.took, clients: 1}
		var ratio string
		switch {
		case p == copyBin || p == subsetCopy:
			ratio = "baseline"
		case p.subset:
			ratio = exportRatios(res, "COPY binary", subsetCopy)
		case p == copyCSV:
			ratio = exportRatios(res, "COPY binary", copyBin)
		default:
			ratio = exportRatios(res, "COPY binary", copyBin, "COPY csv", copyCSV)
		}
		b.add(row{scenario: "13", path: p.name, res: res, unit: "rows/s", ratio: ratio,
			extra: fmt.Sprintf("%.1f MiB/s, %s per export; %s; median of %d rounds %s rows/s; %s",
				float64(best.bytes)/(1<<20)/best.took.Seconds(), mib(best.bytes), seconds(best.took), len(p.runs),
				rate(float64(p.median().rows)/p.median().took.Seconds()), best.cpuText())})
	}
	b.note("scenario 13: %d rows (%d symbols × %d daily bars from %s, filter `%s`; the sector line: `%s`, %d symbols, %d rows), seeded through IngestPrices append-only in %s; %d rounds in %s, the paths taking turns; a line's result is its best round, its notes the median. MiB/s is what crossed the wire (TCP payload from the server: PostgreSQL protocol for the pgx read, gRPC/HTTP2 frames, HTTP/1.1 body and headers) or, for COPY, its output; CPU s is each process's CPU time over the best round (PostgreSQL: all its processes; bench: the client), and rows per CPU s the rows over their sum, which the machine's other tenants disturb less than the rows/s; the gRPC client's ExportPrices uses the default batch_size",
		want, exportSymbols, bars, exportFrom.Format("2006-01-02"), exportFilter, exportSubsetFilter, len(subsetSyms), wantSubset,
		seeded.Round(100*time.Millisecond), exportRounds, measured.Round(time.Second))
	if m, err := readMem(b.stock.pid()); err == nil {
		line := "scenario 13: stock peak RSS (VmHWM, reset before the rounds) " + mib(m.hwm)
		if pid := b.gatewayPID(); pid > 0 {
			if g, err := readMem(pid); err == nil {
				line += "; gateway " + mib(g.hwm)
			}
		}
		b.note("%s", line)
	}
	return nil
}

// exportProfileSeconds is how long -profile profiles the stock service during each of
// profileExports' paths.
const exportProfileSeconds = 5

// profileExports, with -profile, saves a CPU profile of the stock service while each path (the
// gRPC exports) runs again and again, unmeasured, after the rounds.
// paths, by the profile's name, in the order of the names.
func (b *bench) profileExports(ctx context.Context, paths map[string]*exportPath) {
	for _, name := range slices.Sorted(maps.Keys(paths)) {
		p := paths[name]
		if len(p.runs) == 0 {
			continue
		}
		path := filepath.Join(b.cfg.work, "profiles", name+".pprof")
		b.logf("scenario 13: %d s CPU profile of stock during %s", exportProfileSeconds, p.name)
		done := make(chan error, 1)
		go func() { done <- saveProfile(ctx, b.stock.metricsAddr, exportProfileSeconds, path) }()
		var err error
	loop:
		for {
			select {
			case err = <-done:
				break loop
			default:
				if _, rerr := p.run(ctx); rerr != nil {
					err = <-done
					b.note("scenario 13: profiling %s: %v", p.name, rerr)
					break loop
				}
			}
		}
		b.mu.Lock()
		if err != nil {
			b.profiles = append(b.profiles, fmt.Sprintf("%s: not captured: %v", name, err))
		} else {
			b.profiles = append(b.profiles, fmt.Sprintf("%s: %s (%d s, %s read again and again after the rounds)", name, b.rel(path), exportProfileSeconds, p.name))
		}
		b.mu.Unlock()
	}
}

func (b *bench) gatewayPID() int {
	if b.gateway == nil {
		return 0
	}
	return b.gateway.pid()
}

// exportRatios is ratios over the best rounds of the named paths.
func exportRatios(r result, pairs ...any) string {
	var args []any
	for i := 0; i+1 < len(pairs); i += 2 {
		p := pairs[i+1].(*exportPath)
		if len(p.runs) == 0 {
			continue
		}
		best := p.best()
		args = append(args, pairs[i], result{ops: best.rows, window: best.took, clients: 1})
	}
	return ratios(r, args...)
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// unimplemented reports whether err says the server has no ExportPrices (yet): the gRPC code,
// or the gateway's answer for it.
func unimplemented(err error) bool {
	var he *httpStatusError
	return status.Code(err) == codes.Unimplemented || errors.As(err, &he) && he.code == http.StatusNotImplemented
}

type httpStatusError struct {
	code int
	body string
}

func (e *httpStatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

// explain returns the plan PostgreSQL chose for sql.
func explain(ctx context.Context, conn *pgx.Conn, sql string) (string, error) {
	rows, _ := conn.Query(ctx, "EXPLAIN "+sql)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return strings.Join(lines, "\n"), err
}

// planSummary names a plan's top node, counts its index scans and says whether it is JIT-compiled.
func planSummary(plan string) string {
	top, _, _ := strings.Cut(plan, "  (")
	s := fmt.Sprintf("%s over %d index scans (one per yearly partition of stock.prices)", strings.TrimSpace(top),
		strings.Count(plan, "Index Scan")+strings.Count(plan, "Index Only Scan"))
	if strings.Contains(plan, "\nJIT:") {
		s += ", JIT-compiled (its cost is above jit_above_cost)"
	}
	return s
}

// pgxExportRead reads the rows on pgx, each scanned into Go values.
func pgxExportRead(ctx context.Context, conn *pgx.Conn, sql string) (exportRun, error) {
	var r exportRun
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return r, err
	}
	var (
		sym                    string
		ts                     time.Time
		open, high, low, close pgtype.Numeric
		vol                    int64
	)
	_, err = pgx.ForEachRow(rows, []any{&sym, &ts, &open, &high, &low, &close, &vol}, func() error {
		r.rows++
		r.volume += vol
		return nil
	})
	return r, err
}

// copyExport runs COPY (sql) TO STDOUT in format, counting and dropping its output.
func copyExport(ctx context.Context, conn *pgx.Conn, sql, format string) (exportRun, error) {
	var w countWriter
	tag, err := conn.PgConn().CopyTo(ctx, &w, "COPY ("+sql+") TO STDOUT (FORMAT "+format+")")
	return exportRun{rows: tag.RowsAffected(), bytes: w.n}, err
}

// grpcExportProto reads an ExportPrices stream of protobuf rows to its end.
func grpcExportProto(ctx context.Context, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest) (exportRun, error) {
	var r exportRun
	st, err := client.ExportPrices(ctx, req)
	if err != nil {
		return r, err
	}
	for {
		resp, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return r, err
		}
		for _, row := range resp.GetRows() {
			r.rows++
			r.volume += row.GetVolume()
		}
	}
}

// grpcExportArrow reads an ExportPrices stream in Arrow: the arrow_ipc fields, concatenated, are
// one IPC stream, which arrow-go's reader decodes record batch by record batch.
func grpcExportArrow(ctx context.Context, client stockv1.StockServiceClient, req *stockv1.ExportPricesRequest) (exportRun, error) {
	st, err := client.ExportPrices(ctx, req)
	if err != nil {
		return exportRun{}, err
	}
	r, err := decodeArrow(&arrowMessages{recv: st.Recv})
	if err != nil {
		return r, err
	}
	// The end-of-stream marker came in the last message: the stream must end there.
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		return r, fmt.Errorf("ExportPrices after the Arrow end-of-stream marker: %v", err)
	}
	return r, nil
}

// arrowMessages reads the arrow_ipc bytes of an ExportPrices stream's messages (from recv) in
// order, as one byte stream.
type arrowMessages struct {
	recv func() (*stockv1.ExportPricesResponse, error)
	buf  []byte
}

func (a *arrowMessages) Read(p []byte) (int, error) {
	for len(a.buf) == 0 {
		resp, err := a.recv()
		if err != nil {
			return 0, err // io.EOF included: the reader then reports a stream cut short
		}
		a.buf = resp.GetArrowIpc()
	}
	n := copy(p, a.buf)
	a.buf = a.buf[n:]
	return n, nil
}

// decodeArrow reads an Arrow IPC stream to its end-of-stream marker, counting the rows and
// summing the volume column.
func decodeArrow(src io.Reader) (exportRun, error) {
	var r exportRun
	rd, err := ipc.NewReader(src)
	if err != nil {
		return r, fmt.Errorf("arrow schema: %w", err)
	}
	defer rd.Release()
	vol := rd.Schema().FieldIndices("volume")
	for rd.Next() {
		rec := rd.RecordBatch()
		r.rows += rec.NumRows()
		if len(vol) == 1 && rec.Schema().Field(vol[0]).Type.ID() == arrow.INT64 {
			for _, v := range rec.Column(vol[0]).(*array.Int64).Int64Values() {
				r.volume += v
			}
		}
	}
	if err := rd.Err(); err != nil {
		return r, fmt.Errorf("arrow stream: %w", err)
	}
	return r, nil
}

// restExport downloads the Arrow export through the gateway: decoded, or its bytes counted
// (rows are then the rows asked for: the decoded line checks what the bytes hold).
func (b *bench) restExport(ctx context.Context, hc *http.Client, u string, decode bool, want int64) (exportRun, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return exportRun{}, err
	}
	if b.readTok != "" {
		req.Header.Set("Authorization", "Bearer "+b.readTok)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return exportRun{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return exportRun{}, &httpStatusError{code: resp.StatusCode, body: strings.TrimSpace(string(body))}
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "arrow") {
		return exportRun{}, fmt.Errorf("Content-Type %q, want application/vnd.apache.arrow.stream", ct)
	}
	if decode {
		return decodeArrow(resp.Body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return exportRun{rows: want}, err
}

// countWriter counts and drops what is written to it.
type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// countingDialer dials TCP connections whose reads add to n: the bytes a server sent.
func countingDialer(n *atomic.Int64) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, n: n}, nil
	}
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

var _ pgconn.DialFunc = countingDialer(nil)
