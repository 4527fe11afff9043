"""A real Redis Cluster (3 masters, no replicas) on free loopback ports, for the scale-out tests.

The slots are assigned and the nodes joined with the same CLUSTER commands ``redis-cli --cluster create``
sends, but polled every 20 ms instead of its one-second sleeps, so a cluster is up in well under a second.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

SLOTS = 16384
BUS_OFFSET = 10000  # Redis Cluster's bus listens on port + 10000
START_TIMEOUT_S = 10.0


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (scripts/ensure-services.sh installs it with apt-get)"
    return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(avoid: set[int] | None = None, *, with_bus: bool = False) -> int:
    """A loopback port nobody listens on (and, ``with_bus``, whose cluster bus port is free too)."""
    avoid = avoid or set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port in avoid or (with_bus and (port + BUS_OFFSET > 65535 or not _port_free(port + BUS_OFFSET))):
            continue
        return port
    raise RuntimeError("no free loopback port found")


@dataclass
class RedisCluster:
    """A running cluster: its nodes' ports, processes and data folder."""

    root: Path
    ports: list[int] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Entry point for ``redis.cluster.RedisCluster.from_url`` (any node; the client discovers the rest)."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def node(self, port: int) -> redis.Redis:
        """An admin client of one node that fails at once instead of retrying (a node may be starting or gone)."""
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0))

    def start(self, masters: int = 3) -> None:
        for _ in range(masters):
            self._spawn()
        self._join()

    def _spawn(self) -> None:
        """Start one node on a free port and wait until it answers; another port if that one was taken meanwhile."""
        for _ in range(5):
            port = free_port(set(self.ports), with_bus=True)
            folder = self.root / str(port)
            folder.mkdir(parents=True)
            args = [
                "redis-server",
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "5000",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(folder),
                "--logfile", "redis.log",
            ]  # fmt: skip
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            if self._answers(port, proc):
                self.ports.append(port)
                self.processes.append(proc)
                return
            proc.kill()
            proc.wait(timeout=5)
            log = self._log(port)
            shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"redis-server would not start under {self.root}: {log}")

    def _answers(self, port: int, proc: subprocess.Popen[bytes]) -> bool:
        """True once our node answers PING; False when it exited or something else holds the port."""
        deadline = time.monotonic() + START_TIMEOUT_S
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, retry=Retry(NoBackoff(), 0))
        try:
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    return bool(client.ping())
                except redis.ConnectionError:
                    time.sleep(0.02)  # not listening yet
                except redis.RedisError:
                    return False  # a listener that is not a Redis of ours
            return False
        finally:
            client.close()

    def _join(self) -> None:
        """Split the slots evenly, give each node its own config epoch, MEET every pair (no waiting on gossip),
        then wait until every node says ``cluster_state:ok`` (a new master waits 2 s before it does)."""
        n = len(self.ports)
        for i, port in enumerate(self.ports):
            lo, hi = i * SLOTS // n, (i + 1) * SLOTS // n - 1
            client = self.node(port)
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
            client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
            client.close()
        for i, port in enumerate(self.ports):
            client = self.node(port)
            for other in self.ports[i + 1 :]:
                client.execute_command("CLUSTER", "MEET", "127.0.0.1", other)
            client.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(self._ready(port, n) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster on ports {self.ports} did not reach cluster_state:ok")
            time.sleep(0.02)

    def _ready(self, port: int, nodes: int) -> bool:
        client = self.node(port)
        try:
            info = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
        return (
            fields.get("cluster_state") == "ok"
            and fields.get("cluster_known_nodes") == str(nodes)
            and fields.get("cluster_slots_ok") == str(SLOTS)
        )

    def _log(self, port: int) -> str:
        path = self.root / str(port) / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        """Stop every node (SIGTERM: nothing is saved with ``--save ''``; SIGKILL one that lingers) and remove
        the data folders."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def redis_cluster(masters: int = 3, parent: Path | None = None) -> Iterator[RedisCluster]:
    """Start a cluster of ``masters`` nodes, yield it, and stop it (even when starting failed half-way)."""
    root = Path(tempfile.mkdtemp(prefix="redis-cluster-", dir=parent))
    cluster = RedisCluster(root)
    try:
        cluster.start(masters)
        yield cluster
    finally:
        cluster.stop()
