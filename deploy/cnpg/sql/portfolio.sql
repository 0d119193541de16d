-- The portfolio service's role and schema in database pgfleet, run once by CloudNativePG as
-- superuser right after initdb (spec.bootstrap.initdb.postInitApplicationSQLRefs).
-- deploy/local/bootstrap.sql does the same for `make run`: the role owns schema portfolio (its
-- migrations create their tables there) and reaches nothing else. LOGIN and the password come
-- from the Cluster's spec.managed.roles, which the operator keeps in sync with the role's
-- Secret from then on.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'portfolio') THEN
        CREATE ROLE portfolio NOLOGIN;
    END IF;
END
$$;
CREATE SCHEMA IF NOT EXISTS portfolio AUTHORIZATION portfolio;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE pgfleet FROM PUBLIC;
-- TEMPORARY too: COPY-then-merge ingestion and seeds stage rows in temp tables.
GRANT CONNECT, TEMPORARY ON DATABASE pgfleet TO portfolio;
