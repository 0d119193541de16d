// Package store reads and writes schema "interview". It knows SQL and pgx, not protobuf.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	ErrStale    = errors.New("changed since it was read") // an etag that no longer matches
	ErrInUse    = errors.New("in use")
	// ErrRequestReused is a request_id used before for a different request.
	ErrRequestReused = errors.New("request_id already used for a different request")
)

// NotFoundError is ErrNotFound naming the missing row, for the API to tell its caller.
type NotFoundError struct {
	Kind  string // "question"
	Field string // the request field that held the key: "question_id"
	Key   any
}

func (e *NotFoundError) Error() string        { return fmt.Sprintf("%s %#v: not found", e.Kind, e.Key) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// Request identifies a creation for idempotency (AIP-155): the request_id ID ("": none,
// every call creates) of Scope, the caller or candidate it is unique for.
type Request struct {
	Scope, ID string
}

// DBTX is what a Store needs; *pgxpool.Pool and pgx.Tx both have it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Store runs the interview service's SQL on a pool or inside a transaction.
type Store struct{ db DBTX }

// New returns a Store on db.
func New(db DBTX) *Store { return &Store{db: db} }

// WithTx returns a Store whose statements run in tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx} }

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
