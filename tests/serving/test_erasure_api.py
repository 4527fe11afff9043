"""DELETE /v1/members/{id}: the member's data leaves every kept version, their contact state and the
event log; the id is recorded so exports, picks and new events leave them out."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
import redis

from recsys.cache import Keys
from recsys.erasure import erase_member, erased_ids, purge_events
from recsys.settings import Settings
from tests.support.live_api import auth, live_api
from tests.support.serving_bundle import make_bundle
from training.export_events import export_events
from training.publish import publish

ADMIN = auth("admin-key")


@pytest.fixture
def versions(redis_client: redis.Redis, keys: Keys) -> list[str]:
    """Two kept versions (served + rollback)."""
    return [publish(redis_client, make_bundle(seed=s)[0], keys=keys).version for s in (1, 2)]


@pytest.fixture
def http(
    app_settings: Settings, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, versions: list[str]
) -> Iterator[httpx.Client]:
    with live_api(app_settings, monkeypatch) as client:
        yield client


def eventually(check: Callable[[], bool], within_s: float = 5.0) -> bool:
    """Whether ``check`` holds within ``within_s`` (the event log is purged just after the response)."""
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def events_of(*members: str) -> list[dict[str, object]]:
    at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    return [
        {"member_id": m, "offer_id": f"o00{i}", "kind": k, "channel": "app", "timestamp": at}
        for m in members
        for i, k in enumerate(("impression", "click", "redeem"))
    ]


def test_erasure_removes_the_member_everywhere(
    http: httpx.Client, redis_client: redis.Redis, keys: Keys, versions: list[str], tmp_path: Path
) -> None:
    assert http.post("/v1/events", json={"events": events_of("m0001", "m0002")}, headers=ADMIN).status_code == 202
    assert all(redis_client.exists(keys.member(v, "m0001")) for v in versions)
    assert http.get("/v1/members/m0001/offers", headers=auth("reader-key")).status_code == 200

    resp = http.delete("/v1/members/m0001", headers=ADMIN)
    assert resp.status_code == 204 and resp.content == b""
    assert not any(redis_client.exists(keys.member(v, "m0001")) for v in versions)
    assert not redis_client.exists(keys.member_contacts("m0001"))
    assert erased_ids(redis_client, keys) == {"m0001"}
    assert eventually(lambda: {e[1][b"m"] for e in redis_client.xrange(keys.events_stream)} == {b"m0002"})
    assert http.get("/v1/members/m0001/offers", headers=auth("reader-key")).status_code == 404
    # others untouched
    assert all(redis_client.exists(keys.member(v, "m0002")) for v in versions)
    assert redis_client.exists(keys.member_contacts("m0002"))

    rejected = http.post("/v1/events", json={"events": events_of("m0001")}, headers=ADMIN)
    assert rejected.status_code == 422 and {e["field"] for e in rejected.json()["errors"]} == {"member_id"}


def test_erasure_is_idempotent_and_answers_the_same_for_unknown_members(
    http: httpx.Client, redis_client: redis.Redis, keys: Keys
) -> None:
    assert http.delete("/v1/members/m0003", headers=ADMIN).status_code == 204
    assert http.delete("/v1/members/m0003", headers=ADMIN).status_code == 204
    assert http.delete("/v1/members/never-seen", headers=ADMIN).status_code == 204
    assert erased_ids(redis_client, keys) == {"m0003", "never-seen"}


def test_only_admin_may_erase(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    for key in ("events-key", "catalogue-key", "reader-key"):
        assert http.delete("/v1/members/m0001", headers=auth(key)).status_code == 403
    assert erased_ids(redis_client, keys) == set()


def test_erase_member_reports_what_it_removed(redis_client: redis.Redis, keys: Keys, versions: list[str]) -> None:
    first = erase_member(redis_client, keys, "m0004")
    assert (first.keys_removed, first.first_time) == (2, True)
    again = erase_member(redis_client, keys, "m0004")
    assert (again.keys_removed, again.first_time) == (0, False)


def test_exports_and_late_purges_leave_erased_members_out(
    redis_client: redis.Redis, keys: Keys, tmp_path: Path
) -> None:
    for i, member in enumerate(["a", "b", "a", "c"]):
        redis_client.xadd(keys.events_stream, {"id": f"e{i}", "m": member, "o": "o1", "k": "click", "c": "app", "t": 0})
    redis_client.sadd(keys.erased_members(), "a")
    rows = pd.read_csv(tmp_path / "events.csv") if export_events(redis_client, keys, tmp_path / "events.csv") else None
    assert rows is not None and list(rows["member_id"]) == ["b", "c"]
    assert purge_events(redis_client, keys) == 2
    assert redis_client.xlen(keys.events_stream) == 2
