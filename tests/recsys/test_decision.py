"""The request-time decision's parts: the live mask over the cached eligibility, and the arbitration's
score (propensity x value x lever x boosts x rotation) with the brand cap."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from recsys.contacts import ContactPolicy, ContactState
from recsys.decision import RankingPolicy, arbitrate, live_mask
from recsys.rules import eligible
from recsys.tiers import QUALIFYING_NIGHTS, Tier
from tests.recsys.test_ranking import DAY, catalogue, member

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
FLAT = RankingPolicy(value_weight=0, lever_weight=0, max_per_brand=10)  # boosts and rank alone
BOOSTS = (FLAT.tier_exclusive_boost, FLAT.near_next_tier_boost, FLAT.points_expiring_boost)


def test_live_mask_is_the_cached_mask_itself_when_nothing_is_ruled_out() -> None:
    c = catalogue()
    base = eligible(c, tier=2, country="CN", day=DAY, channel="app")
    mask, removed = live_mask(base, c, ContactState(), {}, ContactPolicy(), NOW)
    assert mask is base and removed == 0


def test_live_mask_copies_before_ruling_out_and_leaves_the_cached_mask_alone() -> None:
    c = catalogue()
    base = eligible(c, tier=2, country="CN", day=DAY, channel="app")
    before = base.copy()
    dismissed = ContactState(dismissals={"o2": int(NOW.timestamp()) - 60})
    mask, removed = live_mask(base, c, dismissed, {}, ContactPolicy(), NOW)
    assert removed == 1 and not mask[c.index["o2"]]
    assert np.array_equal(base, before) and not base.flags.writeable
    assert np.array_equal(mask, before & (np.arange(len(c)) != c.index["o2"]))


def _propensity(n: int) -> np.ndarray:
    return 1.0 / np.log2(2.0 + np.arange(n))


@pytest.mark.parametrize(
    ("nights", "expiring", "expected_boosts"),
    [
        # o5 is exclusive to the member's tier (Gold); o3 earns qualifying nights; o1..o5 cost 100..500 points
        (0, False, {5: BOOSTS[0]}),
        (QUALIFYING_NIGHTS[Tier.PLATINUM] - 1, False, {5: BOOSTS[0], 3: BOOSTS[1]}),
        (0, True, {5: BOOSTS[0] * BOOSTS[2], 1: BOOSTS[2], 2: BOOSTS[2], 3: BOOSTS[2], 4: BOOSTS[2]}),
    ],
)
def test_arbitration_multiplies_rank_propensity_by_each_boost_that_applies(
    nights: int, expiring: bool, expected_boosts: dict[int, float]
) -> None:
    c = catalogue()
    record = member([0, 1, 2, 3, 4, 5], qualifying_nights_ytd=nights, points_expiring_day=DAY + 10 if expiring else -1)
    idx = np.array([0, 1, 2, 3, 4, 5], dtype=np.intp)
    kept, final = arbitrate(idx, record, c, day=DAY, limit=6, policy=FLAT, rotation={})
    expected = _propensity(6) * np.array([expected_boosts.get(i, 1.0) for i in range(6)])
    assert final == pytest.approx(expected, rel=1e-12)
    assert kept == sorted(range(6), key=lambda j: (-expected[j], j))


def test_rotation_discounts_recently_shown_offers_and_ignores_unknown_ones() -> None:
    c = catalogue()
    idx = np.array([3, 0, 1], dtype=np.intp)
    kept, final = arbitrate(
        idx, member([3, 0, 1]), c, day=DAY, limit=3, policy=FLAT, rotation={"o3": 0.5, "gone": 0.1, "o4": 0.2}
    )
    assert final == pytest.approx(_propensity(3) * np.array([0.5, 1.0, 1.0]), rel=1e-12)
    assert kept == [1, 0, 2]  # 0.63, then 0.5 twice: a tie keeps the model's order


def test_brand_cap_keeps_the_best_of_each_brand_in_score_order() -> None:
    c = catalogue()  # every offer is brand B
    kept, _ = arbitrate(
        np.arange(6, dtype=np.intp), member([]), c, day=DAY, limit=6, policy=RankingPolicy(max_per_brand=2), rotation={}
    )
    assert len(kept) == 2
