package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgfleet/pgfleet/pkg/query"
)

// Stock is a row of stock.stocks.
type Stock struct {
	Symbol     string
	Name       string
	Sector     string
	Industry   string
	Exchange   string
	Currency   string
	MarketCap  int64
	CreateTime time.Time
	UpdateTime time.Time
}

const stockColumns = `symbol, name, sector, industry, exchange, currency, market_cap, create_time, update_time`

// scanStock reads a row of stockColumns. Scanning by position in plain code, not by name
// through reflection (pgx.RowToStructByName), cut a 50-row page's CPU by a sixth.
func scanStock(row pgx.CollectableRow) (Stock, error) {
	var st Stock
	err := row.Scan(&st.Symbol, &st.Name, &st.Sector, &st.Industry, &st.Exchange, &st.Currency,
		&st.MarketCap, &st.CreateTime, &st.UpdateTime)
	return st, err
}

// GetStock returns the stock with the given symbol, or an error wrapping ErrNotFound.
func (s *Store) GetStock(ctx context.Context, symbol string) (Stock, error) {
	const q = `SELECT ` + stockColumns + ` FROM stock.stocks WHERE symbol = $1`
	rows, _ := s.db.Query(ctx, q, symbol) // the error resurfaces from CollectExactlyOneRow
	st, err := pgx.CollectExactlyOneRow(rows, scanStock)
	if errors.Is(err, pgx.ErrNoRows) {
		return Stock{}, &NotFoundError{Kind: "stock", Field: "symbol", Key: symbol}
	}
	if err != nil {
		return Stock{}, fmt.Errorf("get stock %q: %w", symbol, err)
	}
	return st, nil
}

// ListStocks returns one page of stocks.
func (s *Store) ListStocks(ctx context.Context, page *query.Query) ([]Stock, error) {
	rows, _ := s.db.Query(ctx, page.SQL(`SELECT `+stockColumns+` FROM stock.stocks`), page.NamedArgs(nil))
	stocks, err := pgx.CollectRows(rows, scanStock)
	if err != nil {
		return nil, fmt.Errorf("list stocks: %w", err)
	}
	return stocks, nil
}

// BatchGetStocks returns the stocks that exist among symbols, in no particular order.
func (s *Store) BatchGetStocks(ctx context.Context, symbols []string) ([]Stock, error) {
	const q = `SELECT ` + stockColumns + ` FROM stock.stocks WHERE symbol = ANY($1)`
	rows, _ := s.db.Query(ctx, q, symbols)
	stocks, err := pgx.CollectRows(rows, scanStock)
	if err != nil {
		return nil, fmt.Errorf("batch get stocks: %w", err)
	}
	return stocks, nil
}

// StockChange is a stock UpsertStocks inserted or changed, as stored.
type StockChange struct {
	Stock
	Inserted bool // a new row, not an update
	// Cleared: the symbol was a delisted stock's, whose final price went with the new listing.
	Cleared bool
	// Latest is the stock's latest price, with the stock's new currency, when the update
	// changed its currency: the price as LatestPrices now answers it. nil otherwise.
	Latest *Price
}

