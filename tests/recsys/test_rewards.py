"""Cross-brand rewards: conversions at the partner's ratio, partner offers, affordability and order."""

from __future__ import annotations

import numpy as np
import orjson
import pandas as pd
import pytest

from recsys.rewards import (
    Partner,
    RewardsSettings,
    conversions,
    parse_partners,
    partner_offers,
    partner_records,
    rank_rewards,
    summary,
)

AIR = Partner("air", "Air", "airline", 0.4, 2.0, 5000, "miles", popularity=0.3)
CARD = Partner("card", "Card", "card", 0.0, 1.0, 1000, "card points", popularity=0.6)
RIDE = Partner("ride", "Ride", "ride_hailing", 0.02, 0.0, 0, "credits", popularity=0.1)
SETTINGS = RewardsSettings()


@pytest.mark.parametrize(
    ("balance", "expected"),
    [
        (27_300, "25,000 points -> 10,000 miles"),  # whole steps of the partner's minimum
        (5_000, "5,000 points -> 2,000 miles"),
        (200_000, "50,000 points -> 20,000 miles"),  # capped at max_conversion_points
    ],
)
def test_points_convert_at_the_partners_ratio(balance: int, expected: str) -> None:
    found = [r for r in conversions(balance, [AIR], {}, SETTINGS) if r.direction == "points_to_partner"]
    assert [summary(r) for r in found] == [expected]


def test_nothing_the_balance_cannot_afford() -> None:
    assert conversions(4_999, [AIR], {}, SETTINGS) == []
    assert conversions(0, [RIDE], {}, SETTINGS) == []


def test_a_partner_without_minimum_converts_in_default_steps() -> None:
    (found,) = conversions(2_500, [RIDE], {}, SETTINGS)
    assert summary(found) == "2,000 points -> 40 credits"


def test_conversion_back_to_points_only_for_partners_the_member_uses() -> None:
    assert [r.direction for r in conversions(0, [CARD], {}, SETTINGS)] == []
    (back,) = conversions(0, [CARD], {"card": 0.5}, SETTINGS)
    assert back.direction == "partner_to_points" and summary(back) == "1,000 card points -> 1,000 points"


def test_partner_offers_must_be_allowed_and_affordable() -> None:
    found = partner_offers(
        2_000,
        [AIR, CARD],
        {},
        partner_of_offer=np.array([0, 1, -1, 1, 0]),
        points_cost=np.array([1_000, 3_000, 0, 0, 500]),
        allowed=np.array([True, True, True, True, False]),
    )
    assert [(r.offer_index, r.partner.partner_id) for r in found] == [(0, "air"), (3, "card")]
    assert summary(found[0], "Bonus miles") == "1,000 points -> Bonus miles"


def test_order_is_affinity_then_popularity_then_value() -> None:
    items = conversions(10_000, [AIR, CARD, RIDE], {"air": 0.2, "ride": 0.8}, SETTINGS) + partner_offers(
        10_000,
        [AIR, CARD, RIDE],
        {"air": 0.2, "ride": 0.8},
        partner_of_offer=np.array([1, 1, 0]),
        points_cost=np.array([0, 0, 0]),
        allowed=np.ones(3, dtype=bool),
    )
    value = np.array([1.0, 9.0, 5.0])
    ranked = rank_rewards(items, value, 10)
    assert [(r.partner.partner_id, r.kind, r.offer_index) for r in ranked] == [
        ("ride", "conversion", None),  # affinity 0.8
        ("air", "conversion", None),  # affinity 0.2: both directions first, then its offer
        ("air", "conversion", None),
        ("air", "partner_offer", 2),
        ("card", "partner_offer", 1),  # no affinity: popularity 0.6, the more valuable offer first
        ("card", "partner_offer", 0),
    ]
    assert [r.reason for r in ranked[:2]] == ["partner_affinity"] * 2 and ranked[-1].reason == "popular_partner"
    assert len(rank_rewards(items, value, 2)) == 2


def test_partner_records_round_trip() -> None:
    frame = pd.DataFrame(
        {
            "partner_id": ["air", "bare"],
            "name": ["Air", "Bare"],
            "kind": ["airline", "retail"],
            "points_to_partner": [0.4, np.nan],
            "partner_to_points": [2.0, 0.0],
            "min_transfer": [5000, 0],
        }
    )
    parsed = parse_partners(orjson.dumps(partner_records(frame, {"air": 0.3})))
    assert parsed[0] == Partner("air", "Air", "airline", 0.4, 2.0, 5000, "units", 0.3)
    assert parsed[1].points_to_partner == 0.0 and parsed[1].popularity == 0.0
    assert parse_partners(None) == ()
