"""Database connections for the CLI, with errors a person can act on (and no passwords in them)."""

from __future__ import annotations

import psycopg
from psycopg import sql

from cli.errors import Failure


def describe(dsn: str) -> str:
    """host:port as user (database name), never the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "the configured DSN (it cannot be parsed)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)} as {info.get('user', '?')} (database {info.get('dbname', '?')})"


def reason(exc: psycopg.Error) -> str:
    """The server's or libpq's own words, first line, without the DSN libpq may repeat."""
    diag = getattr(exc, "diag", None)
    if diag is not None and diag.message_primary:
        return diag.message_primary
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def database_name(dsn: str) -> str:
    return str(psycopg.conninfo.conninfo_to_dict(dsn).get("dbname") or "?")


def connect(dsn: str, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, application_name="observatory-cli")
    except psycopg.OperationalError as exc:
        raise Failure(
            f"cannot connect to PostgreSQL at {describe(dsn)}: {reason(exc)}. "
            "Is it running, and is DATABASE_URL right? See docs/TROUBLESHOOTING.md"
        ) from None
    except psycopg.ProgrammingError as exc:
        raise Failure(f"DATABASE_URL is not a valid PostgreSQL DSN: {reason(exc)}") from None


def user_tables(conn: psycopg.Connection) -> list[str]:
    """Top-level tables of user schemas (partitions and extension-owned tables left out)."""
    rows = conn.execute(
        """SELECT format('%I.%I', n.nspname, c.relname)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
             AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
             AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'
             AND n.nspname NOT LIKE '\\_timescaledb%%' AND n.nspname NOT LIKE 'timescaledb%%'
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                             AND d.objid = c.oid AND d.deptype = 'e')
           ORDER BY 1"""
    ).fetchall()
    return [name for (name,) in rows]


def row_counts(conn: psycopg.Connection, tables: list[str], timeout_ms: int = 10_000) -> dict[str, int | None]:
    """Exact row counts; None for a table too big to count within the timeout."""
    counts: dict[str, int | None] = {}
    for table in tables:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(timeout_ms)))
                counts[table] = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()[0]  # type: ignore[index]
        except psycopg.errors.QueryCanceled:
            counts[table] = None
    return counts


def has_extension(conn: psycopg.Connection, name: str) -> str | None:
    """The installed version of an extension in this database, or None."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    return row[0] if row else None
