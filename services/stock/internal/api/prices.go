package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
	"github.com/pgfleet/pgfleet/pkg/decimal"
	"github.com/pgfleet/pgfleet/pkg/lock"
	"github.com/pgfleet/pgfleet/pkg/query"
	"github.com/pgfleet/pgfleet/pkg/validate"
	"github.com/pgfleet/pgfleet/services/stock/internal/store"
)

const defaultStreamBatch = 1000

// IngestPrices copies the whole stream into a staging table with one COPY, then, holding
// the write lock of every symbol it touched, merges it into stock.prices in the same
// transaction: all rows land or none do. A stream that declares itself append-only (its
// symbols named up front, only bars later than those stored) skips the stage: the locks are
// taken first and its rows are copied straight into stock.prices, checked as they pass. It
// is not retried here, since the stream cannot be replayed; it is idempotent, so the client
// may resend the whole stream on a failure.
//
// The transaction holds a pooled connection while the client sends, so ingests hold their
// share of the pool only (INGEST_DB_CONNS; more wait for a turn before their transaction
// begins), and one whose client pauses longer than INGEST_IDLE_TIMEOUT is ended and rolled
// back (STREAM_IDLE). Buffering the stream first would free the connection while the client
// sends, but would give up the overlap of receiving and copying that makes the append-only
// path as fast as it is.
func (s *Server) IngestPrices(stream stockv1.StockService_IngestPricesServer) error {
	ctx := stream.Context()
	done, err := s.shares.openStream()
	if err != nil {
		return err
	}
	defer done()
	msgs := receive(stream, s.shares.ingestIdle)
	defer msgs.stop()
	resp, err := s.ingest(ctx, msgs)
	if err != nil {
		return s.grpcError(ctx, err)
	}
	return stream.SendAndClose(resp)
}

func (s *Server) ingest(ctx context.Context, msgs messages) (*stockv1.IngestPricesResponse, error) {
	return s.ingestWith(ctx, msgs, nil)
}

