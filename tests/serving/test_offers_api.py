"""The offers API over HTTP, against a real Redis holding a published hand-made bundle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from recsys.cache import Keys
from recsys.catalogue_changes import apply_changes
from recsys.settings import Settings
from tests.conftest import running_api
from tests.support.serving_bundle import expected_eligible, make_bundle, shift, today, true_scores
from training.bundle import ServingBundle
from training.publish import publish

F16_TOLERANCE = 0.05  # scores travel as float16


@pytest.fixture
def bundle() -> ServingBundle:
    return make_bundle()[0]


@pytest.fixture
def published(redis_client: redis.Redis, keys: Keys, bundle: ServingBundle) -> str:
    return publish(redis_client, bundle, keys=keys).version


@pytest.fixture
def http(app_settings: Settings, published: str) -> Iterator[httpx.Client]:
    with running_api(app_settings) as client:
        yield client


def offers_of(http: httpx.Client, member: str, **params: Any) -> dict[str, Any]:
    resp = http.get(f"/v1/members/{member}/offers", params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def index_of(bundle: ServingBundle, offer_id: str) -> int:
    return int(np.flatnonzero(bundle.offer_ids == offer_id)[0])


@pytest.mark.parametrize("channel", ["app", "email", "web", "sms"])
def test_every_returned_offer_is_eligible_now(http: httpx.Client, bundle: ServingBundle, channel: str) -> None:
    served_any = 0
    for m, member_id in enumerate(bundle.member_ids):
        body = offers_of(http, member_id, limit=20, channel=channel)
        allowed = expected_eligible(bundle, m, today(), channel)
        ids = [o["offer_id"] for o in body["offers"]]
        assert all(allowed[index_of(bundle, i)] for i in ids), (member_id, ids)
        assert len(ids) == min(20, int(allowed.sum())), member_id  # every eligible offer can be filled in
        assert len(set(ids)) == len(ids)
        served_any += len(ids)
    assert served_any > 0


@pytest.mark.parametrize("candidates", [3, 100])
def test_ranking_follows_the_model_scores(
    redis_client: redis.Redis, keys: Keys, bundle: ServingBundle, app_settings: Settings, candidates: int
) -> None:
    publish(redis_client, bundle, keys=keys, candidates=candidates)
    personal = [m for m in range(len(bundle.member_ids)) if m % 7 and m % 17 != 3]
    with running_api(app_settings) as http:
        for m in personal:
            offers = offers_of(http, bundle.member_ids[m], limit=5)["offers"]
            truth = true_scores(bundle, m)
            allowed = expected_eligible(bundle, m, today(), "app")
            got = [index_of(bundle, o["offer_id"]) for o in offers]
            scores = [o["model_score"] for o in offers]
            assert all(o["reasons"][0] == "personalised" for o in offers)
            assert scores == sorted(scores, reverse=True)
            assert np.allclose(scores, truth[got], atol=F16_TOLERANCE * 4, rtol=1e-2)
            rest = np.flatnonzero(allowed)
            rest = rest[~np.isin(rest, got)]
            if len(rest):
                assert truth[got].min() >= truth[rest].max() - F16_TOLERANCE


def test_uninformed_member_gets_popular_in_tier(http: httpx.Client, bundle: ServingBundle) -> None:
    for m in (0, 7, 14, 20):  # 0, 7, 14: no signal; 20: no consent to personalisation
        member = bundle.members.iloc[m]
        offers = offers_of(http, bundle.member_ids[m], limit=4)["offers"]
        allowed = np.flatnonzero(expected_eligible(bundle, m, today(), "app"))
        popularity = bundle.popular_by_tier[int(member["tier"])]
        expected = allowed[np.argsort(-popularity[allowed], kind="stable")][:4]
        assert [o["offer_id"] for o in offers] == list(bundle.offer_ids[expected])
        assert all(o["reasons"][0] == "popular_in_tier" for o in offers)


def test_response_names_version_tier_and_day(http: httpx.Client, published: str) -> None:
    body = offers_of(http, "m0002")
    assert body["version"] == published
    assert body["tier"] == "gold"
    assert body["channel"] == "app"
    assert body["on"] == today().isoformat()
    assert len(body["offers"]) == 10
    first = body["offers"][0]
    assert set(first) == {
        "offer_id",
        "title",
        "category",
        "brand",
        "city",
        "partner_id",
        "points_cost",
        "valid_to",
        "score",
        "model_score",
        "reasons",
        "reason_details",
    }


def test_eligibility_follows_the_requested_day(app_settings: Settings, published: str) -> None:
    member = "m0004"  # diamond: every tier rule passes
    with running_api(app_settings.model_copy(update={"max_limit": 50})) as http:
        on_today = {o["offer_id"] for o in offers_of(http, member, limit=50)["offers"]}
        body = offers_of(http, member, limit=50, on=shift(today(), 1).isoformat())
    tomorrow = {o["offer_id"] for o in body["offers"]}
    assert body["on"] == shift(today(), 1).isoformat()
    assert "x_ends_today" in on_today and "x_future" not in on_today
    assert "x_future" in tomorrow and "x_ends_today" not in tomorrow
    assert "x_expired" not in on_today | tomorrow


def test_email_without_consent_gets_no_offers(http: httpx.Client, bundle: ServingBundle) -> None:
    assert not bool(bundle.members.iloc[4]["consent_email"])
    assert offers_of(http, "m0004", channel="email")["offers"] == []
    assert offers_of(http, "m0004", channel="app")["offers"]


def test_takedown_applies_without_a_publish(http: httpx.Client, redis_client: redis.Redis, keys: Keys) -> None:
    before = [o["offer_id"] for o in offers_of(http, "m0003", limit=20)["offers"]]
    apply_changes(redis_client, keys, {before[0]: None})
    after = [o["offer_id"] for o in offers_of(http, "m0003", limit=20)["offers"]]
    assert before[0] not in after
    assert after[: len(before) - 1] == before[1:]


def test_unknown_member_is_404_json(http: httpx.Client) -> None:
    resp = http.get("/v1/members/nobody/offers")
    assert resp.status_code == 404
    assert resp.json() == {
        "error": {"code": "member_not_found", "message": "member 'nobody' is not known to the served version"}
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": -3}, "limit"),
        ({"limit": 21}, "limit"),  # above the app's max_limit of 20
        ({"limit": "ten"}, "limit"),
        ({"channel": "fax"}, "channel"),
        ({"channel": ""}, "channel"),
        ({"on": "yesterday"}, "on"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(http: httpx.Client, params: dict[str, Any], field: str) -> None:
    resp = http.get("/v1/members/m0001/offers", params=params)
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert error["code"] == "invalid_request"
    assert [f["field"] for f in error["fields"]] == [field]
    assert error["message"].startswith(f"{field}: ")


def test_limit_at_the_maximum_is_served(http: httpx.Client) -> None:
    assert len(offers_of(http, "m0004", limit=20)["offers"]) == 20


def test_no_published_version_is_503(api: httpx.Client) -> None:
    resp = api.get("/v1/members/m0001/offers")
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "not_published"
    assert api.get("/v1/model").status_code == 503


def test_unknown_path_is_json_404(http: httpx.Client) -> None:
    resp = http.get("/v2/whatever")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_openapi_documents_the_routes(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert {"/v1/members/{member_id}/offers", "/v1/model", "/healthz", "/readyz"} <= set(spec["paths"])
    assert http.get("/docs").status_code == 200
