"""Fixtures for the real PostgreSQL and Redis of this machine.

Each test session gets its own database (created, migrated, dropped) and its own Redis
key prefix (deleted afterwards). TEST_ADMIN_DSN points at the server to use.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import redis as redis_sync
from psycopg import sql

from storage.migrations import Migrator
from tests.infra import PrivatePostgres, PrivateRedis, PrivateRedisCluster

ADMIN_DSN = os.environ.get("TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class Database:
    name: str
    admin_dsn: str
    app_dsn: str
    readonly_dsn: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=True)


def _dsn(server: str, user: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(server, user=user, dbname=dbname)


def create_database(prefix: str = "obs_test", server: str = ADMIN_DSN) -> Database:
    """A new migrated database on `server` (an admin DSN; by default TEST_ADMIN_DSN's)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin = psycopg.conninfo.make_conninfo(server, dbname=name)
    with psycopg.connect(admin) as conn, Migrator(conn) as migrator:
        migrator.up()
    return Database(name, admin, _dsn(server, "observatory_app", name), _dsn(server, "observatory_readonly", name))


def drop_database(name: str, server: str = ADMIN_DSN) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def database() -> Iterator[Database]:
    db = create_database()
    yield db
    drop_database(db.name)


@pytest.fixture
def fresh_database() -> Iterator[Database]:
    """A database of its own for a test that must not see other tests' rows."""
    db = create_database()
    yield db
    drop_database(db.name)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = new_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


def new_redis_prefix() -> str:
    return f"obs-test:{uuid.uuid4().hex[:12]}:"


def delete_redis_prefix(prefix: str) -> None:
    """Remove every key a test run made under its own prefix."""
    client = redis_sync.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def redis_client() -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL server of the test's own, which it may stop, kill and restart."""
    server = PrivatePostgres().init().start()
    yield server
    server.remove()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis server of the test's own (no persistence), which it may stop and restart."""
    server = PrivateRedis(tmp_path / "private-redis").start()
    yield server
    server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[PrivateRedisCluster]:
    """A Redis Cluster of the test's own: 3 masters, no replicas."""
    cluster = PrivateRedisCluster(tmp_path / "redis-cluster", masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_with_replicas(tmp_path: Path) -> Iterator[PrivateRedisCluster]:
    """A Redis Cluster of the test's own for failover: 3 masters, each with one replica."""
    cluster = PrivateRedisCluster(tmp_path / "redis-cluster", masters=3, replicas_per_master=1).start()
    yield cluster
    cluster.stop()
