-- Every trade, deposit and withdrawal updates its portfolio's cash and update_time. An index on
-- update_time made each of those updates a non-HOT one, inserting into every index of the
-- table, and under SERIALIZABLE those index inserts conflict with every transaction that read
-- the same index pages: trades on different portfolios failed to serialize one another (865
-- retries per 2564 operations in the invariant test; 4 without the index). Lists sorted by
-- update_time now sort in memory: a user's own portfolios are few. Free space on each page
-- keeps updates of portfolios and positions HOT as they churn.

-- +goose Up
DROP INDEX portfolio.portfolios_update_time_idx;
ALTER TABLE portfolio.portfolios SET (fillfactor = 50);
ALTER TABLE portfolio.positions SET (fillfactor = 50);

-- +goose Down
ALTER TABLE portfolio.positions RESET (fillfactor);
ALTER TABLE portfolio.portfolios RESET (fillfactor);
CREATE INDEX portfolios_update_time_idx ON portfolio.portfolios (update_time, id);
