"""The offer decision for one member: the learned ranking, then the member's live rules, then
business value, then diversity. The same function serves every channel.

Order: hard eligibility (``recsys.rules``) and, from live state in Redis, contact suppression,
per-member redemption limits and live budgets; the model's candidates within that mask
(``recsys.ranking``); arbitration ``propensity^1 x value^w_value x lever^w_lever x boosts x rotation``
where propensity is a scale-free discount of the model's rank (1 / log2(2 + rank), so every family
arbitrates alike); at most ``max_per_brand`` offers of one brand; on email, at most what the weekly
cap leaves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.cache import MemberRecord
from recsys.catalogue import Catalogue
from recsys.contacts import ContactPolicy, ContactState, iso_week
from recsys.errors import ConfigurationError
from recsys.profiles import EMPTY_PROFILE, MemberProfile
from recsys.ranking import NEXT_TIER_NIGHTS, PERSONALISED, POPULAR_IN_TIER, explain, ranked
from recsys.rules import eligible, reachable
from recsys.tiers import Tier

Mask = npt.NDArray[np.bool_]


class RankingPolicy(BaseSettings):
    """Arbitration and diversity, from ``OFFERS_RANKING_*``; every rule has a documented default."""

    model_config = SettingsConfigDict(env_prefix="OFFERS_RANKING_", extra="ignore", frozen=True)

    value_weight: float = Field(0.5, ge=0, description="Exponent of the offer's business value (relative to median).")
    lever_weight: float = Field(1.0, ge=0, description="Exponent of the campaign lever set in the catalogue.")
    tier_exclusive_boost: float = Field(
        1.2, gt=0, description="Multiplier for offers whose minimum tier is the member's."
    )
    near_next_tier_share: float = Field(
        0.8, gt=0, le=1, description="Share of the next tier's qualifying nights that makes a member 'near' it."
    )
    near_next_tier_boost: float = Field(
        1.3, gt=0, description="Multiplier for offers earning nights, for near members."
    )
    points_expiring_days: int = Field(60, ge=0, description="Points expiring within this many days count as expiring.")
    points_expiring_boost: float = Field(1.3, gt=0, description="Multiplier for affordable offers when points expire.")
    max_per_brand: int = Field(2, ge=1, description="Most offers of one brand in one response.")
    pool_factor: int = Field(4, ge=1, description="Candidates re-ranked per offer returned.")


def load_ranking_policy() -> RankingPolicy:
    try:
        return RankingPolicy.model_validate({})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid ranking policy (OFFERS_RANKING_*): {exc}") from exc


@dataclass(slots=True)
class Chosen:
    """One offer of a decision (not frozen: ten are made per request, and a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``)."""

    index: int  # offer index in the catalogue
    score: float  # the decision score
    model_score: float  # what the model (or popularity) said
    reasons: tuple[str, ...]
    details: dict[str, str]  # reason code -> what to show (brand, partner, date)


@dataclass(frozen=True, slots=True)
class Decision:
    offers: list[Chosen]
    suppressed: int  # offers removed by contact policy or limits


def live_mask(
    base: Mask,
    catalogue: Catalogue,
    state: ContactState,
    live_redeemed: Mapping[str, int],  # redemptions recorded since the served version was published
    policy: ContactPolicy,
    now: datetime,
) -> tuple[Mask, int]:
    """``base`` less what the member's contact state and the live redemption counters rule out (``base``
    itself, read-only, when they rule nothing out)."""
    mask = base
    limits = {
        offer: catalogue.records[catalogue.index[offer]].get("per_member_limit")
        for offer in state.redeemed
        if offer in catalogue.index
    }
    removed = 0
    for offer in policy.excluded(state, now, limits):
        i = catalogue.index.get(offer)
        if i is not None and mask[i]:
            if mask is base:
                mask = base.copy()
            mask[i] = False
            removed += 1
    for offer, count in live_redeemed.items():  # redemptions since publish, beyond the published ones
        i = catalogue.index.get(offer)
        if i is not None and mask[i] and catalogue.limited[i] and catalogue.budget_left[i] - count <= 0:
            if mask is base:
                mask = base.copy()
            mask[i] = False
    return mask, removed


def _tier_weights(catalogue: Catalogue, tier: int, policy: RankingPolicy) -> npt.NDArray[np.float64]:
    """Every offer's ``value^w_value x lever^w_lever``, times the tier-exclusive boost where its minimum
    tier is ``tier`` (above Classic): what the arbitration multiplies for every member of ``tier``,
    computed once per catalogue, tier and policy."""

    def build() -> npt.NDArray[np.float64]:
        value = catalogue.value.astype(np.float64)
        value_term = np.power(np.maximum(value / catalogue.value_median, 1e-3), policy.value_weight)
        lever_term = np.power(np.maximum(catalogue.lever.astype(np.float64), 1e-3), policy.lever_weight)
        weights = value_term * lever_term
        if tier > int(Tier.CLASSIC):
            weights[catalogue.min_tier == tier] *= policy.tier_exclusive_boost
        return weights

    weights = (policy.value_weight, policy.lever_weight, policy.tier_exclusive_boost)
    return catalogue.memoised(("tier_weights", tier, *weights), build)


def _near_weights(catalogue: Catalogue, policy: RankingPolicy) -> npt.NDArray[np.float64]:
    """The near-next-tier boost of each offer (1 for offers earning no qualifying nights), per catalogue."""
    boost = policy.near_next_tier_boost
    return catalogue.memoised(("near_weights", boost), lambda: np.where(catalogue.earns_qualifying_nights, boost, 1.0))


def _weights(
    record: MemberRecord, catalogue: Catalogue, idx: npt.NDArray[np.intp], day: int, p: RankingPolicy
) -> npt.NDArray[np.float64]:
    """``value^w_value x lever^w_lever x boosts`` of the offers ``idx`` for this member: tier-exclusive,
    near the next tier (offers earning nights), points expiring (offers the balance affords)."""
    tier = int(record.tier)
    weights = _tier_weights(catalogue, tier, p)[idx]
    if tier < len(NEXT_TIER_NIGHTS) and record.qualifying_nights_ytd >= p.near_next_tier_share * NEXT_TIER_NIGHTS[tier]:
        weights *= _near_weights(catalogue, p)[idx]
    if 0 <= record.points_expiring_day - day <= p.points_expiring_days:
        cost = catalogue.points_cost[idx]
        weights[(cost > 0) & (cost <= record.points_balance)] *= p.points_expiring_boost
    return weights


_PROPENSITY = 1.0 / np.log2(2.0 + np.arange(2048))  # by model rank: the request path slices it


def arbitrate(
    idx: npt.NDArray[np.intp],
    record: MemberRecord,
    catalogue: Catalogue,
    *,
    day: int,
    limit: int,
    policy: RankingPolicy,
    rotation: Mapping[str, float],
) -> tuple[list[int], npt.NDArray[np.float64]]:
    """Re-rank model picks (``idx``: offer indices, best first) by propensity x value x lever x boosts x
    rotation, then cap each brand: the positions in ``idx`` kept, in order, and every position's score."""
    n = len(idx)
    final = _weights(record, catalogue, idx, day, policy)
    final *= _PROPENSITY[:n] if n <= len(_PROPENSITY) else 1.0 / np.log2(2.0 + np.arange(n))
    if rotation:  # a few recently shown offers: looked up by offer index, not per pick by offer id
        position = {i: j for j, i in enumerate(idx.tolist())}
        for offer, weight in rotation.items():
            j = position.get(catalogue.index.get(offer, -1))
            if j is not None:
                final[j] *= weight
    kept: list[int] = []
    per_brand: dict[int, int] = {}
    brands = catalogue.brand_code[idx].tolist()
    most = policy.max_per_brand
    for j in np.argsort(-final, kind="stable").tolist():
        brand = brands[j]
        shown = per_brand.get(brand, 0)
        if shown >= most:
            continue
        per_brand[brand] = shown + 1
        kept.append(j)
        if len(kept) == limit:
            break
    return kept, final


