package pgpool_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgfleet/pgfleet/pkg/pgpool"
	"github.com/pgfleet/pgfleet/pkg/pgtest"
)

func TestPool_slowWrites(t *testing.T) {
	t.Parallel()
	pool, err := pgpool.New(t.Context(), pgpool.Config{URL: pgtest.NewDBURL(t), MaxConns: 4})
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	// Messages this big take pgconn over 15 ms to write, so it starts a background read to
	// avoid a write/read deadlock, and that read can stay parked on an idle connection.
	big := strings.Repeat("x", 2<<20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := range 25 {
					ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
					_, err := pool.Exec(ctx, "SELECT $1::text IS NULL", big)
					if err == nil {
						_, err = pool.Exec(ctx, "SELECT 1")
					}
					cancel()
					if err != nil {
						t.Errorf("caller %d, call %d: %v", g, i, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}()
	select {
	case <-done:
		pool.Close()
	case <-time.After(60 * time.Second):
		// No pool.Close: it would wait for the stuck calls. Dropping the database ends their
		// sessions, which frees them.
		t.Fatal("calls hung: a connection check is waiting behind a background read")
	}
}