// ingestWith is ingest with also, if set, run in the ingest's transaction just before it
// commits (even when the stream held no rows): the ingestion pipeline records a batch's
// progress and rejects there, so they land with its rows or not at all.
func (s *Server) ingestWith(ctx context.Context, msgs messages, also func(context.Context, pgx.Tx) error) (*stockv1.IngestPricesResponse, error) {
	first, err := msgs.Recv()
	if errors.Is(err, io.EOF) {
		return &stockv1.IngestPricesResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	src := &priceSource{stream: msgs, latest: make(map[string]*store.Price), increasing: true}
	if err := src.take(first); err != nil {
		return nil, err
	}
	if err := s.shares.ingest.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer s.shares.ingest.Release(1) // after the rollback below: deferred calls run last first
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{})
	if err != nil {
		return nil, fmt.Errorf("begin ingest: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // a no-op after Commit; a failed rollback closes the connection
	st := s.store.WithTx(tx)

	var resp *stockv1.IngestPricesResponse
	if first.GetAppendOnly() != nil {
		resp, err = s.appendPrices(ctx, st, tx, src, first.GetAppendOnly().GetSymbols())
	} else {
		resp, err = s.mergePrices(ctx, st, tx, src)
	}
	if err != nil || (resp.GetReceivedCount() == 0 && also == nil) {
		return resp, err
	}
	if resp.GetReceivedCount() > 0 {
		changed, err := st.AdvanceLatest(ctx, src.latestRows())
		if err != nil {
			return nil, err
		}
		// One LatestPriceChanged per symbol whose latest price moved, in symbol order.
		slices.SortFunc(changed, func(a, b store.Price) int { return strings.Compare(a.Symbol, b.Symbol) })
		evs := make(changes, 0, len(changed))
		for i := range changed {
			if err := evs.latestPrice(changed[i].Symbol, &changed[i]); err != nil {
				return nil, err
			}
		}
		if err := evs.appendTo(ctx, s.outbox, tx); err != nil {
			return nil, err
		}
	}
	if also != nil {
		if err := also(ctx, tx); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit ingest: %w", err)
	}
	s.outbox.Committed()
	return resp, nil
}

// mergePrices stages the stream, then merges it under the write locks of the symbols it held.
func (s *Server) mergePrices(ctx context.Context, st *store.Store, tx pgx.Tx, src *priceSource) (*stockv1.IngestPricesResponse, error) {
	received, err := st.StagePrices(ctx, src)
	if src.err != nil { // the stream or a row failed: that is the cause, not COPY's abort
		return nil, src.err
	}
	if err != nil {
		return nil, err
	}
	resp := &stockv1.IngestPricesResponse{ReceivedCount: received}
	if received == 0 {
		return resp, nil
	}
	symbols := src.symbols()
	if err := s.lockStocks(ctx, st, tx, symbols); err != nil {
		return nil, err
	}
	resp.InsertedCount, resp.UpdatedCount, err = st.MergeStagedPrices(ctx, !src.increasing)
	if err != nil {
		return nil, err
	}
	resp.Symbols = symbols
	return resp, nil
}

// appendPrices copies the stream straight into stock.prices, under the write locks of the
// symbols it declared, taken first: every row must be later than its symbol's latest, so
// none can collide with a stored one, and the staging copy is saved.
func (s *Server) appendPrices(ctx context.Context, st *store.Store, tx pgx.Tx, src *priceSource, declared []string) (*stockv1.IngestPricesResponse, error) {
	symbols, err := appendSymbols(declared)
	if err != nil {
		return nil, err
	}
	if err := s.lockStocks(ctx, st, tx, symbols); err != nil {
		return nil, err
	}
	if src.after, err = st.LatestTimes(ctx, symbols); err != nil {
		return nil, err
	}
	for _, sym := range symbols {
		if _, ok := src.after[sym]; !ok {
			src.after[sym] = time.Time{} // no bars yet: any time will do
		}
	}
	received, err := st.CopyPrices(ctx, tx, &copyText{src: src})
	if src.err != nil {
		return nil, src.err
	}
	if err != nil {
		return nil, err
	}
	return &stockv1.IngestPricesResponse{ReceivedCount: received, InsertedCount: received, Symbols: src.symbols()}, nil
}

// copyText reads a priceSource's rows in COPY's text format. The rows are checked already:
// symbols, decimals and times hold no tab, newline or backslash, so nothing needs escaping.
type copyText struct {
	src *priceSource
	buf []byte
	off int
}

// copyChunk is how much text a Read prepares at once.
const copyChunk = 64 << 10

func (c *copyText) Read(p []byte) (int, error) {
	for c.off >= len(c.buf) {
		c.buf, c.off = c.buf[:0], 0
		for len(c.buf) < copyChunk && c.src.Next() {
			vals, err := c.src.Values()
			if err != nil {
				return 0, err
			}
			c.buf = appendCopyRow(c.buf, vals)
		}
		if len(c.buf) == 0 {
			if c.src.err != nil {
				return 0, c.src.err
			}
			return 0, io.EOF
		}
	}
	n := copy(p, c.buf[c.off:])
	c.off += n
	return n, nil
}

// appendCopyRow appends one row of priceSource.Values as a line of COPY text.
func appendCopyRow(b []byte, vals []any) []byte {
	b = append(b, vals[0].(string)...)
	b = append(b, '\t')
	b = vals[1].(time.Time).AppendFormat(b, "2006-01-02 15:04:05.999999Z07:00")
	for _, d := range vals[2:6] {
		b = append(b, '\t')
		b = append(b, d.(string)...)
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, vals[6].(int64), 10)
	return append(b, '\n')
}

// appendSymbols checks an AppendOnly's symbols and returns them sorted.
func appendSymbols(declared []string) ([]string, error) {
	var v validate.Violations
	if !v.Check(len(declared) > 0 && len(declared) <= maxIngestBatch, "append_only.symbols", "must name 1 to %d symbols", maxIngestBatch) {
		return nil, v.Err()
	}
	symbols := slices.Clone(declared)
	for i, sym := range symbols {
		checkSymbol(&v, fmt.Sprintf("append_only.symbols[%d]", i), sym)
	}
	slices.Sort(symbols)
	for i := 1; i < len(symbols); i++ {
		if symbols[i] == symbols[i-1] {
			v.Add("append_only.symbols", "names %q twice", symbols[i])
			break
		}
	}
	return symbols, v.Err()
}

// lockStocks takes the write lock of every symbol, in order, and fails unless all exist.
func (s *Server) lockStocks(ctx context.Context, st *store.Store, tx pgx.Tx, symbols []string) error {
	locks := make([]string, len(symbols))
	for i, sym := range symbols {
		locks[i] = stockLock(sym)
	}
	if err := s.locks.AcquireAll(ctx, tx, locks, lock.Write); err != nil {
		return err
	}
	missing, err := st.MissingStocks(ctx, symbols)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &store.UnknownStocksError{Symbols: missing}
	}
	return nil
}

// priceSource feeds COPY straight from the client stream, checking each row as it passes,
// so memory holds one message plus one row per symbol, whatever the stream's length.
type priceSource struct {
	stream messages
	batch  []*stockv1.Price
	next   int   // index in batch of the row Next moves to
	row    int64 // rows seen in the stream, for error messages
	values [7]any
	err    error // why Next or Values stopped the copy

	// latest holds each symbol's row with the greatest time (the last one of equals).
	// increasing stays true while every row is later than its symbol's previous one,
	// which rules out repeated (symbol, time) pairs and lets the merge skip sorting.
	latest     map[string]*store.Price
	increasing bool

	// after, on an append-only stream, holds for each declared symbol the time its next row
	// must follow: the latest stored bar's, then the symbol's previous row's. nil otherwise.
	after map[string]time.Time
}

// take makes msg the batch Next moves through.
func (p *priceSource) take(msg *stockv1.IngestPricesRequest) error {
	if n := len(msg.GetPrices()); n > maxIngestBatch {
		return validate.Field("prices", "at most %d per message, got %d", maxIngestBatch, n)
	}
	p.batch, p.next = msg.GetPrices(), 0
	return nil
}

// symbols returns the distinct symbols of the rows seen, sorted.
func (p *priceSource) symbols() []string {
	symbols := make([]string, 0, len(p.latest))
	for sym := range p.latest {
		symbols = append(symbols, sym)
	}
	slices.Sort(symbols)
	return symbols
}

// latestRows returns the latest row of every symbol.
func (p *priceSource) latestRows() []store.Price {
	rows := make([]store.Price, 0, len(p.latest))
	for _, r := range p.latest {
		rows = append(rows, *r)
	}
	return rows
}

func (p *priceSource) Next() bool {
	for p.next >= len(p.batch) {
		msg, err := p.stream.Recv()
		if errors.Is(err, io.EOF) {
			return false
		}
		if err != nil {
			p.err = err
			return false
		}
		if msg.GetAppendOnly() != nil {
			p.err = validate.Field("append_only", "belongs on the first message only")
			return false
		}
		if p.err = p.take(msg); p.err != nil {
			return false
		}
	}
	p.next++
	p.row++
	return true
}

func (p *priceSource) Values() ([]any, error) {
	row, err := priceRow(p.batch[p.next-1], p.row-1)
	if err == nil && p.after != nil {
		err = p.appends(row)
	}
	if err != nil {
		p.err = err
		return nil, err
	}
	switch last, seen := p.latest[row.Symbol]; {
	case !seen:
		p.latest[row.Symbol] = &row
	case row.Time.After(last.Time):
		*last = row
	default:
		p.increasing = false
		if row.Time.Equal(last.Time) {
			*last = row
		}
	}
	p.values = [7]any{row.Symbol, row.Time, row.Open, row.High, row.Low, row.Close, row.Volume}
	return p.values[:], nil
}

func (p *priceSource) Err() error { return p.err }

// appends checks a row of an append-only stream against the stream's promise, and moves its
// symbol's bound to the row's time.
func (p *priceSource) appends(row store.Price) error {
	field := fmt.Sprintf("prices[%d]", p.row-1)
	after, declared := p.after[row.Symbol]
	switch {
	case !declared:
		return validate.Field(field+".symbol", "%q is not in append_only.symbols", row.Symbol)
	case row.Time.After(after):
		p.after[row.Symbol] = row.Time
		return nil
	case p.latest[row.Symbol] != nil:
		return validate.Field(field+".time", "%s is not after the previous %s bar (%s): an append-only stream sends each symbol's bars in time order",
			row.Time.Format(time.RFC3339), row.Symbol, after.Format(time.RFC3339))
	}
	return apierr.Newf(apierr.AppendOutOfOrder, map[string]string{"symbol": row.Symbol,
		"time": row.Time.Format(time.RFC3339), "latest_time": after.Format(time.RFC3339)},
		"%s: %s is not after %s's latest stored bar (%s); send the stream without append_only to update stored bars",
		field, row.Time.Format(time.RFC3339), row.Symbol, after.Format(time.RFC3339))
}

// priceRow checks and converts the n-th row of a stream (counted from 0).
func priceRow(pr *stockv1.Price, n int64) (store.Price, error) {
	var v validate.Violations
	f := func(name string) string { return fmt.Sprintf("prices[%d].%s", n, name) }
	checkSymbol(&v, f("symbol"), pr.GetSymbol())
	row := store.Price{Symbol: pr.GetSymbol(), Open: pr.GetOpen(), High: pr.GetHigh(), Low: pr.GetLow(),
		Close: pr.GetClose(), Volume: pr.GetVolume()}
	if v.Check(pr.GetTime().IsValid(), f("time"), "is required and must be a valid timestamp") {
		row.Time = pr.GetTime().AsTime()
	}
	for i, val := range [4]string{row.Open, row.High, row.Low, row.Close} {
		v.Check(val != "" && validDecimal(val), f([4]string{"open", "high", "low", "close"}[i]), "%s, got %q", decimalRule, val)
	}
	v.Check(pr.GetVolume() >= 0, f("volume"), "must not be negative")
	if err := v.Err(); err != nil {
		return row, err
	}
	if decimal.Compare(row.Low, row.High) > 0 {
		return row, validate.Field(f("low"), "must not exceed high (%s > %s)", pr.GetLow(), pr.GetHigh())
	}
	return row, nil
}

// ListPrices returns a page of one symbol's prices, oldest first.
func (s *Server) ListPrices(ctx context.Context, req *stockv1.ListPricesRequest) (*stockv1.ListPricesResponse, error) {
	sym := req.GetSymbol()
	start, end := timeRange(req.GetStartTime(), req.GetEndTime())
	page := query.Request{
		PageToken: req.GetPageToken(), PageSize: req.GetPageSize(),
		// A token only continues the symbol and range it was made for.
		Extra: fmt.Sprintf("%s|%d|%d", sym, start.UnixMicro(), end.UnixMicro()),
	}
	read := func(ctx context.Context, q *query.Query) ([]store.Price, error) {
		rows, err := s.store.ListPrices(ctx, sym, start, end, q)
		if err == nil && len(rows) == 0 {
			err = s.stockExists(ctx, sym)
		}
		return rows, err
	}
	prices, next, err := query.List(ctx, s.retry, &s.lists.prices, page, read,
		func(p store.Price) *stockv1.Price { return toPrice(&p) })
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	return &stockv1.ListPricesResponse{Prices: prices, NextPageToken: next}, nil
}

// stockExists returns nil if symbol names a stock, else a *store.NotFoundError (NOT_FOUND).
// The price reads ask it only when their range held no rows: an unknown symbol is an error,
// a known one without bars an empty answer, and a read that finds rows pays nothing for the
// difference.
func (s *Server) stockExists(ctx context.Context, symbol string) error {
	missing, err := s.store.MissingStocks(ctx, []string{symbol})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return &store.NotFoundError{Kind: "stock", Field: "symbol", Key: symbol}
	}
	return nil
}

