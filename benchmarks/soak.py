"""Soak run: the API under a fixed request rate for minutes, a publish every two minutes and one Redis
restart (SIGKILL, then start again on the same port) in the middle.

Reports requests served, errors outside the degraded window (target 0), degraded answers, events
acknowledged versus stored in the stream (must be equal: a refused event is kept by the client and sent
again) and the API's memory at start and end. Part of ``make bench`` (section ``soak`` of
``python -m benchmarks.run``, ``--soak-minutes``); on its own, ``python -m benchmarks.soak [--minutes 10]
[--rps N]`` writes ``benchmarks/results/soak.json``. Without ``--rps`` the rate is half the capacity
measured first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis
import uvloop

from benchmarks.procs import free_port, python, redis_server_binary, rss_bytes, stop, wait_port
from benchmarks.report import Figure
from benchmarks.serving import run_wrk
from recsys.access import Scope, key_entry
from recsys.cache import Keys
from recsys.errors import ConfigurationError
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import publish

RESULTS = Path(__file__).parent / "results" / "soak.json"
API_KEY = "soak-key"
PUBLISH_EVERY_S = 120.0
REDIS_DOWN_S = 5.0
EVENT_SHARE = 0.1  # share of requests that post one event
CAPACITY_S = 10.0
CAPACITY_CONCURRENCY = 32
CONNECTIONS = 64  # connections the fixed-rate load is sent over
REQUEST_TIMEOUT_S = 10.0
LATE_S = 0.1
PREFIX = "soak"
MEMBERS = 20_000  # members of the synthetic bundles published (tests.support.serving_bundle)
RSS_GROWTH_TARGET = 1.1  # API resident memory at the end at most this many times that at the start


@dataclass(frozen=True)
class SoakSetup:
    minutes: float = 10.0
    rps: float | None = None  # None: half the capacity measured first
    members: int = MEMBERS
    capacity_s: float = CAPACITY_S
    redis_down_s: float = REDIS_DOWN_S
    publish_every_s: float | None = PUBLISH_EVERY_S  # None: no publishes during the run

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SoakResult:
    figures: list[Figure]
    series: dict[str, Any]


class Redis:
    """A redis-server on a fixed port with an append-only file fsynced per write, killed and restarted."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.root), "--protected-mode", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.process)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@dataclass
class Tally:
    requests: int = 0
    offers_served: int = 0
    degraded: int = 0
    events_acknowledged: int = 0
    event_resends: int = 0  # events sent again after a refusal (the client keeps what was not acknowledged)
    errors_outside_window: int = 0
    errors_in_window: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0  # how long the load ran
    latencies_ms: list[float] = field(default_factory=list)  # of the offers answered
    late_starts: int = 0  # requests sent more than LATE_S after their time (the load generator fell behind)


@dataclass
class Window:
    """When Redis was down, widened to the moment the API reported ready again."""

    down_at: float | None = None
    ready_at: float | None = None

    def holds(self, at: float) -> bool:
        return self.down_at is not None and at >= self.down_at and (self.ready_at is None or at <= self.ready_at)


def _member(i: int) -> str:
    """Member ids as the generator numbers them (``benchmarks/wrk/members.lua`` draws the same)."""
    return f"M{i + 1:07d}"


def _bundle(members: int, seed: int) -> ServingBundle:
    """A synthetic bundle (``tests.support.serving_bundle``) with the generator's member ids."""
    bundle = make_bundle(n_members=members, seed=seed)[0]
    ids = np.array([_member(i) for i in range(members)])
    return dataclasses.replace(bundle, member_ids=ids, members=bundle.members.assign(member_id=ids))


