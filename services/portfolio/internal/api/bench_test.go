package api_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
)

// BenchmarkExecuteTrade: trades through the gRPC API, each caller buying and selling one
// AAPL in turn on a portfolio of its own, so the figure is the service's work per trade
// (price read, SERIALIZABLE transaction, lock, ledger rows), not lock contention between
// callers. `go test -run '^$' -bench ExecuteTrade` measures a change to the trade path.
func BenchmarkExecuteTrade(b *testing.B) {
	e := newEnv(b)
	const callers = 8
	b.SetParallelism(callers / 2) // x GOMAXPROCS(2) on the reference machine
	var portfolios [callers * 4]int64
	for i := range portfolios {
		portfolios[i] = e.newPortfolio(b, fmt.Sprintf("bench%d@example.com", i), "1000000")
	}
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n := next.Add(1) - 1
		pid := portfolios[int(n)%len(portfolios)]
		side := buy
		for i := 0; pb.Next(); i++ {
			_, err := e.client.ExecuteTrade(b.Context(), &portfoliov1.ExecuteTradeRequest{PortfolioId: pid, Symbol: "AAPL",
				Side: side, Quantity: "1", RequestId: fmt.Sprintf("bench-%d-%d", n, i)})
			if err != nil {
				b.Error(err)
				return
			}
			if side == buy {
				side = sell
			} else {
				side = buy
			}
		}
	})
}
