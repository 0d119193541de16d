-- bootstrap.sql: the database and one service's role and schema, idempotently (make run runs it
-- once per service, as an administrator, on every start). psql variables:
--   db        database name (pgfleet)
--   role      the service's role and schema name (stock, portfolio, interview)
--   password  the role's password (make run's dev default: the role name)
--
--   psql "$ADMIN_URL" -v db=pgfleet -v role=stock -v password=stock -f bootstrap.sql
--
-- Afterwards the role can connect to db, owns schema <role> (so its migrations create tables
-- there) and reaches nothing else: PUBLIC loses CONNECT/TEMP on the database and CREATE on
-- schema public, and schema <role> grants nothing to other roles.
\set ON_ERROR_STOP on
\set QUIET on

SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec

-- Same host, port, user and options; the database switches to :db.
\connect :db
SET client_min_messages = warning;

SELECT format('CREATE ROLE %I LOGIN', :'role')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
-- Every run: a changed <SVC>_DB_PASSWORD takes effect, and the role stays a plain login role.
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L',
              :'role', :'password') \gexec

SELECT format('CREATE SCHEMA IF NOT EXISTS %I AUTHORIZATION %I', :'role', :'role') \gexec

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
-- TEMPORARY too: COPY-then-merge ingestion and the demo seed stage rows in temp tables.
SELECT format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I', :'db', :'role') \gexec
