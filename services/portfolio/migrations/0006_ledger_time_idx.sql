-- Analytics read a portfolio's ledger up to a time (GetPortfolio and GetPortfolioPnl with
-- as_of, ListPortfolioValues): the trades through trades_portfolio_time_idx (portfolio_id,
-- execute_time, id), the cash movements through this index, which carries what the replay
-- reads (kind, amount) so the sum of the cash up to a time is an index-only scan. Version 5 is
-- the outbox (migrations.go).

-- +goose Up
CREATE INDEX cash_movements_portfolio_time_idx ON portfolio.cash_movements (portfolio_id, create_time, id)
    INCLUDE (kind, amount);

-- +goose Down
DROP INDEX portfolio.cash_movements_portfolio_time_idx;
