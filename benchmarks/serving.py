"""Serving: wrk loads the offers endpoint and the floor app (``benchmarks.floor_app``) at fixed
concurrency levels, with the same uvicorn settings and the same dedicated Redis, over members drawn at
random from a published model; the API's resident memory is read after load with a small and a large
model published, to show it does not grow with members (they live in Redis).

The published model is the product's own: synthetic history for the members and offers
(``training.generate``), the training set and an ALS fit (``recsys.interactions``, ``models``), a
``ServingBundle`` as the training job builds it, and ``training.publish.publish``. All rules of the
decision are on (contact caps, arbitration, diversity at their defaults); a share of members get
contact history through the events API's recorder first, so the caps have something to act on.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.bundle import product_bundle
from benchmarks.procs import RedisServer, children, free_port, python, rss_bytes, stop, wait_port
from benchmarks.report import Figure
from models.base import Embeddings
from models.families import create
from recsys.access import Scope, key_entry
from recsys.cache import Keys
from recsys.errors import ConfigurationError
from recsys.interactions import build_training_set
from recsys.validation import load_dataset
from training.bundle import ServingBundle
from training.generate import generate
from training.publish import publish

WRK_SCRIPT = Path(__file__).parent / "wrk" / "members.lua"
OFFERS_PATH = "/v1/members/%s/offers?limit=10&channel=app"
FLOOR_PATH = "/floor/%s"
KEY_PREFIX = "lo"
WARMUP_S = 2.0
BENCH_KEY_RATE = 1e6  # requests per second allowed to the benchmark's API key


@dataclass(frozen=True)
class ServingSetup:
    members: int = 100_000
    small_members: int = 10_000  # the smaller published model of the memory comparison
    offers: int = 2_000
    concurrency: tuple[int, ...] = (1, 8, 32, 64)
    seconds: float = 10.0  # per wrk run
    repeats: int = 3  # runs per level and app, alternating API and floor; figures are their medians
    workers: int = 2
    wrk_threads: int = 1
    seed: int = 7
    family: str = "als"  # the family of the published model (its embedding width sets the record size)

    def describe(self) -> dict[str, Any]:
        return {
            "members": self.members,
            "family": self.family,
            "small_members": self.small_members,
            "offers": self.offers,
            "concurrency": list(self.concurrency),
            "seconds_per_run": self.seconds,
            "runs_per_level": self.repeats,
            "uvicorn": f"serving.workers --workers {self.workers} (one SO_REUSEPORT socket each) --loop uvloop "
            "--http httptools --no-access-log (API and floor alike)",
            "wrk": f"-t{self.wrk_threads} -c<concurrency> -d{self.seconds:g}s, random member per request",
            "request": OFFERS_PATH % "<member>",
            "floor": FLOOR_PATH % "<member>",
        }


@dataclass(frozen=True)
class WrkRun:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    cdf: list[tuple[float, float]]  # (percentile, ms)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Series:
    """Every wrk run of one app, by concurrency."""

    runs: dict[int, list[WrkRun]] = field(default_factory=dict)

    def add(self, concurrency: int, run: WrkRun) -> None:
        self.runs.setdefault(concurrency, []).append(run)

    def median(self, concurrency: int, attribute: str) -> float:
        return float(statistics.median(getattr(r, attribute) for r in self.runs[concurrency]))

    def as_json(self) -> dict[str, Any]:
        return {
            str(c): {
                "rps": [r.rps for r in runs],
                "p50_ms": [r.p50_ms for r in runs],
                "p90_ms": [r.p90_ms for r in runs],
                "p99_ms": [r.p99_ms for r in runs],
                "errors": [r.errors for r in runs],
                "cdf": runs[len(runs) // 2].cdf,
            }
            for c, runs in sorted(self.runs.items())
        }


def ensure_wrk() -> str:
    """wrk's path, installing the Debian package when it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: installing it with apt-get (Debian package wrk) ...", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # type: ignore[call-overload]
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, **quiet)  # type: ignore[call-overload]
        found = shutil.which("wrk")
        if found:
            return found
    raise ConfigurationError(
        "the serving benchmark needs the load generator wrk, which is not installed and could not be installed "
        "here; install it (Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk) and run again"
    )


