"""Per-key rate limiting over HTTP against real Redis: a token bucket per key holder, shared by every
replica, configurable per key in OFFERS_API_KEYS with a default from settings; 429 with Retry-After
and a JSON body; and open (no 429, no 500) when Redis is unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aredis

from recsys.access import ENV_VAR, ApiKey, Scope, key_entry
from recsys.cache import Keys
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint, open_redis
from serving.limits import LimitSettings
from serving.ratelimit import RateLimiter, lease_size, rate_of
from tests.conftest import running_api
from tests.support.keys import auth, keys_env
from tests.support.serving_bundle import make_bundle
from training.publish import publish

SLOW = auth("slow-key")  # 3 at once, then one every 100 s: a test never sees a token come back
UNLIMITED = auth("unlimited-key")


def keys_with_rates() -> str:
    entries = json.loads(keys_env())
    entries |= key_entry("slow-key", "slow-app", [Scope.OFFERS_READ], rate_per_s=0.01, burst=3)
    entries |= key_entry("unlimited-key", "bulk-export", [Scope.OFFERS_READ], rate_per_s=0)
    return json.dumps(entries)


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rated keys, and a default from settings of 2 at once, then one every 100 s."""
    monkeypatch.setenv(ENV_VAR, keys_with_rates())
    monkeypatch.setenv("OFFERS_RATE_PER_S", "0.01")
    monkeypatch.setenv("OFFERS_RATE_BURST", "2")


@pytest.fixture
def http(app_settings: Settings, member: str, limited: None) -> Iterator[httpx.Client]:
    with running_api(app_settings, key=None) as client:
        yield client


def offers(http: httpx.Client, member: str, headers: dict[str, str]) -> httpx.Response:
    return http.get(f"/v1/members/{member}/offers", headers=headers)


def test_a_key_over_its_burst_gets_429_with_retry_after_and_a_json_body(http: httpx.Client, member: str) -> None:
    assert [offers(http, member, SLOW).status_code for _ in range(3)] == [200, 200, 200]
    resp = offers(http, member, SLOW)
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    error = resp.json()["error"]
    assert error["code"] == "rate_limited"
    assert "slow-app" in error["message"] and "0.01 requests/s" in error["message"] and "burst 3" in error["message"]
    assert "slow-key" not in resp.text


def test_each_key_holder_has_its_own_bucket(http: httpx.Client, member: str) -> None:
    for _ in range(4):
        offers(http, member, SLOW)
    assert offers(http, member, SLOW).status_code == 429
    assert offers(http, member, auth("reader-key")).status_code == 200  # default bucket, untouched so far


def test_the_default_rate_comes_from_settings(http: httpx.Client, member: str) -> None:
    reader = auth("reader-key")  # no rate of its own: OFFERS_RATE_BURST=2
    assert [offers(http, member, reader).status_code for _ in range(3)] == [200, 200, 429]


def test_a_rate_of_zero_is_unlimited(http: httpx.Client, member: str) -> None:
    assert {offers(http, member, UNLIMITED).status_code for _ in range(10)} == {200}


def test_refused_requests_spend_no_tokens_and_probes_are_not_limited(http: httpx.Client, member: str) -> None:
    for _ in range(5):
        assert offers(http, member, auth("not-a-key")).status_code == 401
    assert [http.get("/healthz").status_code for _ in range(5)] == [200] * 5
    assert offers(http, member, auth("reader-key")).status_code == 200


def test_replicas_share_one_bucket_in_redis(app_settings: Settings, member: str, limited: None) -> None:
    with running_api(app_settings, key=None) as first, running_api(app_settings, key=None) as second:
        assert first.base_url != second.base_url
        assert offers(first, member, SLOW).status_code == 200
        assert offers(second, member, SLOW).status_code == 200
        assert offers(first, member, SLOW).status_code == 200
        assert offers(second, member, SLOW).status_code == 429


def test_the_limiter_fails_open_over_http_when_redis_is_gone(tmp_path: Path, limited: None) -> None:
    endpoint = open_redis(get_settings(home=tmp_path))  # a Redis of this test's own, to stop
    try:
        settings = get_settings(home=tmp_path, redis_url=endpoint.url, key_prefix="rl")
        bundle = make_bundle()[0]
        with contextlib.closing(endpoint.client()) as client:
            publish(client, bundle, keys=Keys("rl"))
        member = str(bundle.members["member_id"].iloc[0])
        with running_api(settings, key=None) as http:
            assert offers(http, member, SLOW).status_code == 200
            with contextlib.closing(endpoint.client()) as client, contextlib.suppress(redis.RedisError):
                client.shutdown(nosave=True)
            statuses = [offers(http, member, SLOW).status_code for _ in range(6)]  # twice the burst
        # neither 429 (the bucket is unreadable) nor 503 (the limiter must not fail the request): the offers
        # endpoint's own fallback answers
        assert statuses == [200] * 6, statuses
    finally:
        endpoint.close()


