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
	ID          int64      `db:"id"`
	PortfolioID int64      `db:"portfolio_id"`
	Symbol      string     `db:"symbol"`
	Side        string     `db:"side"` // "SIDE_BUY" or "SIDE_SELL"
	Quantity    string     `db:"quantity"`
	Price       string     `db:"price"`
	Amount      string     `db:"amount"`
	RequestID   string     `db:"request_id"`
	RequestHash []byte     `db:"request_hash"`
	ExecuteTime time.Time  `db:"execute_time"`
	PriceTime   *time.Time `db:"price_time"` // the price bar's; nil for trades recorded before it was kept
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
	amount::text AS amount, request_id, request_hash, execute_time, price_time`

const movementColumns = `id, portfolio_id, kind, amount::text AS amount, trade_id, request_id, request_hash, create_time`

const tradeByRequest = `SELECT ` + tradeColumns + ` FROM portfolio.trades WHERE portfolio_id = $1 AND request_id = $2`

// TradeByRequest returns the trade a portfolio made for request_id, or ErrNotFound.
func (s *Store) TradeByRequest(ctx context.Context, portfolioID int64, requestID string) (Trade, error) {
	rows, _ := s.db.Query(ctx, tradeByRequest, portfolioID, requestID)
	return collectTrade(rows, requestID)
}

// OwnedTradeByRequest is CheckOwner then TradeByRequest in one round trip: an error wrapping
// ErrNotFound unless the portfolio is email's ("" for anyone's), else the trade for request_id (found false
// if there is none).
func (s *Store) OwnedTradeByRequest(ctx context.Context, portfolioID int64, email, requestID string) (t Trade, found bool, err error) {
	b := &pgx.Batch{}
	b.Queue(checkOwner, portfolioID, email)
	b.Queue(tradeByRequest, portfolioID, requestID)
	br := s.db.SendBatch(ctx, b)
	defer br.Close()
	var ok bool
	if err := br.QueryRow().Scan(&ok); err != nil {
		return Trade{}, false, fmt.Errorf("owner of portfolio %d: %w", portfolioID, err)
	}
	if err := owned(portfolioID, ok); err != nil {
		return Trade{}, false, err
	}
	rows, _ := br.Query()
	t, err = collectTrade(rows, requestID)
	if errors.Is(err, ErrNotFound) {
		return Trade{}, false, nil
	}
	return t, err == nil, err
}

func collectTrade(rows pgx.Rows, requestID string) (Trade, error) {
	t, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Trade])
	if errors.Is(err, pgx.ErrNoRows) {
		return Trade{}, &NotFoundError{Kind: "trade", Field: "request_id", Key: requestID}
	}
	if err != nil {
		return Trade{}, fmt.Errorf("trade %q: %w", requestID, err)
	}
	return t, nil
}

// ListTrades returns one page of a portfolio's trades.
func (s *Store) ListTrades(ctx context.Context, portfolioID int64, page *query.Query) ([]Trade, error) {
	q := page.SQL(`SELECT `+tradeColumns+` FROM portfolio.trades`, `portfolio_id = @portfolio`)
	rows, _ := s.db.Query(ctx, q, page.NamedArgs(pgx.NamedArgs{"portfolio": portfolioID}))
	list, err := pgx.CollectRows(rows, pgx.RowToStructByName[Trade])
	if err != nil {
		return nil, fmt.Errorf("list trades: %w", err)
	}
	return list, nil
}

const movementByRequest = `SELECT ` + movementColumns + ` FROM portfolio.cash_movements
	WHERE portfolio_id = $1 AND request_id = $2 AND trade_id IS NULL`

// MovementByRequest returns the deposit or withdrawal a portfolio made for request_id, or
// ErrNotFound.
func (s *Store) MovementByRequest(ctx context.Context, portfolioID int64, requestID string) (CashMovement, error) {
	rows, _ := s.db.Query(ctx, movementByRequest, portfolioID, requestID)
	return collectMovement(rows, requestID)
}

// OwnedMovementByRequest is CheckOwner then MovementByRequest in one round trip: an error
// wrapping ErrNotFound unless the portfolio is email's ("" for anyone's), else the deposit or
// withdrawal for request_id (found false if there is none).
func (s *Store) OwnedMovementByRequest(ctx context.Context, portfolioID int64, email, requestID string) (m CashMovement, found bool, err error) {
	b := &pgx.Batch{}
	b.Queue(checkOwner, portfolioID, email)
	b.Queue(movementByRequest, portfolioID, requestID)
	br := s.db.SendBatch(ctx, b)
	defer br.Close()
	var ok bool
	if err := br.QueryRow().Scan(&ok); err != nil {
		return CashMovement{}, false, fmt.Errorf("owner of portfolio %d: %w", portfolioID, err)
	}
	if err := owned(portfolioID, ok); err != nil {
		return CashMovement{}, false, err
	}
	rows, _ := br.Query()
	m, err = collectMovement(rows, requestID)
	if errors.Is(err, ErrNotFound) {
		return CashMovement{}, false, nil
	}
	return m, err == nil, err
}

func collectMovement(rows pgx.Rows, requestID string) (CashMovement, error) {
	m, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[CashMovement])
	if errors.Is(err, pgx.ErrNoRows) {
		return CashMovement{}, &NotFoundError{Kind: "cash movement", Field: "request_id", Key: requestID}
	}
	if err != nil {
		return CashMovement{}, fmt.Errorf("cash movement %q: %w", requestID, err)
	}
	return m, nil
}

// PortfolioAfter returns the portfolio as movement m left it: its cash the ledger's sum up to
// m, its update_time m's (both were set by the transaction that wrote m, at one now()).
// Movements of one portfolio are written under its lock, so their ids follow their commit
// order.
func (s *Store) PortfolioAfter(ctx context.Context, m CashMovement) (Portfolio, error) {
	const q = `
		SELECT id, user_id, name, currency,
			(SELECT coalesce(sum(amount), 0) FROM portfolio.cash_movements WHERE portfolio_id = $1 AND id <= $2)::text AS cash,
			create_time, $3::timestamptz AS update_time
		FROM portfolio.portfolios WHERE id = $1`
	rows, _ := s.db.Query(ctx, q, m.PortfolioID, m.ID, m.CreateTime)
	p, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Portfolio])
	if err != nil {
		return Portfolio{}, fmt.Errorf("portfolio %d after movement %d: %w", m.PortfolioID, m.ID, err)
	}
	return p, nil
}

// ListCashMovements returns one page of a portfolio's ledger.
func (s *Store) ListCashMovements(ctx context.Context, portfolioID int64, page *query.Query) ([]CashMovement, error) {
	q := page.SQL(`SELECT `+movementColumns+` FROM portfolio.cash_movements`, `portfolio_id = @portfolio`)
	rows, _ := s.db.Query(ctx, q, page.NamedArgs(pgx.NamedArgs{"portfolio": portfolioID}))
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

// TradeWrite is everything a trade changes: the portfolio's cash, the position, the trade
// and its ledger movement.
type TradeWrite struct {
	Trade    Trade    // ID and ExecuteTime are ignored
	Cash     string   // the portfolio's cash after the trade
	Position Position // after the trade; quantity "0" removes it
	Movement string   // the ledger amount: negative for a buy
	Kind     string   // the movement's kind
}

// tradeWrite records a trade in one statement, so one round trip while the portfolio's lock
// is held: data-modifying CTEs all run, whatever the final SELECT reads.
const tradeWrite = `
	WITH t AS (
		INSERT INTO portfolio.trades (portfolio_id, symbol, side, quantity, price, amount, request_id, request_hash, price_time)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		RETURNING ` + tradeColumns + `
	), m AS (
		INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, trade_id, request_id, request_hash)
		SELECT portfolio_id, $10, $11, id, request_id, request_hash FROM t
	), c AS (
		UPDATE portfolio.portfolios SET cash = $12, update_time = now() WHERE id = $1
	), pos AS (%s)
	SELECT * FROM t`

var (
	tradeWriteUpsert = fmt.Sprintf(tradeWrite, `
		INSERT INTO portfolio.positions (portfolio_id, symbol, quantity, cost_basis) VALUES ($1, $2, $13, $14)
		ON CONFLICT (portfolio_id, symbol) DO UPDATE SET
			quantity = EXCLUDED.quantity, cost_basis = EXCLUDED.cost_basis, update_time = now()`)
	tradeWriteRemove = fmt.Sprintf(tradeWrite, `
		DELETE FROM portfolio.positions WHERE portfolio_id = $1 AND symbol = $2`)
)

// WriteTrade records a trade; a request_id the portfolio has used gives ErrRepeat.
func (s *Store) WriteTrade(ctx context.Context, w TradeWrite) (Trade, error) {
	t := w.Trade
	q, args := tradeWriteUpsert, []any{t.PortfolioID, t.Symbol, t.Side, t.Quantity, t.Price, t.Amount, t.RequestID,
		t.RequestHash, t.PriceTime, w.Kind, w.Movement, w.Cash, w.Position.Quantity, w.Position.CostBasis}
	if w.Position.Quantity == "0" {
		q, args = tradeWriteRemove, args[:12]
	}
	rows, _ := s.db.Query(ctx, q, args...)
	out, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Trade])
	if isCode(err, pgerrcode.UniqueViolation) {
		return Trade{}, fmt.Errorf("trade %q: %w", t.RequestID, ErrRepeat)
	}
	if err != nil {
		return Trade{}, fmt.Errorf("record trade: %w", err)
	}
	return out, nil
}

// moveCash records a deposit or withdrawal in one statement, so one round trip while the
// portfolio's lock is held: the ledger row and the new cash, both returned.
const moveCash = `
	WITH m AS (
		INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, request_id, request_hash)
		VALUES ($1, $2, $3, $4, $5)
		RETURNING ` + movementColumns + `
	), p AS (
		UPDATE portfolio.portfolios SET cash = $6, update_time = now() WHERE id = $1
		RETURNING ` + portfolioColumns + `
	)
	SELECT m.id, m.portfolio_id, m.kind, m.amount, m.trade_id, m.request_id, m.request_hash, m.create_time,
		p.id, p.user_id, p.name, p.currency, p.cash, p.create_time, p.update_time
	FROM m, p`

// MoveCash appends m (a deposit or withdrawal; ID and CreateTime ignored) to the ledger and
// sets the portfolio's cash to cash, returning both as stored. A request_id the portfolio has
// used gives ErrRepeat.
func (s *Store) MoveCash(ctx context.Context, m CashMovement, cash string) (Portfolio, CashMovement, error) {
	var p Portfolio
	var out CashMovement
	err := s.db.QueryRow(ctx, moveCash, m.PortfolioID, m.Kind, m.Amount, m.RequestID, m.RequestHash, cash).Scan(
		&out.ID, &out.PortfolioID, &out.Kind, &out.Amount, &out.TradeID, &out.RequestID, &out.RequestHash, &out.CreateTime,
		&p.ID, &p.UserID, &p.Name, &p.Currency, &p.Cash, &p.CreateTime, &p.UpdateTime)
	if isCode(err, pgerrcode.UniqueViolation) {
		return Portfolio{}, CashMovement{}, fmt.Errorf("cash movement %q: %w", m.RequestID, ErrRepeat)
	}
	if err != nil {
		return Portfolio{}, CashMovement{}, fmt.Errorf("move cash: %w", err)
	}
	return p, out, nil
}