def wrk_version(wrk: str) -> str:
    out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else "wrk"


def run_wrk(
    wrk: str, port: int, path: str, members: int, api_key: str, concurrency: int, seconds: float, threads: int
) -> WrkRun:
    threads = max(1, min(threads, concurrency))
    command = [wrk, f"-t{threads}", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "5s", "-s", str(WRK_SCRIPT)]
    command += [f"http://127.0.0.1:{port}", "--", path, str(members), api_key]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if out.returncode != 0 or line is None:
        raise ConfigurationError(f"wrk failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}")
    doc = json.loads(line.removeprefix("BENCH_JSON "))
    latency = doc["latency_us"]
    return WrkRun(
        requests=int(doc["requests"]),
        seconds=doc["duration_us"] / 1e6,
        errors=int(sum(doc["errors"].values())),
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        cdf=[(float(p), v / 1000) for p, v in doc["cdf"]],
    )


# -- the published model ------------------------------------------------------------------------


def build_bundle(data_dir: Path, setup: ServingSetup) -> ServingBundle:
    """Synthetic history for ``setup.members`` members and ``setup.offers`` offers (live today), trained
    with ``setup.family`` (ALS for 5 iterations, any other family on its defaults) and packed as the
    training job packs it."""
    generate(data_dir, members=setup.members, offers=setup.offers, seed=setup.seed, fmt="parquet", show_progress=False)
    data = load_dataset(data_dir).data
    training, space = build_training_set(data)
    model = create(setup.family, **({"iterations": 5} if setup.family == "als" else {})).fit(training)
    return product_bundle(data, training, space, model)


def first_members(bundle: ServingBundle, n: int) -> ServingBundle:
    """The same model with only its first ``n`` members (the smaller published model)."""
    ids = bundle.member_ids[:n]
    profiles = bundle.profiles
    if profiles is not None:
        profiles = replace(
            profiles,
            brands=profiles.brands[:n],
            brand_shares=profiles.brand_shares[:n],
            partners=profiles.partners[:n],
            partner_shares=profiles.partner_shares[:n],
        )
    return replace(
        bundle,
        member_ids=ids,
        member=Embeddings(bundle.member.factors[:n], bundle.member.bias[:n], bundle.member.informed[:n]),
        members=bundle.members[bundle.members["member_id"].isin(pd.Index(ids))],
        profiles=profiles,
    )


def add_contact_history(server: RedisServer, bundle: ServingBundle, share: float = 0.3, seed: int = 7) -> int:
    """Impressions, clicks and dismissals of top candidates for a share of members, recorded by the
    product's event recorder, so contact caps and rotation act on real state; returns the events."""
    from recsys.events import OfferEvent, load_event_settings, record_events

    rng = np.random.default_rng(seed)
    chosen = np.flatnonzero(rng.random(len(bundle.member_ids)) < share)
    now = datetime.now(UTC)
    kinds = ("impression", "impression", "impression", "click", "dismiss")
    settings = load_event_settings()
    client = server.client()
    recorded = 0
    try:
        for start in range(0, len(chosen), 2_000):
            rows = chosen[start : start + 2_000]
            scores = bundle.member.factors[rows] @ bundle.offer.factors.T + bundle.offer.bias[None, :]
            top = np.argpartition(-scores, 3, axis=1)[:, :3]
            events = [
                OfferEvent.model_validate(
                    {
                        "event_id": f"bench-{m}-{j}",
                        "member_id": str(bundle.member_ids[m]),
                        "offer_id": str(bundle.offer_ids[top[i, j]]),
                        "kind": kinds[int(rng.integers(0, len(kinds)))],
                        "channel": "app",
                        "timestamp": now - pd.Timedelta(hours=int(rng.integers(1, 100))),
                    }
                )
                for i, m in enumerate(rows)
                for j in range(3)
            ]
            for first in range(0, len(events), settings.max_batch):
                record_events(
                    client, Keys(KEY_PREFIX), events[first : first + settings.max_batch], now, settings=settings
                )
            recorded += len(events)
    finally:
        client.close()
    return recorded


