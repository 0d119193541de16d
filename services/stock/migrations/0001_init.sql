-- Schema "stock": stocks, their price history (partitioned by time) and recommendations.
-- The schema itself exists before this runs: created by the administrator for the role
-- "stock" in deployments, or by pkg/migrate where the role may create it (tests, make run).

-- +goose Up
CREATE TABLE stock.stocks (
    symbol      text PRIMARY KEY CHECK (symbol ~ '^[A-Z][A-Z0-9.-]{0,9}$'),
    name        text NOT NULL CHECK (name <> ''),
    sector      text NOT NULL DEFAULT '',
    industry    text NOT NULL DEFAULT '',
    exchange    text NOT NULL DEFAULT '',
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    market_cap  bigint NOT NULL DEFAULT 0 CHECK (market_cap >= 0),
    create_time timestamptz NOT NULL DEFAULT now(),
    update_time timestamptz NOT NULL DEFAULT now()
);

-- One index per filterable / sortable column, each ending in the key, so keyset pages walk
-- an index in either direction (pkg/query sorts the key the way of the last named field);
-- (sector, market_cap, symbol) serves the hot "sector = X order by market_cap desc".
-- TestListStocks_plans checks that no accepted order needs a sequential scan or a sort.
CREATE INDEX stocks_name_idx ON stock.stocks (name, symbol);
CREATE INDEX stocks_sector_idx ON stock.stocks (sector, symbol);
CREATE INDEX stocks_sector_market_cap_idx ON stock.stocks (sector, market_cap, symbol);
CREATE INDEX stocks_industry_idx ON stock.stocks (industry, symbol);
CREATE INDEX stocks_exchange_idx ON stock.stocks (exchange, symbol);
CREATE INDEX stocks_currency_idx ON stock.stocks (currency, symbol);
CREATE INDEX stocks_market_cap_idx ON stock.stocks (market_cap, symbol);
CREATE INDEX stocks_create_time_idx ON stock.stocks (create_time, symbol);
CREATE INDEX stocks_update_time_idx ON stock.stocks (update_time, symbol);

-- Prices carry no foreign key: a per-row RI check would halve COPY-merge throughput.
-- Integrity holds anyway: IngestPrices checks symbols under each symbol's write lock, and
-- DeleteStock removes prices under the same lock.
CREATE TABLE stock.prices (
    symbol text NOT NULL,
    ts     timestamptz NOT NULL,
    open   numeric(20, 6) NOT NULL CHECK (open >= 0),
    high   numeric(20, 6) NOT NULL CHECK (high >= 0),
    low    numeric(20, 6) NOT NULL CHECK (low >= 0),
    close  numeric(20, 6) NOT NULL CHECK (close >= 0),
    volume bigint NOT NULL DEFAULT 0 CHECK (volume >= 0),
    PRIMARY KEY (symbol, ts)
) PARTITION BY RANGE (ts);

-- A partition per year from 2000 to 2039, and a default one for anything outside.
-- +goose StatementBegin
DO $$
BEGIN
    FOR y IN 2000..2039 LOOP
        EXECUTE format(
            'CREATE TABLE stock.prices_%s PARTITION OF stock.prices FOR VALUES FROM (%L) TO (%L)',
            y, make_timestamptz(y, 1, 1, 0, 0, 0, 'UTC'), make_timestamptz(y + 1, 1, 1, 0, 0, 0, 'UTC'));
    END LOOP;
END
$$;
-- +goose StatementEnd
CREATE TABLE stock.prices_default PARTITION OF stock.prices DEFAULT;

-- The latest bar of each symbol, kept by IngestPrices so GetLatestPrices is one index probe.
CREATE TABLE stock.latest_prices (
    symbol text PRIMARY KEY REFERENCES stock.stocks (symbol) ON DELETE CASCADE,
    ts     timestamptz NOT NULL,
    open   numeric(20, 6) NOT NULL,
    high   numeric(20, 6) NOT NULL,
    low    numeric(20, 6) NOT NULL,
    close  numeric(20, 6) NOT NULL,
    volume bigint NOT NULL
);

CREATE TABLE stock.recommendations (
    symbol       text NOT NULL REFERENCES stock.stocks (symbol) ON DELETE CASCADE,
    source       text NOT NULL CHECK (source <> ''),
    action       text NOT NULL CHECK (action IN (
        'ACTION_STRONG_BUY', 'ACTION_BUY', 'ACTION_HOLD', 'ACTION_SELL', 'ACTION_STRONG_SELL')),
    target_price numeric(20, 6) CHECK (target_price >= 0),
    confidence   double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    rationale    text NOT NULL DEFAULT '',
    create_time  timestamptz NOT NULL DEFAULT now(),
    update_time  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (symbol, source)
);

CREATE INDEX recommendations_source_idx ON stock.recommendations (source, symbol);
CREATE INDEX recommendations_action_idx ON stock.recommendations (action, symbol, source);
CREATE INDEX recommendations_confidence_idx ON stock.recommendations (confidence, symbol, source);
CREATE INDEX recommendations_create_time_idx ON stock.recommendations (create_time, symbol, source);
CREATE INDEX recommendations_update_time_idx ON stock.recommendations (update_time, symbol, source);

-- +goose Down
DROP TABLE stock.recommendations;
DROP TABLE stock.latest_prices;
DROP TABLE stock.prices;
DROP TABLE stock.stocks;
