package pgpool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dedicated opens a connection of its own (outside any pool) with cfg, for a session that
// must outlive single statements: a session advisory lock held while leading, a LISTEN.
// hangUp closes it, even once ctx has ended. The outbox's sequencer and feed, and the stock
// service's ingestion leader, use it.
func Dedicated(ctx context.Context, cfg *pgx.ConnConfig) (conn *pgx.Conn, hangUp func(), err error) {
	conn, err = pgx.ConnectConfig(ctx, cfg.Copy())
	if err != nil {
		return nil, nil, fmt.Errorf("connect: %w", err)
	}
	return conn, func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}, nil
}

// AwaitWake waits up to d for a notification on conn (a LISTENing connection, or one that
// merely idles): nil once one came or d passed (the caller then looks anyway: a poll), ctx's
// error when it ended, another error when the connection failed. Waiting reads the socket, so
// a dead server or a terminated backend shows here within d.
func AwaitWake(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	wait, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	_, err := conn.WaitForNotification(wait)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("wait: %w", err)
	}
	return nil
}
