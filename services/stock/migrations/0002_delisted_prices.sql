-- A deleted stock is delisted, not forgotten: DeleteStock keeps its latest price as its final
-- price, with the stock's currency and the time of the deletion, so that portfolios holding it
-- can still value and sell it. latest_prices therefore outlives its stock: no foreign key.
-- Storing the symbol again drops the final price (a new listing starts without prices).

-- +goose Up
ALTER TABLE stock.latest_prices DROP CONSTRAINT latest_prices_symbol_fkey;
ALTER TABLE stock.latest_prices
    ADD COLUMN currency text CHECK (currency ~ '^[A-Z]{3}$'),
    ADD COLUMN delist_time timestamptz,
    ADD CONSTRAINT latest_prices_delisted_check CHECK ((currency IS NULL) = (delist_time IS NULL));

-- +goose Down
DELETE FROM stock.latest_prices WHERE delist_time IS NOT NULL;
ALTER TABLE stock.latest_prices DROP CONSTRAINT latest_prices_delisted_check,
    DROP COLUMN delist_time, DROP COLUMN currency;
ALTER TABLE stock.latest_prices ADD CONSTRAINT latest_prices_symbol_fkey
    FOREIGN KEY (symbol) REFERENCES stock.stocks (symbol) ON DELETE CASCADE;
