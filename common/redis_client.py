"""One way to connect to Redis for every service and the CLI: a single server or a Redis Cluster.

A cluster is configuration, not code: `REDIS_URL=redis+cluster://host:port,host:port/` (or
`rediss+cluster://` for TLS) gives redis-py's asyncio `RedisCluster`, seeded with every listed
node (one reachable node is enough; the client learns the rest and follows failovers by
itself). Any other URL (`redis://`, `rediss://`, `unix://`) gives the plain asyncio `Redis`.

Both answer the same commands; the code above them issues only commands that are valid on
both: every multi-key command and script touches the keys of one shard, which share one hash
tag (common/stream.py), and nothing selects a database other than 0 on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode

from common.settings import SettingsError

AnyRedis: TypeAlias = "Redis | RedisCluster"

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
DEFAULT_PORT = 6379


@dataclass(frozen=True)
class ClusterTarget:
    """What a `redis+cluster://` URL names: seed nodes and the credentials for all of them."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl: bool = False


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterTarget:
    """`redis+cluster://[user:password@]host[:port][,host[:port]...][/]` → ClusterTarget.

    urllib cannot split a comma-separated netloc into host and port, so the node list is
    parsed here; the rest (credentials, scheme) follows the usual URL rules.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in CLUSTER_SCHEMES:
        raise SettingsError(f"REDIS_URL: {scheme!r} is not a cluster scheme (redis+cluster or rediss+cluster)")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    if parts.path.strip("/") not in ("", "0"):
        raise SettingsError("REDIS_URL: a Redis Cluster has only database 0; leave the path empty")
    nodes = []
    for item in hosts.split(","):
        item = item.strip()
        if not item:
            continue
        host, port = _host_port(item)
        nodes.append((host, port))
    if not nodes:
        raise SettingsError("REDIS_URL: a redis+cluster:// URL needs at least one host:port")
    return ClusterTarget(tuple(nodes), username, password, CLUSTER_SCHEMES[scheme])


def _host_port(item: str) -> tuple[str, int]:
    if item.startswith("["):  # [ipv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = item.rpartition(":") if ":" in item else (item, "", "")
    if not port_text:
        return host, DEFAULT_PORT
    try:
        port = int(port_text)
    except ValueError:
        raise SettingsError(f"REDIS_URL: {item!r} has a port that is not a number") from None
    if not 0 < port < 65536:
        raise SettingsError(f"REDIS_URL: {item!r} has a port out of range")
    return host, port


def check_redis_url(url: str) -> None:
    """Raise SettingsError when REDIS_URL cannot be used (called by the settings classes)."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in CLUSTER_SCHEMES:
        parse_cluster_url(url)
    elif scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"REDIS_URL must start with redis://, rediss://, unix://, redis+cluster:// or rediss+cluster://, got {scheme or url!r}:"
        )


def connect(url: str, timeout: float, *, read_timeout: float | None = None, health_check_interval: int = 0) -> AnyRedis:
    """A client for `url`: RedisCluster for the cluster schemes, Redis otherwise.

    `timeout` bounds connecting and every call; `read_timeout` (default `timeout`) may be
    longer for a client that issues blocking reads (the writer's XREADGROUP BLOCK).
    """
    options: dict[str, Any] = {
        "socket_timeout": read_timeout if read_timeout is not None else timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": health_check_interval,
    }
    if not is_cluster_url(url):
        return Redis.from_url(url, **options)
    target = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username, password=target.password, ssl=target.ssl,
        # A failover moves whole slot ranges at once: refresh the map on the first MOVED
        # instead of patching one slot at a time.
        reinitialize_steps=1,
        **options,
    )


def is_cluster(redis: AnyRedis) -> bool:
    return isinstance(redis, RedisCluster)


async def route_to_key(redis: AnyRedis, key: str) -> dict[str, Any]:
    """Keyword arguments that send a keyless command (INFO, WAIT) to the server holding `key`:
    none for a single server; the key's master for a cluster (whose slot map is loaded first,
    and reloaded when a failure marked it stale)."""
    if not isinstance(redis, RedisCluster):
        return {}
    await redis.initialize()
    return {"target_nodes": redis.get_node_from_key(key)}


def out_of_memory(memory_info: dict[str, Any]) -> str | None:
    """Why a server refuses writes, from its INFO memory; None when it takes them. With
    `noeviction` (what the streams need: nothing unwritten may be evicted) a Redis at
    `maxmemory` refuses every write that adds memory ("OOM command not allowed")."""
    limit = int(memory_info.get("maxmemory") or 0)
    used = int(memory_info.get("used_memory") or 0)
    policy = memory_info.get("maxmemory_policy")
    policy = policy.decode() if isinstance(policy, bytes) else policy
    # A refused command's own bytes (its query buffer) leave used_memory with it, and so do
    # idle clients' buffers that Redis shrinks meanwhile (a writer holds one blocked reader per
    # signal), so "full" is within a margin of the limit: 2 %, at least 2 MiB.
    if limit and policy == "noeviction" and used >= limit - max(limit // 50, 2 << 20):
        return f"redis refuses writes: out of memory (used_memory {used} of maxmemory {limit}, policy noeviction)"
    return None


def describe(url: str) -> str:
    """Where `url` points, without its password: for logs and `observatory health`."""
    if is_cluster_url(url):
        target = parse_cluster_url(url)
        return "cluster " + ",".join(f"{host}:{port}" for host, port in target.nodes)
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    database = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or DEFAULT_PORT} (db {database})"
