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

// Portfolio is a row of portfolio.portfolios.
type Portfolio struct {
	ID         int64     `db:"id"`
	UserID     int64     `db:"user_id"`
	Name       string    `db:"name"`
	Currency   string    `db:"currency"`
	Cash       string    `db:"cash"`
	CreateTime time.Time `db:"create_time"`
	UpdateTime time.Time `db:"update_time"`
}

// Position is a row of portfolio.positions.
type Position struct {
	Symbol    string `db:"symbol"`
	Quantity  string `db:"quantity"`
	CostBasis string `db:"cost_basis"` // total paid for the shares held
}

const portfolioColumns = `id, user_id, name, currency, cash::text AS cash, create_time, update_time`

// CreatePortfolio inserts an empty portfolio for userID, once per requestID ("": no
// idempotency). A missing user gives ErrNotFound, a name the user already has ErrConflict.
// A requestID the user has used gives the portfolio it created, created false; the caller
// compares its name and currency with the request's.
func (s *Store) CreatePortfolio(ctx context.Context, userID int64, name, currency, requestID string) (p Portfolio, created bool, err error) {
	// Without a conflict target every unique index arbitrates: a taken name or request_id
	// inserts nothing, after waiting for a concurrent inserter to commit or roll back. Under
	// READ COMMITTED the next statement then sees the row that won.
	const insert = `
		INSERT INTO portfolio.portfolios (user_id, name, currency, request_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING
		RETURNING ` + portfolioColumns
	const byRequest = `SELECT ` + portfolioColumns + ` FROM portfolio.portfolios WHERE user_id = $1 AND request_id = $2`
	rows, _ := s.db.Query(ctx, insert, userID, name, currency, requestID)
	p, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Portfolio])
	switch {
	case err == nil:
		return p, true, nil
	case isCode(err, pgerrcode.ForeignKeyViolation):
		return Portfolio{}, false, &NotFoundError{Kind: "user", Field: "user_id", Key: userID}
	case !errors.Is(err, pgx.ErrNoRows):
		return Portfolio{}, false, fmt.Errorf("create portfolio: %w", err)
	}
	if requestID != "" {
		rows, _ = s.db.Query(ctx, byRequest, userID, requestID)
		p, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Portfolio])
		if err == nil {
			return p, false, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return Portfolio{}, false, fmt.Errorf("portfolio of request %q: %w", requestID, err)
		}
	}
	return Portfolio{}, false, fmt.Errorf("portfolio %q of user %d: %w", name, userID, ErrConflict)
}

// GetPortfolio returns a portfolio or an error wrapping ErrNotFound.
func (s *Store) GetPortfolio(ctx context.Context, id int64) (Portfolio, error) {
	const q = `SELECT ` + portfolioColumns + ` FROM portfolio.portfolios WHERE id = $1`
	rows, _ := s.db.Query(ctx, q, id)
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Portfolio])
	if errors.Is(err, pgx.ErrNoRows) {
		return Portfolio{}, &NotFoundError{Kind: "portfolio", Field: "portfolio_id", Key: id}
	}
	if err != nil {
		return Portfolio{}, fmt.Errorf("get portfolio %d: %w", id, err)
	}
	return p, nil
}

// ListPortfolios returns one page of portfolios: of every user when email is "", else of the
// user with email (in any case) only.
func (s *Store) ListPortfolios(ctx context.Context, email string, page *query.Query) ([]Portfolio, error) {
	const sel = `SELECT ` + portfolioColumns + ` FROM portfolio.portfolios`
	sql, args := page.SQL(sel), page.NamedArgs(nil)
	if email != "" {
		sql = page.SQL(sel, `user_id = (SELECT id FROM portfolio.users WHERE lower(email) = lower(@email))`)
		args = page.NamedArgs(pgx.NamedArgs{"email": email})
	}
	rows, _ := s.db.Query(ctx, sql, args)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Portfolio])
	if err != nil {
		return nil, fmt.Errorf("list portfolios: %w", err)
	}
	return list, nil
}

// Positions returns a portfolio's positions by symbol.
func (s *Store) Positions(ctx context.Context, portfolioID int64) ([]Position, error) {
	const q = `
		SELECT symbol, quantity::text AS quantity, cost_basis::text AS cost_basis
		FROM portfolio.positions WHERE portfolio_id = $1 ORDER BY symbol`
	rows, _ := s.db.Query(ctx, q, portfolioID)
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Position])
	if err != nil {
		return nil, fmt.Errorf("positions of portfolio %d: %w", portfolioID, err)
	}
	return list, nil
}

// checkOwner is true when portfolio $1 exists and belongs to the user with email $2 (in any
// case), or to anyone when $2 is empty.
const checkOwner = `
	SELECT EXISTS (SELECT FROM portfolio.portfolios p JOIN portfolio.users u ON u.id = p.user_id
	               WHERE p.id = $1 AND ($2 = '' OR lower(u.email) = lower($2)))`

// CheckOwner returns an error wrapping ErrNotFound unless portfolio id exists and belongs to
// the user with email (in any case; "" for anyone): the same error whether it is missing or
// someone else's.
func (s *Store) CheckOwner(ctx context.Context, id int64, email string) error {
	var ok bool
	if err := s.db.QueryRow(ctx, checkOwner, id, email).Scan(&ok); err != nil {
		return fmt.Errorf("owner of portfolio %d: %w", id, err)
	}
	return owned(id, ok)
}

func owned(id int64, ok bool) error {
	if !ok {
		return &NotFoundError{Kind: "portfolio", Field: "portfolio_id", Key: id}
	}
	return nil
}

// Holding is what a trade of symbol reads of a portfolio: its currency, its cash and its
// position in symbol.
type Holding struct {
	Currency string
	Cash     string
	Position Position // quantity and cost "0" when not held
}

// Holding returns a portfolio's currency, cash and position in symbol in one round trip, or
// an error wrapping ErrNotFound.
func (s *Store) Holding(ctx context.Context, portfolioID int64, symbol string) (Holding, error) {
	const q = `
		SELECT p.currency, p.cash::text, coalesce(pos.quantity::text, '0'), coalesce(pos.cost_basis::text, '0')
		FROM portfolio.portfolios p
		LEFT JOIN portfolio.positions pos ON pos.portfolio_id = p.id AND pos.symbol = $2
		WHERE p.id = $1`
	h := Holding{Position: Position{Symbol: symbol}}
	err := s.db.QueryRow(ctx, q, portfolioID, symbol).Scan(&h.Currency, &h.Cash, &h.Position.Quantity, &h.Position.CostBasis)
	if errors.Is(err, pgx.ErrNoRows) {
		return Holding{}, &NotFoundError{Kind: "portfolio", Field: "portfolio_id", Key: portfolioID}
	}
	if err != nil {
		return Holding{}, fmt.Errorf("holding %s of portfolio %d: %w", symbol, portfolioID, err)
	}
	return h, nil
}
