"""The holdout's candidate mask: what a member could actually have been shown (tier, validity, region)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from models.base import TrainingSet
from recsys.dataset import LoyaltyData
from training.train import ineligible

START = pd.Timestamp("2026-03-01", tz="UTC")
END = pd.Timestamp("2026-03-29", tz="UTC")


def _case() -> tuple[LoyaltyData, TrainingSet]:
    members = pd.DataFrame({"member_id": ["a", "b", "c"], "home_country": ["CN", "IR", "GB"], "tier": [0, 2, 4]})
    day = pd.Timestamp("2026-03-10")
    offers = pd.DataFrame(
        {
            "offer_id": ["open", "cn_only", "gold", "expired", "capped"],
            "min_tier": [0, 0, 2, 0, 0],
            "max_tier": [np.nan, np.nan, np.nan, np.nan, 2.0],
            "valid_from": [day - pd.Timedelta(days=30)] * 5,
            "valid_to": [day, day, day, pd.Timestamp("2026-02-01"), day],
            "regions": [(), ("CN", "SG"), (), (), ()],
        }
    )
    empty = pd.DataFrame()
    data = LoyaltyData(members, offers, empty, empty, empty, empty, empty)
    ts = TrainingSet(
        interactions=sp.csr_matrix((3, 5), dtype=np.float32),
        member_ids=np.array(["a", "b", "c"]),
        offer_ids=offers["offer_id"].to_numpy().astype(str),
        member_tiers=np.array([0, 2, 4], dtype=np.int8),
    )
    return data, ts


@pytest.mark.parametrize(
    ("member", "blocked"),
    [
        (0, ["gold", "expired"]),
        (1, ["cn_only", "expired"]),
        (2, ["cn_only", "expired", "capped"]),
    ],
)
def test_masks_tier_validity_and_region(member: int, blocked: list[str]) -> None:
    data, ts = _case()
    mask = ineligible(data, ts, START, END).toarray()[member] != 0
    assert sorted(ts.offer_ids[mask]) == sorted(blocked)
