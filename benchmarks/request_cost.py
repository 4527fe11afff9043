"""CPU per request of the offers endpoint, in process: a model published into a throwaway redis-server
(as ``benchmarks.serving`` publishes it, contact history included), then ``--requests`` requests sent
straight into the ASGI app on uvloop (no HTTP server, no load generator) ``--concurrency`` at a time, beside the
floor app (``benchmarks.floor_app``) called the same way. Prints the app's CPU milliseconds per request,
user and system apart, and Redis's (the least of ``--rounds`` rounds), so a change to the request path is
measured before and after in seconds, not minutes. User time is the steadier figure on a busy machine:
system time carries the loopback network's work, which the kernel charges to whoever is running.

    .venv/bin/python -m benchmarks.request_cost                 # 10,000 members x 2,000 offers
    .venv/bin/python -m benchmarks.request_cost --profile 25    # and cProfile's top 25 functions
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import random
import resource
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import uvloop
from fastapi import FastAPI

from benchmarks.procs import RedisServer, redis_server
from benchmarks.serving import (
    FLOOR_PATH,
    KEY_PREFIX,
    OFFERS_PATH,
    ServingSetup,
    add_contact_history,
    build_bundle,
    server_env,
)
from recsys.cache import Keys
from training.publish import publish

Call = Callable[[str], Awaitable[int]]


def _caller(app: FastAPI, path: str, api_key: str) -> Call:
    """Send one GET through ``app`` as uvicorn would; returns the status."""
    route, _, query = path.partition("?")
    headers = [(b"host", b"bench"), (b"x-api-key", api_key.encode()), (b"accept", b"*/*")]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def call(member_id: str) -> int:
        status = 0

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        target = route % member_id
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)
        return status

    return call


def _redis_cpu(server: RedisServer) -> float:
    client = server.client()
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


async def _load(call: Call, members: list[str], requests: int, concurrency: int) -> None:
    picks = [random.choice(members) for _ in range(requests)]
    for start in range(0, requests, concurrency):
        statuses = await asyncio.gather(*(call(m) for m in picks[start : start + concurrency]))
        if any(s != 200 for s in statuses):
            raise RuntimeError(f"non-200 answers: {sorted(set(statuses))}")


async def _measure(
    app: FastAPI, path: str, api_key: str, members: list[str], args: argparse.Namespace, server: RedisServer
) -> dict[str, float]:
    call = _caller(app, path, api_key)
    async with app.router.lifespan_context(app):
        await _load(call, members, min(2_000, args.requests), args.concurrency)  # warm: catalogue, leases, pools
        profiler = cProfile.Profile() if args.profile else None
        rounds: list[tuple[float, float, float, float]] = []
        for _ in range(args.rounds):  # the least of several rounds: other work on the machine only adds
            redis_before, wall_before = _redis_cpu(server), time.perf_counter()
            before = resource.getrusage(resource.RUSAGE_SELF)
            if profiler is not None:
                profiler.enable()
            await _load(call, members, args.requests, args.concurrency)
            if profiler is not None:
                profiler.disable()
            wall, after = time.perf_counter() - wall_before, resource.getrusage(resource.RUSAGE_SELF)
            user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
            rounds.append((user, system, _redis_cpu(server) - redis_before, wall))
        user, system, redis_cpu, wall = (min(r[i] for r in rounds) for i in range(4))
    if profiler is not None:
        if args.stats:
            profiler.dump_stats(args.stats)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumtime").print_stats(args.profile)
    n = args.requests
    ms = 1000 / n
    return {
        "app_user_ms": user * ms,
        "app_system_ms": system * ms,
        "redis_cpu_ms": redis_cpu * ms,
        "wall_ms": wall * ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.request_cost", description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=10_000, help="members of the published model")
    parser.add_argument("--offers", type=int, default=2_000, help="offers of the published model")
    parser.add_argument("--requests", type=int, default=10_000, help="requests per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per app (the least counts)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at once")
    parser.add_argument("--profile", type=int, default=0, help="print cProfile's top N functions of the API")
    parser.add_argument("--stats", type=Path, help="with --profile: also write the raw cProfile stats here")
    parser.add_argument("--no-floor", action="store_true", help="time the offers endpoint only")
    args = parser.parse_args(argv)

    from benchmarks.floor_app import create_floor_app
    from serving.app import create_app

    setup = ServingSetup(members=args.members, offers=args.offers)
    with tempfile.TemporaryDirectory(prefix="request-cost-") as scratch:
        workdir = Path(scratch)
        with redis_server(workdir / "redis") as server:
            started = time.perf_counter()
            bundle = build_bundle(workdir / "data", setup)
            client = server.client()
            try:
                publish(client, bundle, keys=Keys(KEY_PREFIX))
            finally:
                client.close()
            add_contact_history(server, bundle)
            print(
                f"published {args.members:,} members x {args.offers:,} offers in {time.perf_counter() - started:.0f} s"
            )
            api_key = "bench_" + secrets.token_urlsafe(24)
            os.environ.update(server_env(server, api_key, workdir))  # the settings the served API reads
            members = [str(m) for m in bundle.member_ids]
            figures = {"offers": uvloop.run(_measure(create_app(), OFFERS_PATH, api_key, members, args, server))}
            if not args.no_floor:
                profile, args.profile = args.profile, 0
                floor = create_floor_app()
                figures["floor"] = uvloop.run(_measure(floor, FLOOR_PATH, api_key, members, args, server))
                args.profile = profile
    for name, figure in figures.items():
        print(
            f"{name:>6}: app CPU {figure['app_user_ms']:.3f} user + {figure['app_system_ms']:.3f} system ms/request, "
            f"Redis CPU {figure['redis_cpu_ms']:.3f} ms/request, "
            f"wall {figure['wall_ms']:.3f} ms/request (c={args.concurrency})"
        )
    print("BENCH_JSON " + json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
