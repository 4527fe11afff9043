"""Over HTTP against a real Redis: reasons from the member's profile (stayed_brand, partner_affinity with
what they refer to, none without consent), and an offer added live ranked from its features for the
member who loves its brand, without retraining."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from models.base import Embeddings
from recsys.cache import Keys
from recsys.features import FeatureSpace
from recsys.profiles import OfferFeatureTable
from recsys.settings import Settings
from tests.conftest import running_api
from tests.support.serving_bundle import N_FACTORS, make_bundle
from training.bundle import ServingBundle
from training.publish import publish

WRITER = {"X-API-Key": "catalogue-key"}


def offers_of(http: httpx.Client, member: str, **params: Any) -> list[dict[str, Any]]:
    resp = http.get(f"/v1/members/{member}/offers", params={"limit": 20, **params})
    assert resp.status_code == 200, resp.text
    found: list[dict[str, Any]] = resp.json()["offers"]
    return found


@pytest.fixture
def partners_http(app_settings: Settings, redis_client: redis.Redis, keys: Keys) -> Iterator[httpx.Client]:
    bundle, _ = make_bundle(with_partners=True)
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings, contact_policy=None, ranking_policy=None) as client:  # default policies
        yield client


def test_stayed_brand_names_the_members_brands(partners_http: httpx.Client) -> None:
    found = offers_of(partners_http, "m0000")  # stays with Aster (0.7) then Palace (0.3)
    assert found
    for offer in found:
        stayed = "stayed_brand" in offer["reasons"]
        assert stayed == (offer["brand"] in {"Aster", "Palace"}), offer
        assert offer["reason_details"].get("stayed_brand") == (offer["brand"] if stayed else None)
    assert any("stayed_brand" in o["reasons"] for o in found)


def test_partner_affinity_names_the_partner(partners_http: httpx.Client) -> None:
    boost = {
        "title": "Air offer",
        "category": "partner_transfer",
        "brand": "Air",
        "partner_id": "air",
        "min_tier": "classic",
        "valid_from": "2000-01-01",
        "valid_to": "2099-12-31",
        "points_cost": 0,
        "value": 500.0,
        "lever": 20.0,
    }
    assert partners_http.put("/v1/offers/p_air", json=boost, headers=WRITER).status_code == 200
    first = offers_of(partners_http, "m0002")[0]  # uses partner air; the campaign lever puts it first
    assert first["offer_id"] == "p_air"
    assert "partner_affinity" in first["reasons"] and first["reason_details"]["partner_affinity"] == "Air"
    assert "campaign" in first["reasons"]
    other = next(o for o in offers_of(partners_http, "m0001") if o["offer_id"] == "p_air")  # uses car only
    assert "partner_affinity" not in other["reasons"]


def test_no_profile_reasons_without_consent(partners_http: httpx.Client) -> None:
    found = offers_of(partners_http, "m0020")  # no consent to personalisation
    assert found and all(o["reasons"][0] == "popular_in_tier" for o in found)
    assert not any({"stayed_brand", "partner_affinity"} & set(o["reasons"]) for o in found)


LOVER = 5  # an informed member with consent
LOVED = "Palace"


def with_feature_table(bundle: ServingBundle) -> ServingBundle:
    """The bundle with a feature space and offer-feature embeddings in which brand Palace points the way
    member LOVER's embedding does (as a LightFM model that learned they love the brand would)."""
    side = ("brand:Aster", "brand:Budget", "brand:Palace", "category:dining", "category:stay", "min_tier:classic")
    space = FeatureSpace(member_side=(), member_ids=(), offer_side=side, offer_ids=tuple(bundle.offer_ids))
    member = bundle.member.factors[LOVER]
    factors = np.zeros((len(side), N_FACTORS), dtype=np.float32)
    factors[side.index(f"brand:{LOVED}")] = 60.0 * member / np.linalg.norm(member)
    table = OfferFeatureTable(factors, np.zeros(len(side), np.float32), np.ones(len(side), dtype=bool))
    return dataclasses.replace(bundle, feature_space_json=space.to_json(member_ids=False), offer_features=table)


NEW_OFFER = {
    "title": "Palace spa weekend",
    "category": "spa",
    "brand": LOVED,
    "min_tier": "classic",
    "valid_from": "2000-01-01",
    "valid_to": "2099-12-31",
    "points_cost": 0,
    "value": 3.0,
}


def test_a_new_offer_is_ranked_from_its_features_for_the_member_who_loves_its_brand(
    app_settings: Settings, redis_client: redis.Redis, keys: Keys
) -> None:
    bundle = with_feature_table(make_bundle()[0])
    publish(redis_client, bundle, keys=keys)
    with running_api(app_settings) as http:
        assert all(o["offer_id"] != "spa-new" for o in offers_of(http, f"m{LOVER:04d}"))
        assert http.put("/v1/offers/spa-new", json=NEW_OFFER, headers=WRITER).status_code == 200
        first = offers_of(http, f"m{LOVER:04d}")[0]
        assert first["offer_id"] == "spa-new" and first["reasons"][:1] == ["personalised"]
        assert "new_offer" in first["reasons"]
        assert first["model_score"] > 30  # half of the 60-long brand vector (brand and min_tier weigh alike)
        # a member whose embedding points the other way does not get it on top
        member = bundle.member.factors[LOVER]
        cosine = bundle.member.factors @ member / np.linalg.norm(bundle.member.factors, axis=1) / np.linalg.norm(member)
        hater = next(int(m) for m in np.argsort(cosine) if m % 7 and m % 17 != 3)
        assert offers_of(http, f"m{hater:04d}")[0]["offer_id"] != "spa-new"


def test_without_feature_embeddings_a_new_offer_borrows_from_its_brand_and_category(
    app_settings: Settings, redis_client: redis.Redis, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_bundle()[0]  # no feature embeddings, as an ALS or BPR model
    offers = bundle.offers
    group = np.flatnonzero(((offers["brand"] == LOVED) & (offers["category"] == "stay")).to_numpy())
    bias = bundle.offer.bias.copy()
    bias[group] += 10.0  # every member's model loves Palace stays
    bundle = dataclasses.replace(bundle, offer=Embeddings(bundle.offer.factors, bias, bundle.offer.informed))
    publish(redis_client, bundle, keys=keys)
    monkeypatch.setenv("OFFERS_RANKING_MAX_PER_BRAND", "100")  # see every Palace stay
    member = bundle.member.factors[LOVER]
    expected = float(bundle.offer.factors[group].mean(axis=0) @ member + bias[group].mean() + bundle.member.bias[LOVER])
    with running_api(app_settings) as http:
        body = {**NEW_OFFER, "category": "stay"}
        assert http.put("/v1/offers/stay-new", json=body, headers=WRITER).status_code == 200
        new = next(o for o in offers_of(http, f"m{LOVER:04d}") if o["offer_id"] == "stay-new")
    assert new["reasons"][0] == "personalised" and "new_offer" in new["reasons"]
    assert new["model_score"] == pytest.approx(expected, abs=0.05)
