package api

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// NewWeakened returns a Server whose writes run READ COMMITTED without the portfolio lock:
// the negative control that proves the invariant checker can fail.
func NewWeakened(d Deps) *Server { return unlocked(d, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}) }

// NewUnlocked returns a Server whose writes run as in production (writeTx) but without the
// portfolio lock, as old and new replicas would during a rollout that changes the lock's keys.
func NewUnlocked(d Deps) *Server { return unlocked(d, writeTx) }

// unlocked returns a Server whose writes run as opts, retried, without taking the lock.
func unlocked(d Deps, opts pgx.TxOptions) *Server {
	s := New(d)
	s.write = func(ctx context.Context, _ int64, fn func(tx pgx.Tx) error) error {
		return s.retry.RunTx(ctx, s.pool, opts, fn)
	}
	return s
}
