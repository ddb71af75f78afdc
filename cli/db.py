"""Database connections for the CLI, with errors a person can act on."""

from __future__ import annotations

import psycopg
from psycopg import sql

from cli.errors import Failure


def describe(dsn: str) -> str:
    """host:port as user/database, never the password."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)} as {info.get('user', '?')} (database {info.get('dbname', '?')})"


def connect(dsn: str, autocommit: bool = True) -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10, application_name="observatory-cli")
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else "connection failed"
        raise Failure(
            f"cannot connect to PostgreSQL at {describe(dsn)}: {reason}. "
            "Is it running, and is DATABASE_URL right? See docs/TROUBLESHOOTING.md"
        ) from None


def ensure_database(dsn: str) -> bool:
    """Create the DSN's database when it does not exist yet; True when it was created."""
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    name = info.get("dbname")
    if not name:
        return False
    maintenance = psycopg.conninfo.make_conninfo(dsn, dbname="postgres")
    with connect(maintenance) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True
