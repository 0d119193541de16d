package api

import (
	"strconv"
	"time"

	"golang.org/x/sync/semaphore"

	stockv1 "github.com/pgfleet/pgfleet/gen/pgfleet/stock/v1"
	"github.com/pgfleet/pgfleet/pkg/apierr"
)

// StreamLimits bound the price streams' share of the service, so that streams, however many
// and however slow their clients, leave the pool to the reads every trade needs (issue 12:
// twenty unread exports held all twenty connections). An export holds a connection only
// while it reads a chunk of rows, never while its client is slow to take them; an ingest
// holds one for its transaction, and loses it when its client pauses longer than
// IngestIdle. Per-caller limits come on top (server.Limits).
type StreamLimits struct {
	// Open bounds the StreamPrices and IngestPrices calls open at once, each a goroutine or
	// two and up to two chunks of rows (an export) or a message (an ingest) in memory; more
	// are refused (TOO_MANY_STREAMS, scope "service"). 0: no bound.
	Open int `env:"STREAM_LIMIT, default=64" help:"price streams (StreamPrices, IngestPrices) open at once, whoever calls; more are TOO_MANY_STREAMS; 0: no bound"`
	// ExportConns bounds the pooled connections exports read with at once (StreamPrices'
	// chunks, ExportPrices' coordinators and workers); more wait their turn. 0: a quarter of
	// the pool, at least 1.
	ExportConns int `env:"EXPORT_DB_CONNS" help:"pooled connections price exports (StreamPrices chunks, ExportPrices coordinators and workers) read with at once; 0: a quarter of DB_POOL_SIZE, at least 1"`
	// IngestConns bounds the ingests whose transactions are open at once; more wait, their
	// clients held by flow control. 0: a quarter of the pool, at least 1.
	IngestConns int `env:"INGEST_DB_CONNS" help:"price ingest transactions open at once; 0: a quarter of DB_POOL_SIZE, at least 1"`
	// IngestIdle ends an ingest whose client sends nothing for this long (ABORTED,
	// STREAM_IDLE): its transaction is rolled back, its connection freed, nothing written.
	// 0: no bound.
	IngestIdle time.Duration `env:"INGEST_IDLE_TIMEOUT, default=10s" help:"an ingest whose client sends nothing this long is ended and rolled back (ABORTED STREAM_IDLE); 0: no bound"`
}

// streamShares are StreamLimits at work.
type streamShares struct {
	open       *semaphore.Weighted // nil: no bound
	openLimit  int
	export     *semaphore.Weighted
	exportMax  int // export's size
	ingest     *semaphore.Weighted
	ingestIdle time.Duration
}

func newStreamShares(l StreamLimits, poolSize int32) streamShares {
	share := max(1, int(poolSize)/4)
	sh := streamShares{
		openLimit:  l.Open,
		export:     semaphore.NewWeighted(int64(cmpOr(l.ExportConns, share))),
		exportMax:  cmpOr(l.ExportConns, share),
		ingest:     semaphore.NewWeighted(int64(cmpOr(l.IngestConns, share))),
		ingestIdle: l.IngestIdle,
	}
	if l.Open > 0 {
		sh.open = semaphore.NewWeighted(int64(l.Open))
	}
	return sh
}

// cmpOr returns v if positive, else def.
func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// exportConns returns how many workers an ExportPrices call runs (up to want, at least one)
// and how many export shares it takes for them and its coordinator: all of them, but never
// more than the whole share (with a share of one, the coordinator's connection is extra).
func (sh *streamShares) exportConns(want int) (workers, shares int) {
	workers = max(1, min(want, sh.exportMax-1))
	return workers, min(workers+1, sh.exportMax)
}

// openStream admits a stream within STREAM_LIMIT; call the returned function when it ends.
func (sh *streamShares) openStream() (func(), error) {
	if sh.open == nil {
		return func() {}, nil
	}
	if !sh.open.TryAcquire(1) {
		return nil, apierr.Newf(apierr.TooManyStreams, map[string]string{"scope": "service", "limit": strconv.Itoa(sh.openLimit)},
			"too many streams: the service has %d price streams open, its limit; retry later", sh.openLimit)
	}
	return func() { sh.open.Release(1) }, nil
}

// receiver reads an ingest's messages in a goroutine of its own, so that the wait for the
// next one can be bounded: a blocked Recv cannot be interrupted, but the handler can stop
// waiting for it and end the call, which ends the Recv too.
type receiver struct {
	msgs chan received
	done chan struct{}
	idle time.Duration
	end  error // io.EOF or the stream's error, once received: Recv returns it again
}

type received struct {
	msg *stockv1.IngestPricesRequest
	err error
}

// receive starts reading stream; stop must be called when the call ends. The goroutine reads
// one message ahead of the handler, no more.
func receive(stream stockv1.StockService_IngestPricesServer, idle time.Duration) *receiver {
	r := &receiver{msgs: make(chan received), done: make(chan struct{}), idle: idle}
	go func() {
		for {
			msg, err := stream.Recv()
			select {
			case r.msgs <- received{msg, err}:
			case <-r.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// stop lets the reading goroutine go; a Recv still blocked returns once the call has ended.
func (r *receiver) stop() { close(r.done) }

// Recv returns the next message, io.EOF after the last (as often as it is called, like a
// stream's Recv), or STREAM_IDLE once the client has sent nothing for the idle timeout.
func (r *receiver) Recv() (*stockv1.IngestPricesRequest, error) {
	if r.end != nil {
		return nil, r.end
	}
	var timeout <-chan time.Time
	if r.idle > 0 {
		t := time.NewTimer(r.idle)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case m := <-r.msgs:
		r.end = m.err
		return m.msg, m.err
	case <-timeout:
		return nil, apierr.Newf(apierr.StreamIdle, map[string]string{"idle_timeout": r.idle.String()},
			"no message for %v: the ingest was ended and nothing it sent was written; send the whole stream again without pausing", r.idle)
	}
}

// messages is what an ingest reads its stream through.
type messages interface {
	Recv() (*stockv1.IngestPricesRequest, error)
}

var _ messages = (*receiver)(nil)
