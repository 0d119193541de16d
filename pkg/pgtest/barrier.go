package pgtest

import (
	"context"
	"sync"
)

// Barrier lets n goroutines wait until all of them have arrived, so tests can line up
// transactions that must overlap (both read before either writes, say).
type Barrier struct {
	wg   sync.WaitGroup
	once []sync.Once
}

// NewBarrier returns a Barrier for n parties, numbered 0 to n-1.
func NewBarrier(n int) *Barrier {
	b := &Barrier{once: make([]sync.Once, n)}
	b.wg.Add(n)
	return b
}

// Arrive marks party i as arrived (only its first call counts) and waits for the rest, or
// for ctx to end.
func (b *Barrier) Arrive(ctx context.Context, i int) error {
	b.once[i].Do(b.wg.Done)
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
