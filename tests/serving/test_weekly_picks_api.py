"""Weekly picks over HTTP: every email-consented member exactly once, identical on repeated pulls,
within the email cap and the real-time rules, erased members left out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.picks import week_start
from recsys.settings import Settings
from tests.conftest import running_api
from tests.support.keys import auth
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import publish

WEEK = "2026-W48"


@pytest.fixture
def bundle() -> ServingBundle:
    made, _ = make_bundle(n_members=60, on=week_start(WEEK).date())  # validity windows around the week's Monday
    return made


@pytest.fixture
def http(
    app_settings: Settings, redis_client: redis.Redis, keys: Keys, bundle: ServingBundle
) -> Iterator[httpx.Client]:
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings, contact_policy=ContactPolicy(), ranking_policy=RankingPolicy()) as client:
        yield client


def pull(http: httpx.Client, page_size: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"week": WEEK, "page_size": page_size}
        if cursor:
            params["cursor"] = cursor
        resp = http.get("/v1/weekly-picks", params=params)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert len(page["members"]) <= page_size
        rows += page["members"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("the pull never ended")


def test_every_consented_member_exactly_once_and_identical_on_repeat(http: httpx.Client, bundle: ServingBundle) -> None:
    first = pull(http, page_size=7)
    consented = set(bundle.members.loc[bundle.members["consent_email"], "member_id"])
    pulled = [row["member_id"] for row in first]
    assert len(pulled) == len(set(pulled)) == len(consented)
    assert set(pulled) == consented
    assert pull(http, page_size=7) == first
    assert pull(http, page_size=1000) == first  # the page size does not change the picks


def test_picks_respect_the_email_cap_and_email_channel(http: httpx.Client) -> None:
    rows = pull(http, page_size=50)
    assert all(len(row["offers"]) <= 3 for row in rows)
    assert any(row["offers"] for row in rows)
    picked = {o["offer_id"] for row in rows for o in row["offers"]}
    assert "x_app_or_web" not in picked  # not an email offer
    assert not {"x_expired", "x_future", "x_exhausted"} & picked


def test_erased_members_are_left_out(http: httpx.Client, bundle: ServingBundle) -> None:
    gone = next(m for m in pull(http, page_size=60))["member_id"]
    assert http.delete(f"/v1/members/{gone}", headers=auth("admin-key")).status_code == 204
    assert gone not in {row["member_id"] for row in pull(http, page_size=60)}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"week": "2026-48"}, "week"),
        ({"week": "2026-W60"}, "week"),
        ({"week": WEEK, "cursor": "not-a-cursor"}, "cursor"),
        ({"week": WEEK, "page_size": 0}, "page_size"),
        ({"week": WEEK, "page_size": 5000}, "page_size"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(http: httpx.Client, params: dict[str, Any], field: str) -> None:
    resp = http.get("/v1/weekly-picks", params=params)
    assert resp.status_code == 422
    assert field in resp.text


def test_picks_need_the_picks_scope(http: httpx.Client) -> None:
    assert http.get("/v1/weekly-picks", params={"week": WEEK}, headers=auth("events-key")).status_code == 403
