"""The full decision over HTTP with the default contact and ranking policies: events posted through
the API suppress, limit and cap what the next offers request returns; brands are capped per response."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import pytest
import redis

from recsys.cache import Keys
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.settings import Settings
from tests.conftest import running_api
from tests.support.serving_bundle import make_bundle
from training.publish import publish

MEMBER = "m0001"  # tier 1 (silver), informed, consents to personalisation and email


@pytest.fixture
def http(app_settings: Settings, redis_client: redis.Redis, keys: Keys) -> Iterator[httpx.Client]:
    bundle, _ = make_bundle()
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings, contact_policy=ContactPolicy(), ranking_policy=RankingPolicy()) as client:
        yield client


def offers(http: httpx.Client, channel: str = "app", limit: int = 10) -> list[dict[str, object]]:
    resp = http.get(f"/v1/members/{MEMBER}/offers", params={"limit": limit, "channel": channel})
    assert resp.status_code == 200, resp.text
    found: list[dict[str, object]] = resp.json()["offers"]
    return found


def post(http: httpx.Client, offer: str, kind: str, *, ago: timedelta = timedelta(0), channel: str = "app") -> None:
    at = (datetime.now(UTC) - ago).isoformat()
    event = {"member_id": MEMBER, "offer_id": offer, "kind": kind, "channel": channel, "timestamp": at}
    resp = http.post("/v1/events", json={"events": [event]})
    assert resp.status_code == 202, resp.text


def ids(found: list[dict[str, object]]) -> list[str]:
    return [str(o["offer_id"]) for o in found]


def test_a_dismissed_offer_is_gone_from_the_next_request(http: httpx.Client) -> None:
    top = ids(offers(http))[0]
    post(http, top, "dismiss")
    assert top not in ids(offers(http))


def test_three_impressions_without_a_click_suppress_but_a_click_keeps_it(http: httpx.Client) -> None:
    first, second = ids(offers(http))[:2]
    for days in (3, 2, 1):
        post(http, first, "impression", ago=timedelta(days=days))
        post(http, second, "impression", ago=timedelta(days=days))
    post(http, second, "click", ago=timedelta(hours=1))
    after = ids(offers(http, limit=20))
    assert first not in after
    assert second in after


def test_email_gets_at_most_the_weekly_cap_and_sent_emails_count(http: httpx.Client) -> None:
    assert len(offers(http, channel="email", limit=10)) == 3
    post(http, "o000", "impression", channel="email")
    assert len(offers(http, channel="email", limit=10)) == 2


def test_at_most_two_offers_of_one_brand(http: httpx.Client) -> None:
    found = offers(http, limit=10)
    brands = Counter(str(o["brand"]) for o in found)
    assert found and max(brands.values()) <= 2
    assert len(found) == min(10, 2 * len(brands))  # three brands in the test catalogue: six offers at most


def test_decision_scores_are_ordered_and_reasons_given(http: httpx.Client) -> None:
    found = offers(http, limit=6)
    scores = [float(o["score"]) for o in found]  # type: ignore[arg-type]
    assert scores == sorted(scores, reverse=True)
    assert all(o["reasons"] for o in found)


def test_a_redemption_exhausts_the_last_unit_of_budget_live(
    app_settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    bundle, _ = make_bundle()
    # make "x_last_one" (budget 5, 4 redeemed) the best offer for everyone, then redeem it once
    i = int(np.flatnonzero(bundle.offer_ids == "x_last_one")[0])
    bundle.offer.bias[i] += 50.0
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings, contact_policy=ContactPolicy(), ranking_policy=RankingPolicy()) as http:
        assert "x_last_one" in ids(offers(http))
        other = "m0002"
        event = {
            "member_id": other,
            "offer_id": "x_last_one",
            "kind": "redeem",
            "channel": "app",
            "timestamp": datetime.now(UTC).isoformat(),
        }
        assert http.post("/v1/events", json={"events": [event]}).status_code == 202
        assert "x_last_one" not in ids(offers(http))
