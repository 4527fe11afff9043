"""Redis footprint: bytes of Redis memory per member after a publish (``INFO memory`` used_memory before
and after, on a server holding nothing else), and the publish rate beside Redis's own pipelined SET rate
measured with ``redis-benchmark`` on the same server in the same run, with values of a member record's
size (the most a publish could hope for: the same number of writes, nothing computed)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.procs import RedisServer
from benchmarks.report import Figure
from recsys.cache import Keys
from recsys.errors import ConfigurationError
from training.bundle import ServingBundle
from training.publish import publish

KEY_PREFIX = "lo"
BYTES_TARGET = 600
PIPELINE = 16


@dataclass(frozen=True)
class FootprintResult:
    figures: list[Figure]
    series: dict[str, Any]


def redis_benchmark_binary(server: RedisServer) -> str:
    """redis-benchmark next to the server's binary, else on PATH."""
    beside = Path(server.binary).with_name("redis-benchmark")
    found = str(beside) if beside.exists() else shutil.which("redis-benchmark")
    if not found:
        raise ConfigurationError("redis-benchmark is missing: install it (apt-get install redis-tools)")
    return found


def set_rate(server: RedisServer, requests: int, value_bytes: int, clients: int = 50) -> float:
    """SETs per second that ``redis-benchmark -t set -P 16`` reaches with values of ``value_bytes``."""
    command = [redis_benchmark_binary(server), "-h", "127.0.0.1", "-p", str(server.port), "-t", "set"]
    command += ["-P", str(PIPELINE), "-n", str(requests), "-r", str(requests), "-d", str(value_bytes)]
    command += ["-c", str(clients), "--csv"]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0].upper() == "SET"]
    if out.returncode != 0 or not rows:
        raise ConfigurationError(f"redis-benchmark failed ({out.returncode}): {out.stderr.strip() or out.stdout}")
    return float(rows[0][1])


def bench_footprint(server: RedisServer, bundle: ServingBundle, *, set_requests: int) -> FootprintResult:
    keys = Keys(KEY_PREFIX)
    server.flush()
    before = server.used_memory()
    client = server.client()
    try:
        result = publish(client, bundle, keys=keys)
        one = keys.member(result.version, str(bundle.member_ids[0]))
        record_bytes = int(client.strlen(one))
        key_usage = int(client.memory_usage(one) or 0)
    finally:
        client.close()
    after = server.used_memory()
    per_member = (after - before) / max(result.members, 1)
    publish_rate = result.members / result.seconds if result.seconds else 0.0
    server.flush()
    sets = set_rate(server, set_requests, record_bytes)
    server.flush()
    figures = [
        Figure(
            name="redis.bytes_per_member",
            value=per_member,
            unit="B/member",
            label=f"Redis used_memory after publish per member ({result.members:,} members, "
            f"{int(bundle.n_factors)} factors, 100 candidates)",
            baseline="member record (value bytes)",
            baseline_value=float(record_bytes),
            target=f"<= {BYTES_TARGET} B",
            meets=per_member <= BYTES_TARGET,
            lower_is_better=True,
        ),
        Figure(
            name="redis.publish_rate",
            value=publish_rate,
            unit="members/s",
            label="publish: members scored, packed and written per second",
            baseline=f"redis-benchmark SET -P {PIPELINE}",
            baseline_value=sets,
        ),
    ]
    return FootprintResult(
        figures=figures,
        series={
            "members": result.members,
            "used_memory_before": before,
            "used_memory_after": after,
            "record_bytes": record_bytes,
            "memory_usage_one_key": key_usage,
            "publish_seconds": result.seconds,
            "publish_members_per_s": publish_rate,
            "redis_benchmark": {
                "command": f"-t set -P {PIPELINE} -c 50 -n {set_requests} -r {set_requests} -d {record_bytes}",
                "set_per_s": sets,
            },
        },
    )
