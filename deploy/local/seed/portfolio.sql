-- seed/portfolio.sql: demo data for schema "portfolio", loaded once by make run (tools/run) as the
-- portfolio role (after the service has migrated its schema):
--
--   psql "postgres://portfolio:portfolio@127.0.0.1:5433/pgfleet?sslmode=disable" -f deploy/local/seed/portfolio.sql
--
-- What it loads, in one transaction (all or nothing; a no-op when portfolio.users has rows):
--   * user demo@pgfleet.dev, "Demo User";
--   * its portfolio "Demo" in USD with 100000 cash, recorded as the service records a deposit:
--     the cash column and one CASH_MOVEMENT_KIND_DEPOSIT ledger row (request_id "seed-deposit")
--     whose request_hash is the one the service computes for a deposit of "100000", so cash
--     equals the ledger, and Deposit {"amount":"100000","request_id":"seed-deposit"} on this
--     portfolio is a repeat of it (it returns this movement and changes nothing).
-- No positions and no trades: positions must equal the sum of trades, and trades are priced by
-- the stock service; make run prints an ExecuteTrade that buys through the service.
\set ON_ERROR_STOP on
\set QUIET on

SELECT EXISTS (SELECT FROM portfolio.users) AS already_seeded \gset
\if :already_seeded
\echo 'already there (portfolio.users has rows), not loaded again'
\quit
\endif

BEGIN;
SET LOCAL client_min_messages = warning;

WITH u AS (
    INSERT INTO portfolio.users (email, display_name)
    VALUES ('demo@pgfleet.dev', 'Demo User')
    RETURNING id
), p AS (
    INSERT INTO portfolio.portfolios (user_id, name, currency, cash)
    SELECT id, 'Demo', 'USD', 100000 FROM u
    RETURNING id, user_id
), m AS (
    -- requestHash(kind, amount) in services/portfolio/internal/api: sha256 of the parts joined by NUL.
    INSERT INTO portfolio.cash_movements (portfolio_id, kind, amount, request_id, request_hash)
    SELECT id, 'CASH_MOVEMENT_KIND_DEPOSIT', 100000, 'seed-deposit',
           sha256(convert_to('CASH_MOVEMENT_KIND_DEPOSIT', 'UTF8') || '\x00'::bytea || convert_to('100000', 'UTF8'))
    FROM p
    RETURNING portfolio_id
)
SELECT format('loaded user demo@pgfleet.dev (id %s) and its portfolio "Demo" (id %s) with 100000 USD deposited',
              p.user_id, p.id) AS summary
FROM p JOIN m ON m.portfolio_id = p.id \gset

-- The invariant the service keeps: cash is the sum of the ledger (an error rolls all back).
DO $$
BEGIN
    IF EXISTS (SELECT FROM portfolio.portfolios p
               WHERE p.cash <> (SELECT coalesce(sum(m.amount), 0) FROM portfolio.cash_movements m
                                WHERE m.portfolio_id = p.id)) THEN
        RAISE EXCEPTION 'seed/portfolio.sql: a portfolio''s cash differs from its ledger';
    END IF;
END
$$;

COMMIT;

ANALYZE portfolio.users, portfolio.portfolios, portfolio.cash_movements;
\echo :summary
