-- First start of the database volume only (docker-entrypoint-initdb.d), as postgres in
-- llm_observatory, which the image has created (POSTGRES_DB).
--
-- The roles the services log in as. Migration 0001 creates them too when absent; creating
-- them here lets the one-shot `migrate` service (`observatory migrate up`) find them and
-- set their passwords from DATABASE_APP_URL / DATABASE_READONLY_URL on every start, which
-- is also how a password is changed (docs/OPERATIONS.md). No password is set here, so
-- none is kept in this file or in the database's environment.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_app') THEN
        CREATE ROLE observatory_app LOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'observatory_readonly') THEN
        CREATE ROLE observatory_readonly LOGIN;
    END IF;
END
$$;
ALTER ROLE observatory_readonly SET default_transaction_read_only = on;

-- The image installs the extension in POSTGRES_DB already; this keeps that true if the
-- image's own script changes.
CREATE EXTENSION IF NOT EXISTS timescaledb;