# -- servers --------------------------------------------------------------------------------------


def server_env(server: RedisServer, api_key: str, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "REDIS_URL": server.url,
            "OFFERS_KEY_PREFIX": KEY_PREFIX,
            "OFFERS_HOME": str(home),
            # the limiter runs on every request as in production, with a rate this load never reaches
            "OFFERS_API_KEYS": json.dumps(key_entry(api_key, "bench", [Scope.OFFERS_READ], rate_per_s=BENCH_KEY_RATE)),
            "OFFERS_LOG_LEVEL": "warning",
            "OPENBLAS_NUM_THREADS": "1",
        }
    )
    return env


def start_app(factory: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """The app under ``serving.workers`` (as ``offers serve`` runs the API), with the settings the API and
    the floor share."""
    command = [python(), "-m", "serving.workers", factory, "--factory", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    command += ["--log-level", "warning"]
    process = subprocess.Popen(command, env=env)
    wait_port(port, process)
    return process


def app_rss(process: subprocess.Popen[bytes]) -> tuple[int, int]:
    """(largest worker's resident bytes, all processes of the app together)."""
    workers = children(process.pid) or [process.pid]
    sizes = [rss_bytes(pid) for pid in workers]
    return max(sizes), sum(sizes) + (rss_bytes(process.pid) if workers != [process.pid] else 0)


@dataclass
class ServingResult:
    figures: list[Figure]
    series: dict[str, Any]


def bench_serving(
    setup: ServingSetup, server: RedisServer, workdir: Path, bundle: ServingBundle | None = None, log: Any = print
) -> ServingResult:
    """Load the API and the floor; ``bundle`` (else one built by ``build_bundle``) is the published model."""
    wrk = ensure_wrk()
    api_key = "bench_" + secrets.token_urlsafe(24)
    keys = Keys(KEY_PREFIX)
    log(f"serving: publishing a model of {setup.members:,} members x {setup.offers:,} offers ...")
    started = time.perf_counter()
    bundle = bundle or build_bundle(workdir / "data", setup)
    small = first_members(bundle, min(setup.small_members, setup.members))
    server.flush()
    client = server.client()
    try:
        publish(client, small, keys=keys)
        events = add_contact_history(server, bundle)
    finally:
        client.close()
    log(f"serving: model ready in {time.perf_counter() - started:.0f} s; {events:,} contact events recorded")
    env = server_env(server, api_key, workdir)

    # Memory with the small model published: fresh API, the same load as the large model's c=32 runs.
    rss_small = _rss_after_load(wrk, setup, env, len(small.member_ids), api_key)
    client = server.client()
    try:
        publish(client, bundle, keys=keys)
    finally:
        client.close()

    api_port, floor_port = free_port(), free_port()
    api = start_app("serving.app:create_app", api_port, setup.workers, env)
    floor = start_app("benchmarks.floor_app:create_floor_app", floor_port, setup.workers, env)
    offers, floors = Series(), Series()
    try:
        for port, path in ((api_port, OFFERS_PATH), (floor_port, FLOOR_PATH)):
            run_wrk(wrk, port, path, setup.members, api_key, 8, WARMUP_S, setup.wrk_threads)
        for concurrency in setup.concurrency:
            for _ in range(setup.repeats):
                for series, port, path in ((offers, api_port, OFFERS_PATH), (floors, floor_port, FLOOR_PATH)):
                    run = run_wrk(
                        wrk, port, path, setup.members, api_key, concurrency, setup.seconds, setup.wrk_threads
                    )
                    series.add(concurrency, run)
            log(
                f"serving: c={concurrency:>3}  offers {offers.median(concurrency, 'rps'):>7,.0f} req/s "
                f"p99 {offers.median(concurrency, 'p99_ms'):6.1f} ms   "
                f"floor {floors.median(concurrency, 'rps'):>7,.0f} req/s "
                f"p99 {floors.median(concurrency, 'p99_ms'):6.1f} ms"
            )
        rss_large = app_rss(api)
    finally:
        stop(api)
        stop(floor)
    return ServingResult(
        figures=_figures(setup, offers, floors, rss_small, rss_large),
        series={
            "offers": offers.as_json(),
            "floor": floors.as_json(),
            "rss": {"members": [len(small.member_ids), setup.members], "worker_bytes": [rss_small[0], rss_large[0]]},
            "setup": setup.describe() | {"wrk_version": wrk_version(wrk), "contact_events": events},
        },
    )


def _rss_after_load(wrk: str, setup: ServingSetup, env: dict[str, str], members: int, api_key: str) -> tuple[int, int]:
    port = free_port()
    api = start_app("serving.app:create_app", port, setup.workers, env)
    try:
        run_wrk(wrk, port, OFFERS_PATH, members, api_key, 8, WARMUP_S, setup.wrk_threads)
        for _ in range(setup.repeats):
            run_wrk(wrk, port, OFFERS_PATH, members, api_key, 32, setup.seconds, setup.wrk_threads)
        return app_rss(api)
    finally:
        stop(api)


def _figures(
    setup: ServingSetup, offers: Series, floors: Series, rss_small: tuple[int, int], rss_large: tuple[int, int]
) -> list[Figure]:
    figures: list[Figure] = []
    for c in setup.concurrency:
        rps, floor_rps = offers.median(c, "rps"), floors.median(c, "rps")
        targeted = c == 32
        figures.append(
            Figure(
                name=f"serving.rps.c{c}",
                value=rps,
                unit="req/s",
                baseline="floor app req/s",
                baseline_value=floor_rps,
                target=">= 0.6 x floor" if targeted else None,
                meets=(rps >= 0.6 * floor_rps) if targeted else None,
                label=f"offers endpoint, requests/s at concurrency {c}",
            )
        )
        for pct in ("p50", "p99"):
            value, floor_value = offers.median(c, f"{pct}_ms"), floors.median(c, f"{pct}_ms")
            targeted = c == 32 and pct == "p99"
            figures.append(
                Figure(
                    name=f"serving.{pct}.c{c}",
                    value=value,
                    unit="ms",
                    baseline=f"floor app {pct}",
                    baseline_value=floor_value,
                    target="<= 2 x floor" if targeted else None,
                    meets=(value <= 2 * floor_value) if targeted else None,
                    label=f"offers endpoint, {pct} latency at concurrency {c}",
                    lower_is_better=True,
                )
            )
    errors = sum(r.errors for s in (offers, floors) for runs in s.runs.values() for r in runs)
    figures.append(
        Figure(
            name="serving.errors",
            value=errors,
            unit="responses",
            label="non-2xx responses and socket errors over every run (API and floor)",
            target="0",
            meets=errors == 0,
            lower_is_better=True,
        )
    )
    figures.append(
        Figure(
            name="serving.api_rss",
            value=rss_large[0] / 2**20,
            unit="MiB",
            baseline=f"API worker RSS with {setup.small_members:,} members published",
            baseline_value=rss_small[0] / 2**20,
            target="does not grow with members (<= 1.1 x)",
            meets=rss_large[0] <= 1.1 * rss_small[0],
            label=f"API worker resident memory after load, {setup.members:,} members published",
            lower_is_better=True,
        )
    )
    return figures
