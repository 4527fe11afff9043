"""Hard eligibility, as boolean masks over every offer of a ``Catalogue``.

The same functions serve one real-time request (``eligible``) and a batch of members
(``eligible_matrix``, e.g. weekly email picks), so both follow the same rules: tier floor and
ceiling, validity window (inclusive), remaining budget, channel, home-country regions, takedowns,
and no marketing email to a member who has not consented to it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recsys.catalogue import CHANNEL_BITS, Catalogue

Mask = npt.NDArray[np.bool_]


def reachable(channel: str | None, *, consent_email: bool) -> bool:
    """Whether a member may be shown offers on ``channel`` at all."""
    return consent_email or channel != "email"


def eligible(catalogue: Catalogue, *, tier: int, country: str, day: int, channel: str | None = None) -> Mask:
    """Offers a member of ``tier`` living in ``country`` may see on ``day`` (days since 1970-01-01)
    on ``channel`` (None: any channel). The mask is cached per catalogue and read-only."""
    key = (tier, country, day, channel)
    cached = catalogue.memo.get(key)
    if cached is not None:
        return cached
    if channel is not None and channel not in CHANNEL_BITS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNEL_BITS)}")
    c = catalogue
    mask = c.active & (c.min_tier <= tier) & (c.max_tier >= tier) & (c.valid_from <= day) & (c.valid_to >= day)
    mask &= ~c.limited | (c.budget_left > 0)
    if channel is not None:
        mask &= (c.channels & CHANNEL_BITS[channel]) != 0
    if c.region_allowed:
        mask &= c.region_ok(country)
    return catalogue.remember(key, mask)


def eligible_matrix(
    catalogue: Catalogue,
    *,
    tiers: npt.NDArray[np.integer],
    countries: npt.NDArray[np.str_] | list[str],
    day: int,
    channel: str | None = None,
    consent_email: npt.NDArray[np.bool_] | None = None,
) -> Mask:
    """(members, offers) eligibility for many members at once, computed once per (tier, country)."""
    tiers = np.asarray(tiers)
    countries = np.asarray(countries, dtype=np.str_)
    out = np.zeros((len(tiers), len(catalogue)), dtype=bool)
    pairs, inverse = np.unique(np.stack([tiers.astype(np.str_), countries]), axis=1, return_inverse=True)
    for j in range(pairs.shape[1]):
        rows = inverse.reshape(-1) == j
        out[rows] = eligible(catalogue, tier=int(pairs[0, j]), country=str(pairs[1, j]), day=day, channel=channel)
    if consent_email is not None and channel == "email":
        out[~np.asarray(consent_email, dtype=bool)] = False
    return out
