"""Private PostgreSQL and Redis servers for tests that kill or restart them.

The shared servers on 5432/6379 are never touched by such tests: each gets its own data
directory under a tmp dir and a free port. The fixtures skip (with the reason) when the
server binaries are not installed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis as redis_sync

from tests.support import free_port, wait_for

PG_BIN = Path(os.environ.get("TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(args: list[str]) -> list[str]:
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class PrivateRedis:
    """appendfsync None runs without AOF (nothing survives a restart), else AOF with that
    fsync policy ("always" or "everysec")."""

    directory: Path
    appendfsync: str | None = None
    extra: tuple[str, ...] = ()  # more redis-server arguments, e.g. ("--maxmemory", "25mb")
    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "PrivateRedis":
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        persistence = ["--appendonly", "no"] if self.appendfsync is None else [
            "--appendonly", "yes", "--appendfsync", self.appendfsync]
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory), *persistence,
             "--save", "", "--daemonize", "no", "--logfile", str(self.directory / "redis.log"), *self.extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis_sync.Redis(port=self.port, socket_timeout=1)
        wait_for(client.ping, 20, 0.05, "private redis to answer")
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: what a crash or an OOM kill does; only what AOF fsynced survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)


@dataclass
class PrivatePostgres:
    """A throwaway cluster. Its directory is made under /tmp (not pytest's tmp_path, which
    the postgres user cannot enter) and removed by `remove()`."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="obs-test-pg-")))
    port: int = 0
    started: bool = False
    settings: tuple[str, ...] = ()  # extra `name=value` server settings, given as -c at start

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    dsn = admin_dsn

    def init(self) -> "PrivatePostgres":
        if not (PG_BIN / "initdb").exists():
            pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            pytest.skip("needs runuser to run initdb/pg_ctl as the postgres user")
        self._prepare_directory()
        done = subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(self.directory / "data"), "-U", "postgres",
                                            "--auth=trust", "-E", "UTF8", "--no-sync"]),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        return self

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)

    def _prepare_directory(self) -> None:
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
            os.chmod(self.directory, 0o700)

    def base_backup(self, *settings: str) -> "PrivatePostgres":
        """A streaming replica of this server: pg_basebackup -R into a new directory (standby.signal
        and primary_conninfo written by it), not started yet."""
        replica = PrivatePostgres(settings=settings)
        replica._prepare_directory()
        done = subprocess.run(_as_postgres([
            str(PG_BIN / "pg_basebackup"), "-D", str(replica.directory / "data"), "-h", "127.0.0.1",
            "-p", str(self.port), "-U", "postgres", "-X", "stream", "-R", "--no-sync",
        ]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode:
            raise RuntimeError(f"pg_basebackup failed: {done.stderr}")
        return replica

    @property
    def log_path(self) -> Path:
        return self.directory / "postgres.log"

    def start(self) -> "PrivatePostgres":
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} -c fsync=off"
        options += "".join(f" -c {setting}" for setting in self.settings)
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-o", options,
                                     "-l", str(self.log_path), "-w", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        self.started = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.started:
            subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.directory / "data"), "-m", mode,
                                         "-w", "stop"]), check=False, stdout=subprocess.DEVNULL)
            self.started = False

    def restart(self, down_for: float = 0.0) -> None:
        self.stop("immediate")
        time.sleep(down_for)  # a real outage lasts a while; there is no condition to await here
        self.start()


@dataclass
class ClusterNode:
    port: int
    bus_port: int
    directory: Path
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis_sync.Redis:
        return redis_sync.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self, binary: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
             "--cluster-config-file", str(self.directory / "nodes.conf"),
             # A short node timeout makes failover take a couple of seconds instead of fifteen.
             "--cluster-node-timeout", str(PrivateRedisCluster.NODE_TIMEOUT_MS),
             "--appendonly", "no", "--save", "", "--daemonize", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@dataclass
