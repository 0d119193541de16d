package main

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// call is one request of a load run; a worker calls it back to back.
type call func(ctx context.Context) error

// result is one measured run: of a Go load run, of pgbench, or of a bulk transfer.
type result struct {
	clients  int
	ops      int64         // calls (or rows) completed in the window without error
	errs     int64         // calls that failed in the window
	firstErr string        // the first failure's text
	window   time.Duration // the measured window
	p50, p99 time.Duration // zero when not measured
	perSec   float64       // set when the throughput does not follow from ops/window (pgbench)
	retries  int64         // pgbench --max-tries: serialization and deadlock failures retried
}

func (r result) rate() float64 {
	if r.perSec > 0 {
		return r.perSec
	}
	if r.window <= 0 {
		return 0
	}
	return float64(r.ops) / r.window.Seconds()
}

// hooks run at the edges of the measured window, e.g. to scrape counters. A nonzero pace
// turns each worker from closed loop (next call as soon as one ends) into a paced client:
// one call per pace, at a random phase, and latency counted from when the call was due, so
// that a slow server cannot hide its queueing by slowing the clients down (coordinated
// omission).
type hooks struct {
	start, end func()
	pace       time.Duration
}

// runLoad is the closed-loop generator every Go-driven figure comes from: clients workers,
// each calling its own call (from newCall) back to back through warmup and then window.
// A call counts, with its latency, when it ends inside the window; latencies go to
// per-worker slices, merged and sorted at the end (exact percentiles, no histogram error).
func runLoad(ctx context.Context, clients int, warmup, window time.Duration, h hooks, newCall func(worker int) call) result {
	calls := make([]call, clients)
	for w := range calls {
		calls[w] = newCall(w)
	}
	type worker struct {
		lat      []time.Duration
		errs     int64
		firstErr error
	}
	workers := make([]worker, clients)
	begin := time.Now()
	from, to := begin.Add(warmup), begin.Add(warmup+window)
	// Calls still running at the end are cut after a grace, so a stuck server cannot hang
	// the run; they end outside the window and do not count.
	runCtx, cancel := context.WithDeadline(ctx, to.Add(10*time.Second))
	defer cancel()

	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			w := &workers[i]
			w.lat = make([]time.Duration, 0, 1024)
			c := calls[i]
			var due time.Time
			if h.pace > 0 {
				due = begin.Add(time.Duration(rand.Int64N(int64(h.pace))))
			}
			for runCtx.Err() == nil {
				t0 := time.Now()
				if h.pace > 0 {
					if d := due.Sub(t0); d > 0 {
						sleepCtx(runCtx, d)
					}
					t0, due = due, due.Add(h.pace)
				}
				err := c(runCtx)
				t1 := time.Now()
				if t1.After(to) {
					return
				}
				if t1.Before(from) { // warm-up
					continue
				}
				if err != nil {
					if w.errs == 0 {
						w.firstErr = err
					}
					w.errs++
					continue
				}
				w.lat = append(w.lat, t1.Sub(t0))
			}
		})
	}
	// The hooks run at the window's edges while the workers go on.
	if d := time.Until(from); d > 0 {
		sleepCtx(ctx, d)
	}
	if h.start != nil {
		h.start()
	}
	sleepCtx(ctx, time.Until(to))
	if h.end != nil {
		h.end()
	}
	wg.Wait()

	r := result{clients: clients, window: window}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.lat...)
		r.errs += w.errs
		if r.firstErr == "" && w.firstErr != nil {
			r.firstErr = w.firstErr.Error()
		}
	}
	r.ops = int64(len(all))
	r.p50, r.p99 = percentiles(all)
	return r
}

// percentiles returns the 50th and 99th percentile of d (nearest rank); it sorts d.
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(p*float64(len(d))+0.5) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	return rank(0.50), rank(0.99)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
