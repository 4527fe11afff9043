"""The in-process copy answers come from while Redis is down: what it copies, when, and what it keeps
of members (against a real Redis; the outage itself is in ``test_faults.py``)."""

from __future__ import annotations

import asyncio
import functools
from datetime import UTC, datetime
from typing import Any

import redis

from recsys.cache import Keys
from recsys.catalogue_changes import apply_changes
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.store import RedisEndpoint
from serving.fallback import Fallback, Refresher
from serving.reader import OfferReader
from tests.support.serving_bundle import make_bundle, today
from training.publish import publish

WAIT_S = 20.0


def _offers(fallback: Fallback, member: str, limit: int = 10) -> dict[str, Any] | None:
    return fallback.answer(
        member,
        channel="app",
        day=today(),
        now=datetime.now(UTC),
        limit=limit,
        contact_policy=ContactPolicy(),
        ranking_policy=RankingPolicy(),
    )


def _ids(body: dict[str, Any] | None) -> list[str]:
    assert body is not None
    return [str(o["offer_id"]) for o in body["offers"]]


def test_refresh_copies_the_catalogue_with_the_takedowns_of_its_time(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    publish(redis_client, make_bundle()[0], keys=keys)

    async def run() -> tuple[list[str], list[str], list[str], bool]:
        client = await redis_endpoint.aconnect()
        try:
            reader, fallback = OfferReader(client, keys), Fallback(100)
            nothing_yet = _offers(fallback, "m0002") is None  # no copy taken: the caller answers 503
            await fallback.refresh(reader)
            before = _ids(_offers(fallback, "m0002"))
            apply_changes(redis_client, keys, {before[0]: None})  # take the top offer down
            stale = _ids(_offers(fallback, "m0002"))
            await fallback.refresh(reader)
            return before, stale, _ids(_offers(fallback, "m0002")), nothing_yet
        finally:
            await client.aclose()

    before, stale, after, nothing_yet = asyncio.run(run())
    assert nothing_yet and before
    assert stale == before  # as of the last refresh
    assert before[0] not in after and after


def test_the_background_refresh_follows_a_new_version(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    first = publish(redis_client, make_bundle(seed=1)[0], keys=keys).version

    async def run() -> list[str]:
        client = await redis_endpoint.aconnect()
        reader, fallback = OfferReader(client, keys), Fallback(100)
        refresher = Refresher(functools.partial(fallback.refresh, reader), 0.05)
        refresher.start()
        seen: list[str] = []
        try:
            for expected in (first, await asyncio.to_thread(_publish_again, redis_client, keys)):
                deadline = asyncio.get_running_loop().time() + WAIT_S
                while (fallback.snapshot is None or fallback.snapshot.version != expected) and (
                    asyncio.get_running_loop().time() < deadline
                ):
                    await asyncio.sleep(0.01)
                assert fallback.snapshot is not None
                seen.append(fallback.snapshot.version)
        finally:
            await refresher.stop()
            await client.aclose()
        return seen

    seen = asyncio.run(run())
    assert seen == [first, str(int(first) + 1)]


def _publish_again(client: redis.Redis, keys: Keys) -> str:
    return publish(client, make_bundle(seed=2)[0], keys=keys).version


def test_members_are_remembered_up_to_the_bound(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    publish(redis_client, make_bundle()[0], keys=keys)

    async def run() -> list[object]:
        client = await redis_endpoint.aconnect()
        try:
            reader, fallback = OfferReader(client, keys), Fallback(2)
            for member in ("m0002", "m0003", "m0004"):  # gold, platinum, diamond
                fallback.seen(member, await reader.member(member))
            return [(_offers(fallback, m) or {}).get("tier") for m in ("m0002", "m0003", "m0004")]
        finally:
            await client.aclose()

    assert asyncio.run(run()) == [None, "platinum", "diamond"]  # the oldest was forgotten


def test_stopping_the_refresh_ends_it_when_a_refresh_swallows_the_cancellation() -> None:
    """On Python 3.11 a cancellation that meets a redis-py write just as it completes is lost inside
    ``asyncio.wait_for``; the refresh loop must end anyway, or the app's shutdown never finishes."""

    async def run() -> tuple[int, bool]:
        refreshing, lost, calls = asyncio.Event(), asyncio.Event(), 0

        async def refresh_losing_one_cancellation() -> None:
            nonlocal calls
            calls += 1
            refreshing.set()
            try:
                await asyncio.sleep(WAIT_S)
            except asyncio.CancelledError:
                if lost.is_set():
                    raise
                lost.set()  # lost once, as in the race

        refresher = Refresher(refresh_losing_one_cancellation, 0.01)
        refresher.start()
        await refreshing.wait()
        try:
            await asyncio.wait_for(refresher.stop(), 2.0)
        except TimeoutError:
            return calls, False
        return calls, True

    calls, stopped = asyncio.run(run())
    assert stopped and calls == 1  # stopped during the first refresh, and no refresh after it
