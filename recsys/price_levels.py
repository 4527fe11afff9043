"""How upmarket each brand is, and where each member sits on that scale.

Members stay and dine near one price level: a member of Nomad Inn habits is a poor audience for a Jade
Palace suite, and the reverse. A brand's price level is the log of its room revenue per night, standardised
across brands (0 is the average brand, 1 one standard deviation dearer), so the scale means the same for
any portfolio. A member's level is the mean level of the brands behind their stays (weighted by nights)
and hotel meals (each as one night), shrunk towards their tier's mean by ``PRIOR_NIGHTS``: one stay says
little, and a member with no stays or meals gets their tier's level. History is not decayed here: the level
a member books at moves slowly, and old stays still say where it lies.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from recsys.features import lookup, positions, property_attribute, room_rates
from recsys.tiers import Tier

PRIOR_NIGHTS = 3.0  # nights of the tier's mean level each member's own level is shrunk towards
N_TIERS = len(Tier)

FloatArray = npt.NDArray[np.float64]


def brand_prices(stays: pd.DataFrame) -> dict[str, float]:
    """Brand -> standardised log room revenue per night (brands without paid nights are left out)."""
    rate = room_rates(stays)
    rate = rate.loc[rate > 0]  # NaN (no nights) compares false
    if rate.empty:
        return {}
    log_rate = np.log(rate.to_numpy(np.float64))
    spread = log_rate.std()
    z = (log_rate - log_rate.mean()) / spread if spread > 0 else np.zeros_like(log_rate)
    return {str(b): float(v) for b, v in zip(rate.index, z, strict=True)}


def property_brands(stays: pd.DataFrame) -> dict[str, str]:
    """Hotel -> its brand, as the stays record it (dining rows name the hotel, not the brand)."""
    return property_attribute(stays, "brand")


def member_price_levels(
    member_ids: pd.Index,
    tiers: npt.NDArray[np.integer],
    stays: pd.DataFrame,
    dining: pd.DataFrame,
    prices: dict[str, float],
    *,
    prior_nights: float = PRIOR_NIGHTS,
) -> FloatArray:
    """Each member's price level (rows follow ``member_ids``; ``tiers`` 0..4 alongside), from the stays
    and hotel meals given (the caller cuts them at the training date)."""
    n = len(member_ids)
    rows, levels, weights = [np.empty(0, np.int64)], [np.empty(0)], [np.empty(0)]
    if not stays.empty:
        rows.append(positions(member_ids, stays["member_id"]))
        levels.append(lookup(stays["brand"], prices, np.nan).astype(np.float64))
        weights.append(stays["nights"].to_numpy(np.float64))
    if not dining.empty and "property_id" in dining:
        brand = pd.Series(lookup(dining["property_id"], property_brands(stays), None))
        rows.append(positions(member_ids, dining["member_id"]))
        levels.append(lookup(brand, prices, np.nan).astype(np.float64))
        weights.append(np.ones(len(dining)))
    row, level, weight = np.concatenate(rows), np.concatenate(levels), np.concatenate(weights)
    keep = (row >= 0) & ~np.isnan(level) & (weight > 0)
    total = np.bincount(row[keep], weights=weight[keep] * level[keep], minlength=n)
    nights = np.bincount(row[keep], weights=weight[keep], minlength=n)
    tier = np.clip(np.asarray(tiers, dtype=np.int64), 0, N_TIERS - 1)
    overall = total.sum() / nights.sum() if nights.sum() > 0 else 0.0
    tier_total = np.bincount(tier, weights=total, minlength=N_TIERS)
    tier_nights = np.bincount(tier, weights=nights, minlength=N_TIERS)
    tier_mean = np.divide(tier_total, tier_nights, out=np.full(N_TIERS, overall), where=tier_nights > 0)
    return (total + prior_nights * tier_mean[tier]) / (nights + prior_nights)
