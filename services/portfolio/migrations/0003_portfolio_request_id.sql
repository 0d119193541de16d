-- CreatePortfolio is idempotent by request_id (AIP-155), per owning user: the unique index
-- lets exactly one of concurrent repeats insert, the others find its row. '' is a creation
-- without a request_id, which the index leaves out. A portfolio's name and currency never
-- change, so a repeat is recognised by comparing them: no hash of the request is stored.

-- +goose Up
ALTER TABLE portfolio.portfolios ADD COLUMN request_id text NOT NULL DEFAULT '';
CREATE UNIQUE INDEX portfolios_request_key ON portfolio.portfolios (user_id, request_id)
    WHERE request_id <> '';

-- +goose Down
DROP INDEX portfolio.portfolios_request_key;
ALTER TABLE portfolio.portfolios DROP COLUMN request_id;
