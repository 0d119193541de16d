-- A trade records the time of the price bar it executed at (the stock service's bar start), so
-- that which price was used can be told afterwards; trades recorded before have none.

-- +goose Up
ALTER TABLE portfolio.trades ADD COLUMN price_time timestamptz;

-- +goose Down
ALTER TABLE portfolio.trades DROP COLUMN price_time;
