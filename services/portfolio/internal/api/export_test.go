package api

import (
	"github.com/jackc/pgx/v5"

	portfoliov1 "github.com/pgfleet/pgfleet/gen/pgfleet/portfolio/v1"
)

// NewWeakened returns a Server whose writes run READ COMMITTED without the portfolio lock:
// the negative control that proves the invariant checker can fail.
func NewWeakened(d Deps) portfoliov1.PortfolioServiceServer {
	s := New(d)
	s.safety = safety{tx: pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, lock: false}
	return s
}

// NewUnlocked returns a Server whose writes run as in production but without the portfolio
// lock, as old and new replicas would during a rollout that changes the lock's keys.
func NewUnlocked(d Deps) portfoliov1.PortfolioServiceServer {
	s := New(d)
	s.safety = safety{tx: safe.tx, lock: false}
	return s
}