class PrivateRedisCluster:
    """A real Redis Cluster of the test's own: `masters` masters, each with `replicas_per_master`
    replicas, on free ports in a temp dir, made by `redis-cli --cluster create` (so slots are
    split evenly, as an operator's cluster is). `stop()` ends every node and removes the dir."""

    directory: Path
    masters: int = 3
    replicas_per_master: int = 0
    nodes: list[ClusterNode] = field(default_factory=list)

    NODE_TIMEOUT_MS = 1000

    @property
    def url(self) -> str:
        """The configuration a service is given: every node as a seed."""
        return "redis+cluster://" + ",".join(node.address for node in self.nodes) + "/"

    @property
    def seed(self) -> ClusterNode:
        return next(node for node in self.nodes if node.alive())

    def start(self) -> "PrivateRedisCluster":
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.skip("redis-server / redis-cli are not installed")
        count = self.masters * (1 + self.replicas_per_master)
        ports: set[int] = set()
        while len(ports) < 2 * count:
            ports.add(free_port())
        pairs = sorted(ports)
        for i in range(count):
            node = ClusterNode(pairs[2 * i], pairs[2 * i + 1], self.directory / f"node-{i}")
            node.start(binary)
            self.nodes.append(node)
        for node in self.nodes:
            client = node.client()
            wait_for(client.ping, 20, 0.05, f"cluster node {node.address} to answer")
            client.close()
        done = subprocess.run(
            [cli, "--cluster", "create", *(node.address for node in self.nodes),
             "--cluster-replicas", str(self.replicas_per_master), "--cluster-yes"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60,
        )
        if done.returncode:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}")
        self.wait_healthy()
        return self

    def cluster_info(self, node: ClusterNode) -> dict[str, str]:
        client = node.client()
        try:
            text = client.execute_command("CLUSTER INFO")
        finally:
            client.close()
        if isinstance(text, bytes):
            text = text.decode()
        if isinstance(text, dict):
            return {str(k): str(v) for k, v in text.items()}
        return dict(line.split(":", 1) for line in text.strip().splitlines() if ":" in line)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Every live node says cluster_state:ok and agrees that all slots are served, and every
        live replica has synced with its master (a replica that never synced does not fail over)."""
        def healthy() -> bool:
            for node in self.nodes:
                if not node.alive():
                    continue
                info = self.cluster_info(node)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                client = node.client()
                try:
                    replication = client.info("replication")
                finally:
                    client.close()
                if replication.get("role") == "slave" and replication.get("master_link_status") != "up":
                    return False
            return True
        wait_for(healthy, timeout, 0.1, "cluster_state:ok on every node")

    def roles(self) -> dict[int, str]:
        """port → "master" / "slave", as each live node says of itself."""
        roles = {}
        for node in self.nodes:
            if node.alive():
                client = node.client()
                try:
                    roles[node.port] = client.execute_command("ROLE")[0].decode()
                finally:
                    client.close()
        return roles

    def master_of_slot(self, slot: int) -> ClusterNode:
        client = self.seed.client()
        try:
            shards = client.execute_command("CLUSTER SLOTS")
        finally:
            client.close()
        for start, end, master, *_ in shards:
            if start <= slot <= end:
                port = int(master[1])
                return next(node for node in self.nodes if node.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def master_of_key(self, key: str) -> ClusterNode:
        client = self.seed.client()
        try:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        finally:
            client.close()
        return self.master_of_slot(slot)

    def wait_promoted(self, dead: ClusterNode, slot: int, timeout: float = 30.0) -> ClusterNode:
        """After `dead` was killed: the replica that took its slot, once the cluster is whole."""
        def promoted() -> ClusterNode | None:
            node = self.master_of_slot(slot)
            return node if node is not dead and node.alive() else None
        node = wait_for(promoted, timeout, 0.1, f"a replica to take slot {slot} over")
        self.wait_healthy(timeout)
        return node

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        client = master.client()
        try:
            replicas = client.info("replication")
        finally:
            client.close()
        port = int(replicas["slave0"]["port"])
        return next(node for node in self.nodes if node.port == port)

    def restart(self, node: ClusterNode) -> ClusterNode:
        """Start a killed node again on its port and config: it rejoins the cluster (a master
        whose slots were taken over comes back as a replica of the one that took them)."""
        binary = shutil.which("redis-server")
        assert binary is not None and not node.alive()
        node.start(binary)
        client = node.client()
        wait_for(client.ping, 20, 0.05, f"restarted node {node.address} to answer")
        client.close()
        self.wait_healthy()
        return node

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.proc is not None
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(10)
                except subprocess.TimeoutExpired:
                    node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)
