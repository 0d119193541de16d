// Package store reads and writes schema "portfolio". It knows SQL and pgx, not protobuf;
// decimals cross it as strings, exactly as numeric prints and parses them.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrRepeat is an insert whose request_id the portfolio has used already. Writers that
	// hold the portfolio's lock look the request_id up first, so the unique index is the
	// backstop for a writer without the lock (tests' weakened server).
	ErrRepeat = errors.New("request_id already used")
)

// NotFoundError is ErrNotFound naming the missing row, for the API to tell its caller.
type NotFoundError struct {
	Kind  string // "portfolio"
	Field string // the request field that held the key: "portfolio_id"
	Key   any
}

func (e *NotFoundError) Error() string        { return fmt.Sprintf("%s %#v: not found", e.Kind, e.Key) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// DBTX is what a Store needs; *pgxpool.Pool and pgx.Tx both have it.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Store runs the portfolio service's SQL on a pool or inside a transaction.
type Store struct{ db DBTX }

// New returns a Store on db.
func New(db DBTX) *Store { return &Store{db: db} }

// WithTx returns a Store whose statements run in tx.
func (s *Store) WithTx(tx pgx.Tx) *Store { return &Store{db: tx} }

// User is a row of portfolio.users.
type User struct {
	ID          int64     `db:"id"`
	Email       string    `db:"email"`
	DisplayName string    `db:"display_name"`
	CreateTime  time.Time `db:"create_time"`
}

// CreateUser inserts a user; an email taken in any case gives ErrConflict.
func (s *Store) CreateUser(ctx context.Context, email, name string) (User, error) {
	const q = `
		INSERT INTO portfolio.users (email, display_name) VALUES ($1, $2)
		RETURNING id, email, display_name, create_time`
	rows, _ := s.db.Query(ctx, q, email, name)
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if isCode(err, pgerrcode.UniqueViolation) {
		return User{}, fmt.Errorf("user with email %q: %w", email, ErrConflict)
	}
	if err != nil {
		return User{}, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// GetUser returns a user or an error wrapping ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id int64) (User, error) {
	const q = `SELECT id, email, display_name, create_time FROM portfolio.users WHERE id = $1`
	rows, _ := s.db.Query(ctx, q, id)
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &NotFoundError{Kind: "user", Field: "user_id", Key: id}
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %d: %w", id, err)
	}
	return u, nil
}

// UserByEmail returns the user with email (in any case), or an error wrapping ErrNotFound.
func (s *Store) UserByEmail(ctx context.Context, email string) (User, error) {
	const q = `SELECT id, email, display_name, create_time FROM portfolio.users WHERE lower(email) = lower($1)`
	rows, _ := s.db.Query(ctx, q, email)
	u, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[User])
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, &NotFoundError{Kind: "user", Field: "email", Key: email}
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %q: %w", email, err)
	}
	return u, nil
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}
