package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Trade is a row of portfolio.trades.
type Trade struct {
	ID          int64     `db:"id"`
	PortfolioID int64     `db:"portfolio_id"`
	Symbol      string    `db:"symbol"`
	Side        string    `db:"side"` // "SIDE_BUY" or "SIDE_SELL"
	Quantity    string    `db:"quantity"`
	Price       string    `db:"price"`
	Amount      string    `db:"amount"`
	RequestID   string    `db:"request_id"`
	RequestHash []byte    `db:"request_hash"`
	ExecuteTime time.Time `db:"execute_time"`
}

// CashMovement is a row of portfolio.cash_movements, the ledger.
type CashMovement struct {
	ID          int64     `db:"id"`
	PortfolioID int64     `db:"portfolio_id"`
	Kind        string    `db:"kind"`
	Amount      string    `db:"amount"` // signed
	TradeID     *int64    `db:"trade_id"`
	RequestID   string    `db:"request_id"`
	RequestHash []byte    `db:"request_hash"`
	CreateTime  time.Time `db:"create_time"`
}

const tradeColumns = `id, portfolio_id, symbol, side, quantity::text AS quantity, price::text AS price,
	amount::text AS amount, request_id, request_hash, execute_time`

const movementColumns = `id, portfolio_id, kind, amount::text AS amount, trade_id, request_id, request_hash, create_time`

// TradeByRequest returns the trade a portfolio made for request_id, or ErrNotFound.
func (s *Store) TradeByRequest(ctx context.Context, portfolioID int64, requestID string) (Trade, error) {
	const q = `SELECT ` + tradeColumns + ` FROM portfolio.trades WHERE portfolio_id = $1 AND request_id = $2`
	rows, _ := s.db.Query(ctx, q, portfolioID, requestID)
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Trade])
	if errors.Is(err, pgx.ErrNoRows) {
		return Trade{}, fmt.Errorf("trade %q: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return Trade{}, fmt.Errorf("trade %q: %w", requestID, err)
	}
	return t, nil
}

// InsertTrade records a trade; ID and ExecuteTime of t are ignored and returned set.
func (s *Store) InsertTrade(ctx context.Context, t Trade) (Trade, error) {
	const q = `
		INSERT INTO portfolio.trades (portfolio_id, symbol, side, quantity, price, amount, request_id, request_hash)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING ` + tradeColumns
	rows, _ := s.db.Query(ctx, q, t.PortfolioID, t.Symbol, t.Side, t.Quantity, t.Price, t.Amount, t.RequestID, t.RequestHash)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Trade])
	if isCode(err, pgerrcode.UniqueViolation) {
		return Trade{}, fmt.Errorf("trade %q: %w", t.RequestID, ErrRepeat)
	}
	if err != nil {
		return Trade{}, fmt.Errorf("insert trade: %w", err)
	}
	return out, nil
}

// ListTrades returns one page of a portfolio's trades; page's parameters start at $2.
func (s *Store) ListTrades(ctx context.Context, portfolioID int64, page *query.Query) ([]Trade, error) {
	q := page.SQL(`SELECT `+tradeColumns+` FROM portfolio.trades`, `portfolio_id = $1`)
	rows, _ := s.db.Query(ctx, q, append([]any{portfolioID}, page.Args...)...)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Trade])
	if err != nil {
		return nil, fmt.Errorf("list trades: %w", err)
	}
	return list, nil
}

// MovementByRequest returns the deposit or withdrawal a portfolio made for request_id, or
// ErrNotFound.
func (s *Store) MovementByRequest(ctx context.Context, portfolioID int64, requestID string) (CashMovement, error) {
	const q = `SELECT ` + movementColumns + ` FROM portfolio.cash_movements
		WHERE portfolio_id = $1 AND request_id = $2 AND trade_id IS NULL`
	rows, _ := s.db.Query(ctx, q, portfolioID, requestID)
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[CashMovement])
	if errors.Is(err, pgx.ErrNoRows) {
		return CashMovement{}, fmt.Errorf("cash movement %q: %w", requestID, ErrNotFound)
	}
	if err != nil {
		return CashMovement{}, fmt.Errorf("cash movement %q: %w", requestID, err)
	}
	return m, nil
}

// InsertMovement appends to the ledger; ID and CreateTime of m are ignored and returned set.
func (s *Store) InsertMovement(ctx context.Context, m CashMovement) (CashMovement, error) {
	const q = `
		INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, trade_id, request_id, request_hash)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING ` + movementColumns
	rows, _ := s.db.Query(ctx, q, m.PortfolioID, m.Kind, m.Amount, m.TradeID, m.RequestID, m.RequestHash)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[CashMovement])
	if isCode(err, pgerrcode.UniqueViolation) {
		return CashMovement{}, fmt.Errorf("cash movement %q: %w", m.RequestID, ErrRepeat)
	}
	if err != nil {
		return CashMovement{}, fmt.Errorf("insert cash movement: %w", err)
	}
	return out, nil
}

// ListCashMovements returns one page of a portfolio's ledger; page's parameters start at $2.
func (s *Store) ListCashMovements(ctx context.Context, portfolioID int64, page *query.Query) ([]CashMovement, error) {
	q := page.SQL(`SELECT `+movementColumns+` FROM portfolio.cash_movements`, `portfolio_id = $1`)
	rows, _ := s.db.Query(ctx, q, append([]any{portfolioID}, page.Args...)...)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[CashMovement])
	if err != nil {
		return nil, fmt.Errorf("list cash movements: %w", err)
	}
	return list, nil
}

// CashAfterTrade returns the portfolio's cash right after a trade: the ledger's sum up to
// the trade's movement. Movements of one portfolio are written under its lock, so their ids
// follow their commit order.
func (s *Store) CashAfterTrade(ctx context.Context, portfolioID, tradeID int64) (string, error) {
	const q = `
		SELECT coalesce(sum(amount), 0)::text
		FROM portfolio.cash_movements
		WHERE portfolio_id = $1
		  AND id <= (SELECT id FROM portfolio.cash_movements WHERE trade_id = $2)`
	var cash string
	if err := s.db.QueryRow(ctx, q, portfolioID, tradeID).Scan(&cash); err != nil {
		return "", fmt.Errorf("cash after trade %d: %w", tradeID, err)
	}
	return cash, nil
}