def test_the_limiter_admits_and_warns_when_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    async def ask() -> list[float]:
        client = aredis.Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=1)
        limiter = RateLimiter(client, Keys("rl"), LimitSettings(rate_per_s=0.01, rate_burst=1))
        try:
            return [await limiter.wait_needed(ApiKey("app", frozenset({Scope.OFFERS_READ}))) for _ in range(3)]
        finally:
            await client.aclose()

    with caplog.at_level(logging.WARNING, logger="serving.ratelimit"):
        assert asyncio.run(ask()) == [0.0, 0.0, 0.0]
    warnings = [r.getMessage() for r in caplog.records if r.name == "serving.ratelimit"]
    assert len(warnings) == 1 and "admitted unlimited" in warnings[0]  # once, not per request


def test_a_redis_limiter_refuses_past_the_burst(
    redis_endpoint: RedisEndpoint, keys: Keys, redis_client: redis.Redis
) -> None:
    async def ask() -> list[float]:
        client = await redis_endpoint.aconnect()
        limiter = RateLimiter(client, keys, LimitSettings(rate_per_s=0.01, rate_burst=2))
        try:
            return [await limiter.wait_needed(ApiKey("app", frozenset({Scope.OFFERS_READ}))) for _ in range(3)]
        finally:
            await client.aclose()

    admitted_1, admitted_2, refused = asyncio.run(ask())
    assert admitted_1 == admitted_2 == 0.0
    assert 0 < refused <= 100  # the next token, at 0.01 per second, is under 100 s away
    assert redis_client.exists(keys.rate_bucket("app"))


def test_a_busy_key_takes_tokens_from_redis_a_lease_at_a_time(
    redis_endpoint: RedisEndpoint, keys: Keys, redis_client: redis.Redis
) -> None:
    """1000/s with a burst of 2000: leases of 100 tokens, so Redis is asked once per 100 requests (the
    clock stands still here, so no lease runs out)."""
    bucket = keys.rate_bucket("app")
    holder = ApiKey("app", frozenset({Scope.OFFERS_READ}))

    async def ask() -> list[float | None]:
        client = await redis_endpoint.aconnect()
        limiter = RateLimiter(client, keys, LimitSettings(rate_per_s=1000, rate_burst=2000), clock=lambda: 0.0)
        left: list[float | None] = []
        try:
            for n in range(1, 202):
                assert await limiter.wait_needed(holder) == 0.0
                if n in (1, 100, 101, 200, 201):
                    raw = redis_client.hget(bucket, "tokens")
                    left.append(float(raw) if raw is not None else None)
            return left
        finally:
            await client.aclose()

    after_1, after_100, after_101, after_200, after_201 = asyncio.run(ask())
    assert after_1 is not None and 1900 <= after_1 < 1950  # one lease taken (refill within ms at most)
    assert after_100 == after_1 and after_200 == after_101  # spent locally, Redis untouched
    assert after_101 is not None and after_201 is not None
    assert after_101 < after_1 - 50 and after_201 < after_101 - 50  # the next lease each time


def test_leases_admit_a_concurrent_burst_whole_and_no_more(
    redis_endpoint: RedisEndpoint, keys: Keys, redis_client: redis.Redis
) -> None:
    """Concurrent requests that miss the local lease each lease from Redis; together they admit the whole
    burst (none refused while the process holds tokens) and no more than Redis granted."""
    limits = LimitSettings(rate_per_s=100, rate_burst=100)  # leases of 5 tokens
    holder = ApiKey("app", frozenset({Scope.OFFERS_READ}))

    async def burst() -> tuple[list[float], float]:
        client = await redis_endpoint.aconnect()
        limiter = RateLimiter(client, keys, limits)
        try:
            started = time.monotonic()
            waits = await asyncio.gather(*(limiter.wait_needed(holder) for _ in range(150)))
            return list(waits), time.monotonic() - started
        finally:
            await client.aclose()

    waits, elapsed = asyncio.run(burst())
    admitted = sum(1 for w in waits if w == 0)
    assert lease_size(rate_of(holder, limits)) > 1
    assert admitted >= limits.rate_burst
    assert admitted <= limits.rate_burst + math.ceil(limits.rate_per_s * elapsed) + lease_size(rate_of(holder, limits))