// StreamPrices sends one symbol's prices in a range as batches, oldest first. It reads the
// range in chunks by keyset (time after the last row read), each chunk on a pooled
// connection that goes back to the pool before the chunk is sent: a client that reads
// slowly, or not at all, slows its own stream through gRPC flow control and holds no
// connection meanwhile. One chunk is read ahead while the one before it is sent, so reading
// and sending overlap as they did when one query streamed the whole range; memory holds
// those two chunks. Chunks read at once are bounded by EXPORT_DB_CONNS, so exports leave
// the rest of the pool to other calls. Each chunk is a consistent read of its rows; bars
// written during an export appear in it if they are later than the rows already read.
// An unknown symbol is NOT_FOUND before any message.
func (s *Server) StreamPrices(req *stockv1.StreamPricesRequest, stream stockv1.StockService_StreamPricesServer) error {
	done, err := s.shares.openStream()
	if err != nil {
		return err
	}
	defer done()
	size := int(req.GetBatchSize())
	if size == 0 {
		size = defaultStreamBatch
	}
	ctx, cancel := context.WithCancel(stream.Context())
	chunks := s.readChunks(ctx, req, chunkRows(size))
	defer func() {
		cancel()
		for range chunks { // until the reader has gone: it may be in a query
		}
	}()
	for c := range chunks {
		if c.err != nil {
			return s.grpcError(ctx, c.err)
		}
		for i := 0; i < len(c.rows); i += size {
			// A message's batch is its own slice of the chunk, never touched after Send.
			end := min(i+size, len(c.rows))
			if err := stream.Send(&stockv1.StreamPricesResponse{Prices: c.rows[i:end:end]}); err != nil {
				return s.grpcError(ctx, err)
			}
		}
	}
	return nil
}