// UpsertStocks inserts new stocks and updates changed ones in one statement, and returns
// those it inserted or changed, in no particular order, with what that did to their latest
// prices (StockChange.Cleared, StockChange.Latest). Rows equal to what is stored count as
// neither, so replaying a request reports none.
func (s *Store) UpsertStocks(ctx context.Context, stocks []Stock) ([]StockChange, error) {
	const q = `
		INSERT INTO stock.stocks AS s (symbol, name, sector, industry, exchange, currency, market_cap)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[])
		ON CONFLICT (symbol) DO UPDATE SET
			name = EXCLUDED.name, sector = EXCLUDED.sector, industry = EXCLUDED.industry,
			exchange = EXCLUDED.exchange, currency = EXCLUDED.currency,
			market_cap = EXCLUDED.market_cap, update_time = now()
		WHERE (s.name, s.sector, s.industry, s.exchange, s.currency, s.market_cap) IS DISTINCT FROM
			(EXCLUDED.name, EXCLUDED.sector, EXCLUDED.industry, EXCLUDED.exchange, EXCLUDED.currency, EXCLUDED.market_cap)
		RETURNING ` + stockColumns + `, (xmax = 0) AS inserted`
	// A symbol stored again after DeleteStock is a new listing: the old one's final price goes.
	// A stock's latest price shows the stock's currency: a change of currency changes it too.
	// prev and the latest_prices join see the rows as they were before the statement.
	const relist = `
		WITH prev AS (SELECT symbol, currency FROM stock.stocks WHERE symbol = ANY($1::text[])),
		up AS (` + q + `),
		gone AS (DELETE FROM stock.latest_prices l USING up WHERE l.symbol = up.symbol AND up.inserted AND l.delist_time IS NOT NULL
			RETURNING l.symbol)
		SELECT up.*, gone.symbol IS NOT NULL,
			l.ts, l.open::text, l.high::text, l.low::text, l.close::text, l.volume
		FROM up
		LEFT JOIN gone ON gone.symbol = up.symbol
		LEFT JOIN prev ON prev.symbol = up.symbol
		LEFT JOIN stock.latest_prices l ON l.symbol = up.symbol AND NOT up.inserted AND prev.currency <> up.currency`
	n := len(stocks)
	sym, name, sector, industry := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	exchange, currency, mcap := make([]string, n), make([]string, n), make([]int64, n)
	for i, st := range stocks {
		sym[i], name[i], sector[i], industry[i] = st.Symbol, st.Name, st.Sector, st.Industry
		exchange[i], currency[i], mcap[i] = st.Exchange, st.Currency, st.MarketCap
	}
	rows, _ := s.db.Query(ctx, relist, sym, name, sector, industry, exchange, currency, mcap)
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (c StockChange, err error) {
		st := &c.Stock
		var (
			ts          *time.Time
			o, h, l, cl *string
			vol         *int64
		)
		err = row.Scan(&st.Symbol, &st.Name, &st.Sector, &st.Industry, &st.Exchange, &st.Currency,
			&st.MarketCap, &st.CreateTime, &st.UpdateTime, &c.Inserted, &c.Cleared, &ts, &o, &h, &l, &cl, &vol)
		if err == nil && ts != nil {
			c.Latest = &Price{Symbol: st.Symbol, Time: *ts, Open: *o, High: *h, Low: *l, Close: *cl, Volume: *vol, Currency: st.Currency}
		}
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("upsert stocks: %w", err)
	}
	return changes, nil
}

// DeleteStock deletes a stock with its prices (recommendations go by cascade) and keeps its
// latest price as its final one, marked with the stock's currency and the deletion time. It
// returns the deletion time and the final price (nil if the stock had no price). Run it in a
// transaction holding the stock's write lock, so no ingest of the same symbol can interleave
// (prices carry no foreign key).
func (s *Store) DeleteStock(ctx context.Context, symbol string) (time.Time, *Price, error) {
	// One statement: the stock row gives the final price its currency as it goes.
	const delStock = `
		WITH d AS (DELETE FROM stock.stocks WHERE symbol = $1 RETURNING symbol, currency),
		u AS (UPDATE stock.latest_prices l SET currency = d.currency, delist_time = now() FROM d WHERE l.symbol = d.symbol
			RETURNING l.ts, l.open::text, l.high::text, l.low::text, l.close::text, l.volume, l.currency)
		SELECT now(), u.ts, u.open, u.high, u.low, u.close, u.volume, u.currency FROM d LEFT JOIN u ON true`
	const delPrices = `DELETE FROM stock.prices WHERE symbol = $1`
	var (
		at              *time.Time
		ts              *time.Time
		o, h, l, c, cur *string
		vol             *int64
	)
	err := s.db.QueryRow(ctx, delStock, symbol).Scan(&at, &ts, &o, &h, &l, &c, &vol, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil, &NotFoundError{Kind: "stock", Field: "symbol", Key: symbol}
	}
	if err != nil {
		return time.Time{}, nil, fmt.Errorf("delete stock %q: %w", symbol, err)
	}
	if _, err := s.db.Exec(ctx, delPrices, symbol); err != nil {
		return time.Time{}, nil, fmt.Errorf("delete prices of %q: %w", symbol, err)
	}
	if ts == nil {
		return *at, nil, nil
	}
	final := &Price{Symbol: symbol, Time: *ts, Open: *o, High: *h, Low: *l, Close: *c, Volume: *vol,
		Currency: *cur, DelistTime: at}
	return *at, final, nil
}