def _event(members: int, rng: np.random.Generator) -> dict[str, Any]:
    return {
        "event_id": uuid.uuid4().hex,
        "member_id": _member(int(rng.integers(members))),
        "offer_id": f"o{int(rng.integers(30)):03d}",
        "kind": "impression",
        "channel": "app",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def _capacity(port: int, members: int, seconds: float) -> tuple[float, str]:
    """Offers answered per second at ``CAPACITY_CONCURRENCY`` connections, by wrk when installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return asyncio.run(_capacity_python(f"http://127.0.0.1:{port}", members, seconds)), "python closed loop"
    path = "/v1/members/%s/offers"
    run = run_wrk(wrk, port, path, members, API_KEY, CAPACITY_CONCURRENCY, seconds, threads=2)
    if run.errors:
        raise ConfigurationError(f"{run.errors} errors while measuring capacity")
    return run.requests / run.seconds, "wrk"


async def _capacity_python(base: str, members: int, seconds: float) -> float:
    """Offers answered per second by a closed loop of ``CAPACITY_CONCURRENCY`` clients."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient, seed: int) -> None:
        nonlocal done
        rng = np.random.default_rng(seed)
        while time.perf_counter() < deadline:
            await client.get(f"/v1/members/{_member(int(rng.integers(members)))}/offers")
            done += 1

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": API_KEY}, timeout=10) as client:
        await asyncio.gather(*(worker(client, i) for i in range(CAPACITY_CONCURRENCY)))
    return done / (time.perf_counter() - started)


class _Connection:
    """One keep-alive HTTP/1.1 connection spoken by hand: a fixed-rate load costs the generator little."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, method: str, path: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"\r\n" + body)
        try:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT_S)
            lines = raw.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
            payload = await reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        if headers.get("connection") == "close":
            self.close()
        return int(lines[0].split()[1]), headers, payload

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def _load(
    port: int, members: int, rps: float, seconds: float, window: Window, tally: Tally
) -> list[dict[str, Any]]:
    """Requests at ``rps`` for ``seconds`` (a scheduler queues each at its time, ``CONNECTIONS`` workers
    send them); returns the events still refused at the end (the client keeps what was not acknowledged)."""
    rng = np.random.default_rng(7)
    pending: list[dict[str, Any]] = []
    jobs: asyncio.Queue[tuple[float, dict[str, Any] | None, int] | None] = asyncio.Queue()

    def record(
        status: int | None, headers: dict[str, str], payload: bytes, event: dict[str, Any] | None, at: float
    ) -> None:
        tally.requests += 1
        tally.statuses[str(status or "connection_error")] += 1
        if status == 200:
            tally.offers_served += 1
            tally.degraded += "x-offers-degraded" in headers
        elif status == 202 and event is not None:
            tally.events_acknowledged += int(json.loads(payload)["accepted"])
        else:
            if event is not None:
                pending.append(event)  # not acknowledged: the client keeps it and sends it again
            if window.holds(at) or window.holds(time.monotonic()):
                tally.errors_in_window += 1
            else:
                tally.errors_outside_window += 1

    async def worker() -> None:
        connection = _Connection(port)
        while (job := await jobs.get()) is not None:
            due, event, member = job
            at = time.monotonic()
            tally.late_starts += at - due > LATE_S
            try:
                if event is None:
                    status, headers, payload = await connection.send("GET", f"/v1/members/{_member(member)}/offers")
                else:
                    status, headers, payload = await connection.send("POST", "/v1/events", _events_body(event))
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                status, headers, payload = None, {}, b""
            record(status, headers, payload, event, at)
            if event is None and status == 200:
                tally.latencies_ms.append((time.monotonic() - at) * 1000)
        connection.close()

    workers = [asyncio.create_task(worker()) for _ in range(CONNECTIONS)]
    start = time.monotonic()
    n = 0
    while (due := start + n / rps) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        posting = rng.random() < EVENT_SHARE
        if posting and pending and not window.holds(time.monotonic()):
            event: dict[str, Any] | None = pending.pop(0)
            tally.event_resends += 1
        else:
            event = _event(members, rng) if posting else None
        jobs.put_nowait((due, event, int(rng.integers(members))))
        n += 1
    for _ in workers:
        jobs.put_nowait(None)
    await asyncio.gather(*workers)
    tally.seconds = time.monotonic() - start
    connection = _Connection(port)
    for event in list(pending):  # Redis is back: what was refused is sent again until acknowledged
        status, _, payload = await connection.send("POST", "/v1/events", _events_body(event))
        if status == 202:
            tally.events_acknowledged += int(json.loads(payload)["accepted"])
            tally.event_resends += 1
            pending.remove(event)
    connection.close()
    return pending


def _events_body(event: dict[str, Any]) -> bytes:
    return json.dumps({"events": [event]}).encode()


async def _faults(
    server: Redis,
    base: str,
    setup: SoakSetup,
    window: Window,
    publishes: list[dict[str, Any]],
) -> None:
    """A publish every ``setup.publish_every_s`` (two bundles in turn) and one Redis kill and restart half way."""
    loop_start = time.monotonic()
    restart_at = loop_start + setup.minutes * 30
    every = setup.publish_every_s
    next_publish = loop_start + every if every else float("inf")
    end = loop_start + setup.minutes * 60
    while time.monotonic() < end:
        now = time.monotonic()
        if window.down_at is None and now >= restart_at:
            server.kill()
            window.down_at = time.monotonic()
            await asyncio.sleep(setup.redis_down_s)
            server.start()
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                while (await http.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.05)
            window.ready_at = time.monotonic()
        elif now >= next_publish and every:
            next_publish += every
            began = time.monotonic()
            seed = 1 + len(publishes) % 2
            child = await asyncio.create_subprocess_exec(
                python(), "-m", "benchmarks.soak", "--publish-seed", str(seed), "--publish-to", server.url,
                "--publish-members", str(setup.members), stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await child.communicate()
            publishes.append(
                {"at_s": round(began - loop_start, 1), "seconds": round(time.monotonic() - began, 1)}
                | ({"version": out.decode().strip()} if child.returncode == 0 else {"failed": child.returncode})
            )
        await asyncio.sleep(0.2)


def _publish_one(url: str, seed: int, members: int) -> None:
    """The publish the soak runs every two minutes, in a process of its own (as ``offers publish`` runs)."""
    client = redis.Redis.from_url(url)
    try:
        print(publish(client, _bundle(members, seed), keys=Keys(PREFIX)).version)
    finally:
        client.close()


def soak(setup: SoakSetup) -> dict[str, Any]:
    """Runs the soak of ``setup`` on a redis-server and an API of its own; returns its figures (JSON)."""
    minutes = setup.minutes
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        server = Redis(Path(tmp))
        server.start()
        api: subprocess.Popen[bytes] | None = None
        try:
            keys = Keys(PREFIX)
            members = setup.members
            store = redis.Redis.from_url(server.url)
            publish(store, _bundle(members, 0), keys=keys)
            port = free_port()
            env = {
                **os.environ,
                "OPENBLAS_NUM_THREADS": "1",
                "REDIS_URL": server.url,
                "OFFERS_KEY_PREFIX": keys.prefix,
                "OFFERS_API_KEYS": json.dumps(key_entry(API_KEY, "soak", [Scope.ADMIN])),
                "OFFERS_RATE_PER_S": "0",
            }
            command = [python(), "-m", "uvicorn", "serving.app:create_app", "--factory", "--port", str(port)]
            command += ["--host", "127.0.0.1", "--no-access-log", "--log-level", "warning", "--loop", "uvloop"]
            api = subprocess.Popen(command, env=env)
            wait_port(port, api)
            base = f"http://127.0.0.1:{port}"
            capacity, measured_by = _capacity(port, members, setup.capacity_s)
            rate = setup.rps or capacity / 2
            rss_start = rss_bytes(api.pid)
            tally, window, publishes = Tally(), Window(), list[dict[str, Any]]()

            async def run() -> list[dict[str, Any]]:
                faults = asyncio.create_task(_faults(server, base, setup, window, publishes))
                left = await _load(port, members, rate, minutes * 60, window, tally)
                faults.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await faults
                return left

            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                left = runner.run(run())
            rss_end = rss_bytes(api.pid)
            stored = int(store.xlen(keys.events_stream))
            store.close()
        finally:
            if api is not None:
                stop(api)
            server.kill()
    assert window.down_at is not None
    return {
        "minutes": minutes,
        "rate_rps": round(rate, 1),
        "capacity_rps": round(capacity, 1),
        "capacity_measured_by": measured_by,
        "achieved_rps": round(tally.requests / tally.seconds, 1),
        "members": members,
        "requests": tally.requests,
        "offers_served": tally.offers_served,
        "degraded_answers": tally.degraded,
        "offers_p50_ms": round(float(np.percentile(tally.latencies_ms, 50)), 2),
        "offers_p99_ms": round(float(np.percentile(tally.latencies_ms, 99)), 2),
        "errors_outside_degraded_window": tally.errors_outside_window,
        "refusals_in_degraded_window": tally.errors_in_window,
        "degraded_window_s": round((window.ready_at or window.down_at) - window.down_at, 2),
        "redis_down_s": setup.redis_down_s,
        "events_acknowledged": tally.events_acknowledged,
        "events_stored": stored,
        "events_still_refused": len(left),
        "event_resends": tally.event_resends,
        "late_starts": tally.late_starts,
        "statuses": dict(tally.statuses),
        "publishes": publishes,
        "api_rss_start_mib": round(rss_start / 2**20, 1),
        "api_rss_end_mib": round(rss_end / 2**20, 1),
    }


def bench_soak(setup: SoakSetup, log: Callable[[str], None] = print) -> SoakResult:
    """The soak as ``make bench``'s section: its figures (targets: no error outside the degraded window,
    every acknowledged event stored, memory flat) and the whole result as the section's series."""
    log(f"soak: {setup.minutes:g} min, one Redis restart half way ...")
    found = soak(setup)
    log(
        f"soak: {found['requests']:,} requests at {found['achieved_rps']:,.0f} req/s, "
        f"{found['errors_outside_degraded_window']} errors outside the degraded window, "
        f"events {found['events_acknowledged']:,} acknowledged / {found['events_stored']:,} stored"
    )
    run = f"{setup.minutes:g} min at half the capacity"
    figures = [
        Figure(
            name="soak.requests",
            value=float(found["requests"]),
            unit="requests",
            label=f"sent over {run} ({found['offers_served']:,} offers answered)",
        ),
        Figure(
            name="soak.rate",
            value=float(found["achieved_rps"]),
            unit="req/s",
            label=f"achieved (scheduled {found['rate_rps']:,.1f})",
            baseline=f"offers capacity ({found['capacity_measured_by']}, c={CAPACITY_CONCURRENCY})",
            baseline_value=float(found["capacity_rps"]),
        ),
        Figure(
            name="soak.errors_outside_degraded",
            value=float(found["errors_outside_degraded_window"]),
            unit="errors",
            label="non-2xx or failed requests outside the window Redis was down",
            target="= 0",
            meets=found["errors_outside_degraded_window"] == 0,
            lower_is_better=True,
        ),
        Figure(
            name="soak.degraded",
            value=float(found["degraded_answers"]),
            unit="answers",
            label=f"degraded offers answers (window {found['degraded_window_s']:.1f} s, Redis down "
            f"{found['redis_down_s']:g} s; {found['refusals_in_degraded_window']} event posts refused with 503)",
        ),
        Figure(
            name="soak.events_stored",
            value=float(found["events_stored"]),
            unit="events",
            label="in the Redis stream after the run",
            baseline="events acknowledged (202)",
            baseline_value=float(found["events_acknowledged"]),
            target="= 1.0 x acknowledged",
            meets=found["events_stored"] == found["events_acknowledged"] and not found["events_still_refused"],
        ),
        Figure(
            name="soak.offers_p99",
            value=float(found["offers_p99_ms"]),
            unit="ms",
            label=f"offers latency over the run, publishes and outage included (p50 {found['offers_p50_ms']:.1f} ms)",
            lower_is_better=True,
        ),
        Figure(
            name="soak.rss_end",
            value=float(found["api_rss_end_mib"]),
            unit="MiB",
            label="API resident memory at the end",
            baseline="at the start (after the capacity run)",
            baseline_value=float(found["api_rss_start_mib"]),
            target=f"<= {RSS_GROWTH_TARGET:g} x start",
            meets=found["api_rss_end_mib"] <= RSS_GROWTH_TARGET * found["api_rss_start_mib"],
            lower_is_better=True,
        ),
    ]
    return SoakResult(figures=figures, series={"setup": setup.as_json()} | found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="Length of the run (default 10).")
    parser.add_argument("--rps", type=float, default=None, help="Request rate (default: half the measured capacity).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Where to write the figures (JSON).")
    parser.add_argument("--publish-to", help=argparse.SUPPRESS)  # the soak's own publishes, one per process
    parser.add_argument("--publish-seed", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--publish-members", type=int, default=MEMBERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish_to:
        _publish_one(args.publish_to, args.publish_seed, args.publish_members)
        return
    figures = soak(SoakSetup(minutes=args.minutes, rps=args.rps))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:32} {value}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