def decide(
    record: MemberRecord,
    catalogue: Catalogue,
    *,
    channel: str,
    day: int,
    now: datetime,
    limit: int,
    contacts: ContactState,
    live_redeemed: Mapping[str, int],
    contact_policy: ContactPolicy,
    ranking_policy: RankingPolicy,
    profile: MemberProfile = EMPTY_PROFILE,
) -> Decision:
    """The member's offers for ``channel``: eligibility, live rules, model ranking, value, diversity;
    each with its reasons (``recsys.ranking.explain``, using the member's ``profile``)."""
    if not reachable(channel, consent_email=record.consent_email):
        return Decision([], 0)
    if channel == "email":
        limit = min(limit, contact_policy.email_remaining(contacts, iso_week(now)))
    if limit <= 0:
        return Decision([], 0)
    base = eligible(catalogue, tier=record.tier, country=record.country, day=day, channel=channel)
    mask, removed = live_mask(base, catalogue, contacts, live_redeemed, contact_policy, now)
    idx, scores, n_personalised = ranked(record, catalogue, mask, limit * ranking_policy.pool_factor)
    if not len(idx):
        return Decision([], removed)
    kept, final = arbitrate(
        idx,
        record,
        catalogue,
        day=day,
        limit=limit,
        policy=ranking_policy,
        rotation=contact_policy.rotation_weights(contacts, now),
    )
    chosen = idx[kept].tolist()
    explained = explain(
        chosen,
        [PERSONALISED if j < n_personalised else POPULAR_IN_TIER for j in kept],
        record,
        profile,
        catalogue,
        day,
        points_expiring_days=ranking_policy.points_expiring_days,
        near_next_tier_share=ranking_policy.near_next_tier_share,
    )
    model_scores, decision_scores = scores[kept].tolist(), final[kept].tolist()
    offers = [
        Chosen(i, score, model_score, codes, why)
        for i, score, model_score, (codes, why) in zip(chosen, decision_scores, model_scores, explained, strict=True)
    ]
    return Decision(offers, removed)
