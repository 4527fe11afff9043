"""POST /v1/events over HTTP against a real Redis: per-event rejections, exact counts under a burst
of concurrent posts, idempotent retries, and caps visible on the member's next request."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.contacts import ContactPolicy, ContactState
from recsys.events import redemption_counts
from recsys.settings import Settings
from tests.support.live_api import auth, live_api

WRITER = auth("events-key")


def event(i: int = 0, **changes: object) -> dict[str, object]:
    at = datetime.now(UTC) - timedelta(minutes=5)
    base: dict[str, object] = {
        "member_id": f"m{i % 7}",
        "offer_id": f"o{i % 3}",
        "kind": "impression",
        "channel": "app",
        "timestamp": at.isoformat(),
    }
    return {**base, **changes}


@pytest.fixture
def http(app_settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Iterator[httpx.Client]:
    with live_api(app_settings, monkeypatch, OFFERS_EVENTS_MAX_BATCH="500") as client:
        yield client


def post(http: httpx.Client, events: list[dict[str, object]]) -> httpx.Response:
    return http.post("/v1/events", json={"events": events}, headers=WRITER)


def test_all_valid_is_202_with_one_result_each(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    resp = post(http, [event(0, event_id="a"), event(1)])
    assert resp.status_code == 202
    body = resp.json()
    assert (body["received"], body["accepted"], body["duplicates"], body["rejected"]) == (2, 2, 0, 0)
    assert [(r["index"], r["status"]) for r in body["results"]] == [(0, "recorded"), (1, "recorded")]
    assert body["results"][0]["event_id"] == "a" and body["results"][1]["event_id"]
    assert body["errors"] == []
    assert redis_client.xlen(keys.events_stream) == 2


def test_invalid_events_are_reported_one_by_one_and_the_rest_recorded(
    http: httpx.Client, redis_client: redis.Redis, keys: Keys
) -> None:
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    batch = [event(0), event(1, kind="purchase"), event(2), event(3, timestamp=future, channel="fax"), "junk"]
    resp = post(http, batch)
    assert resp.status_code == 207
    body = resp.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    assert [r["index"] for r in body["results"]] == [0, 2]
    problems = {(e["index"], e["field"]) for e in body["errors"]}
    assert problems == {(1, "kind"), (3, "timestamp"), (3, "channel"), (4, "")}
    reason = next(e["reason"] for e in body["errors"] if e["field"] == "timestamp")
    assert "more than a day" in reason
    assert redis_client.xlen(keys.events_stream) == 2


def test_nothing_valid_is_422_with_the_same_report(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    resp = post(http, [event(0, timestamp="1999-01-01T00:00:00Z")])
    assert resp.status_code == 422
    assert resp.json()["errors"] == [{"index": 0, "field": "timestamp", "reason": "timestamp is before 2000-01-01"}]
    assert redis_client.xlen(keys.events_stream) == 0


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}, [event(0)]])
def test_a_body_that_is_no_batch_is_422(http: httpx.Client, body: object) -> None:
    resp = http.post("/v1/events", json=body, headers=WRITER)
    assert resp.status_code == 422
    assert resp.json()["error"]["code"] == "invalid_request"


def test_a_batch_over_the_limit_is_413_naming_it(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    resp = post(http, [event(i) for i in range(501)])
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "batch_too_large"
    assert "at most 500" in resp.json()["error"]["message"]
    assert redis_client.xlen(keys.events_stream) == 0
    assert post(http, [event(i) for i in range(500)]).status_code == 202


def test_a_retried_batch_is_not_counted_twice(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    batch = [event(i, kind="redeem", event_id=f"pos-{i}") for i in range(10)]
    assert post(http, batch).status_code == 202
    retry = post(http, batch).json()
    assert (retry["accepted"], retry["duplicates"]) == (10, 10)
    assert {r["status"] for r in retry["results"]} == {"duplicate"}
    assert redis_client.xlen(keys.events_stream) == 10
    assert sum(redemption_counts(redis_client.hgetall(keys.offer_redemptions)).values()) == 10


def test_a_concurrent_burst_is_counted_exactly(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    def send(thread: int) -> int:
        accepted = 0
        for i in range(50):
            resp = post(http, [event(thread * 50 + i, kind="redeem" if i % 2 else "impression")])
            assert resp.status_code == 202, resp.text
            accepted += resp.json()["accepted"]
        return accepted

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(send, range(8))) == 400
    assert redis_client.xlen(keys.events_stream) == 400
    counts = redemption_counts(redis_client.hgetall(keys.offer_redemptions))
    expected: dict[str, int] = {}
    for n in range(400):
        if n % 50 % 2:
            expected[f"o{n % 3}"] = expected.get(f"o{n % 3}", 0) + 1
    assert counts == expected
    per_member = [ContactState.from_redis(redis_client.hgetall(keys.member_contacts(f"m{m}"))) for m in range(7)]
    assert sum(s.redemptions(o) for s in per_member for o in ("o0", "o1", "o2")) == 200


def test_impressions_suppress_on_the_next_request(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    now = datetime.now(UTC)
    shown = [event(0, offer_id="spa", timestamp=(now - timedelta(days=d)).isoformat()) for d in (3, 2, 1)]
    assert post(http, shown[:2]).status_code == 202
    state = ContactState.from_redis(redis_client.hgetall(keys.member_contacts("m0")))
    policy = ContactPolicy.model_validate({})
    assert "spa" not in policy.suppressed(state, datetime.now(UTC))
    assert post(http, shown[2:]).status_code == 202
    state = ContactState.from_redis(redis_client.hgetall(keys.member_contacts("m0")))
    assert "spa" in policy.suppressed(state, datetime.now(UTC))


def test_events_of_an_erased_member_are_rejected(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.sadd(keys.erased_members(), "m0")
    body = post(http, [event(0), event(1)]).json()
    assert body["errors"] == [{"index": 0, "field": "member_id", "reason": "the member was erased; no events are kept"}]
    assert redis_client.xlen(keys.events_stream) == 1
