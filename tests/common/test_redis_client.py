"""REDIS_URL forms: one server or a Redis Cluster, with clear errors for what cannot work."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis, RedisCluster

from common.redis_client import connect, describe, parse_cluster_url
from common.settings import SettingsError, load
from collector.settings import CollectorSettings


def test_cluster_url_lists_every_seed_node_with_credentials() -> None:
    target = parse_cluster_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,[::1]:7001,redis-2/")
    assert target.nodes == (("10.0.0.1", 7000), ("::1", 7001), ("redis-2", 6379))
    assert (target.username, target.password, target.ssl) == ("app", "p@ss", True)


@pytest.mark.parametrize("url, message", [
    ("redis+cluster:///", "at least one host:port"),
    ("redis+cluster://h:1/3", "only database 0"),
    ("redis+cluster://h:notaport/", "not a number"),
    ("redis+cluster://h:70000/", "out of range"),
    ("http://h:1/", "REDIS_URL must start with"),
])
def test_unusable_urls_are_refused_when_settings_load(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load(CollectorSettings, {"REDIS_URL": url})


async def test_the_scheme_alone_chooses_the_client() -> None:
    single = connect("redis://127.0.0.1:6379/0", 1.0)
    cluster = connect("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/", 1.0)
    try:
        assert type(single) is Redis and type(cluster) is RedisCluster
    finally:
        await single.aclose()
        await cluster.aclose()


def test_descriptions_leave_the_password_out() -> None:
    assert describe("redis+cluster://u:secret@a:1,b:2/") == "cluster a:1,b:2"
    assert "secret" not in describe("redis://u:secret@h:6380/2") and "h:6380 (db 2)" == describe("redis://u:secret@h:6380/2")
