"""Ranking one member from precomputed candidates, embedding fill, popular fill, and reasons."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.cache import MemberRecord
from recsys.catalogue import Catalogue, day_number
from recsys.profiles import EMPTY_PROFILE, MemberProfile
from recsys.ranking import RankedOffer, explain, rank

DAY = day_number("2025-06-01")
N = 6


def catalogue(overlay: dict[str, dict[str, object] | None] | None = None) -> Catalogue:
    records = [
        {
            "offer_id": f"o{i}",
            "title": f"O{i}",
            "category": "stay",
            "brand": "B",
            "min_tier": 2 if i == 5 else 0,
            "valid_from": "2025-01-01",
            "valid_to": "2025-06-03" if i == 4 else "2025-12-31",
            "points_cost": 100 * i,
            "earns_qualifying_nights": i == 3,
        }
        for i in range(N)
    ]
    factors = np.eye(N, 2, dtype=np.float32) * np.arange(N, dtype=np.float32)[:, None]  # only o1 is non-zero: (0, 1)
    popular = np.tile(np.arange(N, dtype=np.float32)[::-1], (5, 1))  # o0 most popular
    bias = np.array([0, 0, 0, 0, 0, 9], dtype=np.float32)  # o5 scores 9.0 for any member (0 bias of theirs)
    return Catalogue.build(records, factors=factors, bias=bias, popular=popular, overlay=overlay)


def member(candidates: list[int], *, informed: bool = True, tier: int = 2, **extra: object) -> MemberRecord:
    fields: dict[str, object] = {
        "tier": tier,
        "country": "CN",
        "points_balance": 1000,
        "qualifying_nights_ytd": 0,
        "points_expiring_day": -1,
        "consent_personalisation": True,
        "consent_email": True,
        "informed": informed,
        "factors": np.array([1.0, 2.0], dtype=np.float16),
        "bias": 0.0,
        "candidates": np.array(candidates, dtype=np.uint16),
    } | extra
    return MemberRecord(**fields)  # type: ignore[arg-type]


def ids(c: Catalogue, ranked: list[RankedOffer]) -> list[str]:
    return [str(c.offer_ids[r.index]) for r in ranked]


def test_precomputed_candidates_first_within_the_mask() -> None:
    c = catalogue()
    mask = np.array([True, True, False, True, True, True])
    ranked = rank(member([2, 5, 3, 1]), c, mask, 3, day=DAY)
    assert ids(c, ranked) == ["o5", "o3", "o1"]
    assert all(r.reasons[0] == "personalised" for r in ranked)


def test_too_few_candidates_fill_from_embedding_then_popular() -> None:
    c = catalogue()
    mask = np.ones(N, dtype=bool)
    mask[2] = False
    ranked = rank(member([5], factors=np.array([1.0, 0.5], dtype=np.float16)), c, mask, N, day=DAY)
    # o5 (9.0) candidate, then x + 0.5y: o1 = 0.5, o0 = o3 = o4 = 0; o2 not eligible
    assert ids(c, ranked)[:2] == ["o5", "o1"]
    assert sorted(ids(c, ranked)) == ["o0", "o1", "o3", "o4", "o5"]
    assert [r.score for r in ranked] == sorted((r.score for r in ranked), reverse=True)


def test_popular_fill_when_nothing_scores() -> None:
    c = catalogue()
    mask = np.array([True, False, False, True, False, False])
    ranked = rank(member([], factors=np.array([1.0], dtype=np.float16)), c, mask, 5, day=DAY)  # wrong width
    assert ids(c, ranked) == ["o0", "o3"]
    assert all(r.reasons[0] == "popular_in_tier" for r in ranked)


@pytest.mark.parametrize("kind", ["uninformed", "no_consent"])
def test_unpersonalised_member_gets_popular_in_tier(kind: str) -> None:
    c = catalogue()
    record = member([5, 4], informed=kind != "uninformed", consent_personalisation=kind != "no_consent")
    ranked = rank(record, c, np.ones(N, dtype=bool), 3, day=DAY)
    assert ids(c, ranked) == ["o0", "o1", "o2"]
    assert [r.reasons[0] for r in ranked] == ["popular_in_tier"] * 3


def test_offer_added_after_publish_competes_on_its_embedding() -> None:
    new: dict[str, object] = {
        "title": "New",
        "valid_from": "2025-01-01",
        "valid_to": "2025-12-31",
        "factors": [0.0, 10.0],
    }
    c = catalogue({"n": new})
    ranked = rank(member([5, 4, 3]), c, np.ones(len(c), dtype=bool), 2, day=DAY)
    assert ids(c, ranked)[0] == "n"  # 20.0 beats the precomputed 9.0
    assert "new_offer" in ranked[0].reasons


def test_reasons() -> None:
    c = catalogue()
    record = member([5, 4, 3], points_expiring_day=DAY + 10, qualifying_nights_ytd=47)
    reasons = {str(c.offer_ids[r.index]): r.reasons for r in rank(record, c, np.ones(N, dtype=bool), 3, day=DAY)}
    assert "tier_exclusive" in reasons["o5"]
    assert "ending_soon" in reasons["o4"] and "ending_soon" not in reasons["o5"]
    assert "points_expiring" in reasons["o3"]  # costs 300 of 1000 points, which expire in 10 days
    assert "near_next_tier" in reasons["o3"]  # gold with 47 nights: platinum at 50


def test_zero_limit_is_empty() -> None:
    assert rank(member([1]), catalogue(), np.ones(N, dtype=bool), 0, day=DAY) == []


def test_offer_added_without_embedding_only_fills_as_popular() -> None:
    new: dict[str, object] = {
        "title": "Bare",
        "brand": "Unknown",
        "category": "card",  # no published offer shares its brand or category: nothing to borrow
        "valid_from": "2025-01-01",
        "valid_to": "2025-12-31",
    }
    c = catalogue({"n": new})
    record = member([5], bias=-50.0)  # the candidate scores -41: even so, the bare new offer comes after it
    ranked = rank(record, c, np.ones(len(c), dtype=bool), len(c), day=DAY)
    assert ids(c, ranked)[-1] == "n"
    assert ranked[-1].reasons[:2] == ("popular_in_tier", "new_offer")
    assert not c.embedded[c.index["n"]] and c.embedded[: c.n_published].all()


def test_explain_gives_reasons_with_what_they_refer_to() -> None:
    records = [
        {"offer_id": "stay", "brand": "B", "min_tier": 2, "valid_to": "2025-06-03", "points_cost": 300},
        {"offer_id": "miles", "brand": "Air", "partner_id": "air", "partner_name": "Air Co", "lever": 1.5},
        {"offer_id": "nights", "brand": "C", "earns_qualifying_nights": True, "points_cost": 5000},
    ]
    for r in records:
        r |= {"title": r["offer_id"], "category": "stay", "valid_from": "2025-01-01"} | ({"valid_to": "2025-12-31"} | r)
    c = Catalogue.build(
        records,
        factors=np.zeros((3, 2), np.float32),
        bias=np.zeros(3, np.float32),
        popular=np.tile(np.array([3.0, 2.0, 1.0], np.float32), (5, 1)),
        profile_brands=("C", "B"),
        profile_partners=("air",),
    )
    record = member([], points_expiring_day=DAY + 30, qualifying_nights_ytd=21)  # gold, far from platinum (50)
    profile = MemberProfile(brands=((1, 0.6), (0, 0.05)), partners=((0, 1.0),))
    got = explain([0, 1, 2], ["personalised"] * 3, record, profile, c, DAY, points_expiring_days=60)
    assert got[0] == (
        ("personalised", "stayed_brand", "tier_exclusive", "points_expiring", "popular_in_tier", "ending_soon"),
        {"stayed_brand": "B", "tier_exclusive": "gold", "points_expiring": "2025-07-01", "ending_soon": "2025-06-03"},
    )
    assert got[1] == (
        ("personalised", "partner_affinity", "popular_in_tier", "campaign"),
        {"partner_affinity": "Air Co"},
    )
    # C weighs 5% of the member's stays: no stayed_brand; 5,000 points cost more than the 1,000 held
    assert got[2] == (("personalised", "popular_in_tier"), {})


@pytest.mark.parametrize(("nights", "near"), [(39, False), (40, True), (49, True), (50, False)])
def test_near_next_tier_follows_the_configured_share(nights: int, near: bool) -> None:
    c = catalogue()  # o3 earns qualifying nights
    record = member([], tier=2, qualifying_nights_ytd=nights)  # gold; platinum needs 50
    ((codes, details),) = explain([3], ["personalised"], record, EMPTY_PROFILE, c, DAY, near_next_tier_share=0.8)
    assert ("near_next_tier" in codes) is near
    if near:
        assert details["near_next_tier"] == f"{50 - nights} nights to platinum"
