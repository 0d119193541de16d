-- Schema "portfolio": users, portfolios, positions, trades and the cash ledger.
-- Amounts are numeric: cash and prices numeric(20, 6), quantities numeric(20, 6),
-- cost bases unconstrained so average costs keep their precision.

-- +goose Up
CREATE TABLE portfolio.users (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL CHECK (email <> ''),
    display_name text NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON portfolio.users (lower(email));

CREATE TABLE portfolio.portfolios (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES portfolio.users (id),
    name        text NOT NULL CHECK (name <> ''),
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    cash        numeric(20, 6) NOT NULL DEFAULT 0 CHECK (cash >= 0),
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, name)
);
CREATE INDEX portfolios_name_idx ON portfolio.portfolios (name, id);
CREATE INDEX portfolios_currency_idx ON portfolio.portfolios (currency, id);
CREATE INDEX portfolios_user_idx ON portfolio.portfolios (user_id, id);
CREATE INDEX portfolios_create_time_idx ON portfolio.portfolios (create_time, id);
CREATE INDEX portfolios_update_time_idx ON portfolio.portfolios (update_time, id);

CREATE TABLE portfolio.positions (
    portfolio_id bigint NOT NULL REFERENCES portfolio.portfolios (id),
    symbol       text NOT NULL,
    quantity     numeric(20, 6) NOT NULL CHECK (quantity > 0),
    cost_basis   numeric NOT NULL CHECK (cost_basis >= 0),
    update_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (portfolio_id, symbol)
);

CREATE TABLE portfolio.trades (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portfolio_id bigint NOT NULL REFERENCES portfolio.portfolios (id),
    symbol       text NOT NULL,
    side         text NOT NULL CHECK (side IN ('SIDE_BUY', 'SIDE_SELL')),
    quantity     numeric(20, 6) NOT NULL CHECK (quantity > 0),
    price        numeric(20, 6) NOT NULL CHECK (price >= 0),
    amount       numeric(20, 6) NOT NULL CHECK (amount >= 0),
    request_id   text NOT NULL,
    request_hash bytea NOT NULL, -- what the request asked, so a reused request_id with another payload is refused
    execute_time timestamptz NOT NULL DEFAULT now(),
    UNIQUE (portfolio_id, request_id)
);
CREATE INDEX trades_portfolio_symbol_idx ON portfolio.trades (portfolio_id, symbol, id);
CREATE INDEX trades_portfolio_side_idx ON portfolio.trades (portfolio_id, side, id);
CREATE INDEX trades_portfolio_time_idx ON portfolio.trades (portfolio_id, execute_time, id);
CREATE INDEX trades_portfolio_id_idx ON portfolio.trades (portfolio_id, id);

-- The ledger: a portfolio's cash is the sum of its movements' amounts.
CREATE TABLE portfolio.cash_movements (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    portfolio_id bigint NOT NULL REFERENCES portfolio.portfolios (id),
    kind         text NOT NULL CHECK (kind IN ('CASH_MOVEMENT_KIND_DEPOSIT', 'CASH_MOVEMENT_KIND_WITHDRAWAL',
                                               'CASH_MOVEMENT_KIND_BUY', 'CASH_MOVEMENT_KIND_SELL')),
    amount       numeric(20, 6) NOT NULL,
    trade_id     bigint REFERENCES portfolio.trades (id),
    request_id   text NOT NULL,
    request_hash bytea NOT NULL,
    create_time  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cash_movements_portfolio_idx ON portfolio.cash_movements (portfolio_id, id);
-- Deposits and withdrawals are idempotent by request_id; trade movements share their trade's.
CREATE UNIQUE INDEX cash_movements_request_key ON portfolio.cash_movements (portfolio_id, request_id)
    WHERE trade_id IS NULL;

-- +goose Down
DROP TABLE portfolio.cash_movements;
DROP TABLE portfolio.trades;
DROP TABLE portfolio.positions;
DROP TABLE portfolio.portfolios;
DROP TABLE portfolio.users;