// priceChunk is a chunk of an export's rows, or the error that ended the export.
type priceChunk struct {
	rows []*stockv1.Price
	err  error
}

// readChunks reads an export's range in chunks of up to size rows, in a goroutine that hands
// each one over and then reads the next, until the range or ctx ends; it closes the channel
// when it has gone.
func (s *Server) readChunks(ctx context.Context, req *stockv1.StreamPricesRequest, size int) <-chan priceChunk {
	chunks := make(chan priceChunk) // unbuffered: one chunk read ahead, no more
	go func() {
		defer close(chunks)
		start, end := timeRange(req.GetStartTime(), req.GetEndTime())
		from, after := start, false // after: the chunk starts after from, the last row read
		for {
			rows, err := s.readChunk(ctx, req.GetSymbol(), from, after, end, size)
			select {
			case chunks <- priceChunk{rows, err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(rows) < size {
				return
			}
			from, after = rows[len(rows)-1].GetTime().AsTime(), true
		}
	}()
	return chunks
}

// minChunk is the fewest rows an export reads per query: fewer would spend more on round
// trips than on rows.
const minChunk = 1000

// chunkRows is how many rows an export of batches of size reads per query: a whole number of
// batches, at least minChunk rows.
func chunkRows(size int) int {
	return size * ((minChunk + size - 1) / size)
}

// readChunk reads up to limit prices of an export, holding one of the exports' connections
// while it reads and none once it returns. The first chunk of an export (after unset) that
// finds no rows also asks whether the symbol exists.
func (s *Server) readChunk(ctx context.Context, symbol string, from time.Time, after bool, end time.Time, limit int) ([]*stockv1.Price, error) {
	if err := s.shares.export.Acquire(ctx, 1); err != nil {
		return nil, err
	}
	defer s.shares.export.Release(1)
	var rows []*stockv1.Price
	err := s.retry.Do(ctx, func(ctx context.Context) error {
		rows = make([]*stockv1.Price, 0, limit)
		err := s.store.ScanPrices(ctx, symbol, from, after, end, limit, func(p *store.Price) error {
			rows = append(rows, toPrice(p))
			return nil
		})
		if err == nil && !after && len(rows) == 0 {
			err = s.stockExists(ctx, symbol)
		}
		return err
	})
	return rows, err
}

// GetLatestPrices returns the latest price of each symbol, in request order; with as_of, the
// last one at or before it.
func (s *Server) GetLatestPrices(ctx context.Context, req *stockv1.GetLatestPricesRequest) (*stockv1.GetLatestPricesResponse, error) {
	var rows []store.Price
	err := s.retry.Do(ctx, func(ctx context.Context) (err error) {
		if req.GetAsOf() != nil {
			rows, err = s.store.PricesAsOf(ctx, req.GetSymbols(), req.GetAsOf().AsTime())
		} else {
			rows, err = s.store.LatestPrices(ctx, req.GetSymbols())
		}
		return err
	})
	if err != nil {
		return nil, s.grpcError(ctx, err)
	}
	bySymbol := make(map[string]*store.Price, len(rows))
	for i := range rows {
		bySymbol[rows[i].Symbol] = &rows[i]
	}
	resp := &stockv1.GetLatestPricesResponse{}
	for _, sym := range req.GetSymbols() {
		if p, ok := bySymbol[sym]; ok {
			resp.Prices = append(resp.Prices, toPrice(p))
		} else {
			resp.MissingSymbols = append(resp.MissingSymbols, sym)
		}
	}
	return resp, nil
}
