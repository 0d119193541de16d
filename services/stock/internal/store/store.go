// Package store reads and writes schema "stock". It knows SQL and pgx, not protobuf.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound means no row matched. Callers test it with errors.Is.
var ErrNotFound = errors.New("not found")

// NotFoundError is ErrNotFound naming the missing row, for the API to tell its caller.
type NotFoundError struct {
	Kind  string // "stock"
	Field string // the request field that held the key: "symbol"
	Key   any
}

func (e *NotFoundError) Error() string        { return fmt.Sprintf("%s %#v: not found", e.Kind, e.Key) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// UnknownStocksError means a write referred to stocks that do not exist.
type UnknownStocksError struct {
	Symbols []string // sorted
}

func (e *UnknownStocksError) Error() string {
	return "unknown stocks: " + strings.Join(e.Symbols, ", ")
}

// DBTX is what a Store needs; *pgxpool.Pool and pgx.Tx both have it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Store runs the stock service's SQL on a pool or inside a transaction.
type Store struct{ db DBTX }

// New returns a Store on db.
func New(db DBTX) *Store { return &Store{db: db} }

// WithTx returns a Store whose statements run in tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx} }

// MissingStocks returns the symbols, sorted, that have no row in stock.stocks.
func (s *Store) MissingStocks(ctx context.Context, symbols []string) ([]string, error) {
	const q = `
		SELECT DISTINCT w.symbol
		FROM unnest($1::text[]) AS w(symbol)
		WHERE NOT EXISTS (SELECT 1 FROM stock.stocks s WHERE s.symbol = w.symbol)
		ORDER BY w.symbol`
	rows, _ := s.db.Query(ctx, q, symbols)
	missing, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("check stocks exist: %w", err)
	}
	return missing, nil
}
