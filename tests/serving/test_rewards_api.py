"""GET /v1/members/{id}/rewards over HTTP against a real Redis: partner conversions and partner offers the
member can afford, ranked by their partner affinity (popularity without consent), with what they get."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.catalogue_changes import apply_changes
from recsys.settings import Settings
from tests.conftest import running_api
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import publish

RICH = 0  # member m0000: uses partner air (0.8) then card (0.2); consents to personalisation
NO_CONSENT = 20  # member m0020: 20 % 17 == 3, no consent to personalisation (history: air, card)
CAR_USER = 1  # member m0001: uses partner car only


@pytest.fixture
def bundle() -> ServingBundle:
    bundle, _ = make_bundle(with_partners=True)
    bundle.members.loc[[RICH, NO_CONSENT], "points_balance"] = 27_300
    bundle.members.loc[CAR_USER, "points_balance"] = 2_000
    return bundle


@pytest.fixture
def http(
    app_settings: Settings, redis_client: redis.Redis, keys: Keys, bundle: ServingBundle
) -> Iterator[httpx.Client]:
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings) as client:
        yield client


def rewards_of(http: httpx.Client, member: int, **params: Any) -> list[dict[str, Any]]:
    resp = http.get(f"/v1/members/m{member:04d}/rewards", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["points_balance"] >= 0 and body["version"]
    found: list[dict[str, Any]] = body["rewards"]
    return found


def test_rewards_follow_the_members_partner_affinity(http: httpx.Client) -> None:
    found = rewards_of(http, RICH)
    assert [(r["partner_id"], r["kind"], r.get("direction")) for r in found] == [
        ("air", "conversion", "points_to_partner"),
        ("air", "conversion", "partner_to_points"),
        ("air", "partner_offer", None),
        ("card", "conversion", "partner_to_points"),
        ("car", "partner_offer", None),  # no affinity: ranked after, by popularity
    ]
    assert found[0]["summary"] == "25,000 points -> 10,000 miles"
    assert found[0]["gives"] == {"amount": 25000, "unit": "points"}
    assert found[0]["gets"]["amount"] == 10000 and found[0]["gets"]["unit"] == "miles"
    assert found[1]["summary"] == "5,000 miles -> 10,000 points"
    assert found[2]["gets"] == {"offer_id": "p_air", "title": "Air offer"}
    assert found[2]["summary"] == "3,000 points -> Air offer"
    assert [r["reasons"] for r in found] == [["partner_affinity"]] * 4 + [["popular_partner"]]
    assert found[0]["affinity"] == pytest.approx(0.8, abs=1e-3)


def test_only_what_the_balance_affords(http: httpx.Client) -> None:
    found = rewards_of(http, CAR_USER)  # 2,000 points: no conversion to miles, no air offer (3,000)
    assert [(r["partner_id"], r["kind"]) for r in found] == [("car", "partner_offer")]
    for member in range(10):
        assert all(r["gets"].get("offer_id") != "p_card_dear" for r in rewards_of(http, member))


def test_without_consent_rewards_are_ranked_by_popularity_alone(http: httpx.Client) -> None:
    found = rewards_of(http, NO_CONSENT)
    assert {r["reasons"][0] for r in found} == {"popular_partner"}
    assert all(r.get("direction") != "partner_to_points" for r in found)  # needs known partner activity
    assert [r["partner_id"] for r in found] == ["air", "air", "car"]  # popularity air 0.5 > car 0.25


def test_partner_offers_follow_the_live_rules(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    assert any(r["gets"].get("offer_id") == "p_air" for r in rewards_of(http, RICH))
    apply_changes(redis_client, keys, {"p_air": None})
    assert all(r["gets"].get("offer_id") != "p_air" for r in rewards_of(http, RICH))
    assert len(rewards_of(http, RICH, limit=2)) == 2


def test_errors_are_json(http: httpx.Client) -> None:
    assert http.get("/v1/members/nobody/rewards").json()["error"]["code"] == "member_not_found"
    resp = http.get("/v1/members/m0000/rewards", params={"limit": 51})
    assert resp.status_code == 422 and resp.json()["error"]["fields"][0]["field"] == "limit"
    assert http.get("/v1/members/m0000/rewards", headers={"X-API-Key": "events-key"}).status_code == 403
