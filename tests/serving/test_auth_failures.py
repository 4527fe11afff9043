"""The failed-authentication flood limit over HTTP against real Redis: a client address that fails
authentication (401 or 403) OFFERS_AUTH_FAILURES_MAX times within the window is answered 429 with
Retry-After and a JSON body naming the reason, whatever key it sends next, until the window ends; the
count is shared by replicas through Redis, kept in the process when Redis is gone, and no key is logged."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.settings import Settings, get_settings
from recsys.store import open_redis
from serving.auth_failures import CODE
from tests.conftest import running_api
from tests.support.keys import auth
from tests.support.serving_bundle import make_bundle
from training.publish import publish

WRONG_KEY = "lo_wrong_key_7c2e19ab"
ADDRESS = "127.0.0.1"  # every test client connects from the loopback address


@pytest.fixture
def three_per_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_AUTH_FAILURES_MAX", "3")
    monkeypatch.setenv("OFFERS_AUTH_FAILURES_WINDOW_S", "60")


@pytest.fixture
def http(app_settings: Settings, member: str, three_per_minute: None) -> Iterator[httpx.Client]:
    with running_api(app_settings, key=None) as client:
        yield client


def offers(http: httpx.Client, member: str, key: str | None) -> httpx.Response:
    return http.get(f"/v1/members/{member}/offers", headers=auth(key) if key else {})


def test_an_address_over_the_limit_gets_429_before_its_key_is_checked(http: httpx.Client, member: str) -> None:
    assert [offers(http, member, WRONG_KEY).status_code for _ in range(3)] == [401, 401, 401]
    refused = offers(http, member, "reader-key")  # even a good key: the address is refused first
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == CODE == "too_many_auth_failures"
    assert "3 within 60 s" in error["message"] and "retry after" in error["message"]
    assert WRONG_KEY not in refused.text and "reader-key" not in refused.text
    assert refused.headers["x-content-type-options"] == "nosniff"  # the usual headers on the refusal too
    posted = http.post("/v1/events", json={"events": []}, headers=auth("events-key"))
    assert posted.status_code == 429 and posted.json()["error"]["code"] == CODE


def test_missing_keys_and_missing_scopes_count_as_failures(http: httpx.Client, member: str) -> None:
    statuses = [
        offers(http, member, None).status_code,
        offers(http, member, WRONG_KEY).status_code,
        offers(http, member, "events-key").status_code,  # a real key without offers:read
        offers(http, member, "reader-key").status_code,
    ]
    assert statuses == [401, 401, 403, 429]


def test_admitted_requests_do_not_count(http: httpx.Client, member: str) -> None:
    assert {offers(http, member, "reader-key").status_code for _ in range(10)} == {200}
    assert [offers(http, member, WRONG_KEY).status_code for _ in range(2)] == [401, 401]
    assert offers(http, member, "reader-key").status_code == 200  # 2 failures: under the limit of 3


def test_the_probes_are_never_refused(http: httpx.Client, member: str) -> None:
    for _ in range(4):
        offers(http, member, WRONG_KEY)
    assert offers(http, member, "reader-key").status_code == 429
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200


def test_replicas_share_one_count_in_redis(
    app_settings: Settings, member: str, three_per_minute: None, redis_client: redis.Redis, keys: Keys
) -> None:
    with running_api(app_settings, key=None) as first, running_api(app_settings, key=None) as second:
        assert [offers(first, member, WRONG_KEY).status_code for _ in range(2)] == [401, 401]
        assert offers(second, member, WRONG_KEY).status_code == 401  # the third failure, counted in Redis
        assert offers(second, member, "reader-key").status_code == 429
        # the first replica learns it from its own next failure: one more gets through, then it refuses too
        assert offers(first, member, WRONG_KEY).status_code == 401
        assert offers(first, member, "reader-key").status_code == 429
    assert int(redis_client.get(keys.auth_failures(ADDRESS)) or 0) == 4
    assert 0 < redis_client.pttl(keys.auth_failures(ADDRESS)) <= 60_000


def test_the_address_is_admitted_again_when_the_window_ends(
    app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFERS_AUTH_FAILURES_MAX", "2")
    monkeypatch.setenv("OFFERS_AUTH_FAILURES_WINDOW_S", "1")
    with running_api(app_settings, key=None) as http:
        assert [offers(http, member, WRONG_KEY).status_code for _ in range(2)] == [401, 401]
        refused = offers(http, member, "reader-key")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        time.sleep(1.1)
        assert offers(http, member, "reader-key").status_code == 200


def test_zero_turns_the_limit_off(app_settings: Settings, member: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OFFERS_AUTH_FAILURES_MAX", "0")
    with running_api(app_settings, key=None) as http:
        assert {offers(http, member, WRONG_KEY).status_code for _ in range(30)} == {401}
        assert offers(http, member, "reader-key").status_code == 200


def test_the_default_is_20_failures_per_10_s(app_settings: Settings, member: str) -> None:
    with running_api(app_settings, key=None) as http:
        assert {offers(http, member, WRONG_KEY).status_code for _ in range(20)} == {401}
        refused = offers(http, member, WRONG_KEY)
        assert refused.status_code == 429 and "20 within 10 s" in refused.json()["error"]["message"]


def test_failures_are_counted_in_the_process_when_redis_is_gone(tmp_path: Path, three_per_minute: None) -> None:
    endpoint = open_redis(get_settings(home=tmp_path))  # a Redis of this test's own, to stop
    try:
        settings = get_settings(home=tmp_path, redis_url=endpoint.url, key_prefix="af")
        bundle = make_bundle()[0]
        with contextlib.closing(endpoint.client()) as client:
            publish(client, bundle, keys=Keys("af"))
        member = str(bundle.members["member_id"].iloc[0])
        with running_api(settings, key=None) as http:
            with contextlib.closing(endpoint.client()) as client, contextlib.suppress(redis.RedisError):
                client.shutdown(nosave=True)
            assert offers(http, member, "reader-key").status_code == 200  # the fallback answers
            assert [offers(http, member, WRONG_KEY).status_code for _ in range(3)] == [401, 401, 401]
            assert offers(http, member, "reader-key").status_code == 429
    finally:
        endpoint.close()


def test_a_refused_address_is_logged_once_without_its_key(
    http: httpx.Client, member: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="serving.auth_failures"):
        for _ in range(6):
            offers(http, member, WRONG_KEY)
    warnings = [r.getMessage() for r in caplog.records if r.name == "serving.auth_failures"]
    assert len(warnings) == 1, warnings
    assert ADDRESS in warnings[0] and "3 failed authentications" in warnings[0]
    assert all(WRONG_KEY not in r.getMessage() for r in caplog.records)
