"""Price levels: brands on one standardised scale of room revenue per night; members where they stay and
dine, shrunk towards their tier."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.price_levels import brand_prices, member_price_levels, property_brands

STAYS = pd.DataFrame(
    {
        "member_id": ["m0", "m0", "m1", "m2", "stranger"],
        "property_id": ["cheap", "cheap", "grand", "central", "grand"],
        "brand": ["Budget", "Budget", "Palace", "Central", "Palace"],
        "nights": [4, 2, 3, 1, 2],
        "revenue": [400.0, 200.0, 3000.0, 300.0, 2000.0],  # 100, 1000 and 300 a night
    }
)
NO_DINING = pd.DataFrame()


def test_brand_prices_are_log_rates_standardised_across_brands() -> None:
    prices = brand_prices(STAYS)
    assert prices["Budget"] < prices["Central"] < prices["Palace"]
    values = np.array(list(prices.values()))
    assert values.mean() == pytest.approx(0.0, abs=1e-12)
    assert values.std() == pytest.approx(1.0)
    gaps = (prices["Palace"] - prices["Central"]) / (prices["Central"] - prices["Budget"])
    assert gaps == pytest.approx(np.log(1000 / 300) / np.log(300 / 100))


def test_brands_without_paid_nights_have_no_price_and_one_brand_sits_at_zero() -> None:
    free = pd.concat(
        [
            STAYS,
            pd.DataFrame(
                {"member_id": ["m0"], "property_id": ["x"], "brand": ["Gift"], "nights": [1], "revenue": [0.0]}
            ),
        ]
    )
    assert "Gift" not in brand_prices(free)
    assert brand_prices(STAYS.iloc[:2]) == {"Budget": 0.0}
    assert brand_prices(STAYS.iloc[:0]) == {}


def test_a_member_sits_at_their_nights_weighted_level_shrunk_towards_their_tiers() -> None:
    prices = brand_prices(STAYS)
    ids = pd.Index(["m0", "m1", "m2", "m3"])  # "stranger" is not a member being placed
    levels = member_price_levels(ids, np.zeros(4, np.int8), STAYS, NO_DINING, prices, prior_nights=3.0)
    tier = (6 * prices["Budget"] + 3 * prices["Palace"] + prices["Central"]) / 10
    assert levels[0] == pytest.approx((6 * prices["Budget"] + 3 * tier) / 9)
    assert levels[1] == pytest.approx((3 * prices["Palace"] + 3 * tier) / 6)
    assert levels[3] == pytest.approx(tier)  # no stays: the tier's own level


def test_a_tier_with_no_evidence_falls_back_to_everyone_and_no_evidence_at_all_to_zero() -> None:
    prices = brand_prices(STAYS)
    ids = pd.Index(["m0", "m3"])
    levels = member_price_levels(ids, np.array([0, 4]), STAYS, NO_DINING, prices, prior_nights=3.0)
    assert levels[1] == pytest.approx(prices["Budget"])  # only m0 (tier 0) has evidence among these members
    assert member_price_levels(ids, np.array([0, 4]), STAYS.iloc[:0], NO_DINING, {}).tolist() == [0.0, 0.0]


def test_a_meal_in_a_hotel_counts_as_a_night_at_its_brand() -> None:
    prices = brand_prices(STAYS)
    dining = pd.DataFrame({"member_id": ["m3", "m3", "m3"], "property_id": ["grand", "grand", "unknown"]})
    ids = pd.Index(["m0", "m3"])
    without = member_price_levels(ids, np.zeros(2, np.int8), STAYS, NO_DINING, prices, prior_nights=1.0)
    with_meals = member_price_levels(ids, np.zeros(2, np.int8), STAYS, dining, prices, prior_nights=1.0)
    tier = (6 * prices["Budget"] + 2 * prices["Palace"]) / 8  # a hotel nobody stayed at says nothing
    assert with_meals[1] == pytest.approx((2 * prices["Palace"] + tier) / 3)
    assert without[1] == pytest.approx(prices["Budget"])
    assert property_brands(STAYS) == {"cheap": "Budget", "grand": "Palace", "central": "Central"}
