"""Ranking one member's offers from what publish precomputed, within the eligibility mask.

Order of sources: the member's precomputed candidates (best first), then, if too few are eligible,
the member's embedding scored against every other eligible offer (offers added after publish with
an embedding are always scored this way), then the most popular eligible offers in the member's
tier. A member whose embedding carries no signal, or who has not consented to personalisation, gets
popular-in-tier only.

``explain`` gives the reason codes of the offers finally chosen, with details a product team can show
(the brand the member stays with, the partner they use, when their points expire ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from models.base import top_k
from recsys.cache import MemberRecord
from recsys.catalogue import Catalogue
from recsys.profiles import MemberProfile
from recsys.tiers import QUALIFYING_NIGHTS, TIER_LABELS, Tier

PERSONALISED = "personalised"
POPULAR_IN_TIER = "popular_in_tier"
NEW_OFFER = "new_offer"
TIER_EXCLUSIVE = "tier_exclusive"
ENDING_SOON = "ending_soon"
POINTS_EXPIRING = "points_expiring"
NEAR_NEXT_TIER = "near_next_tier"
STAYED_BRAND = "stayed_brand"
PARTNER_AFFINITY = "partner_affinity"
CAMPAIGN = "campaign"

ENDING_SOON_DAYS = 7
POINTS_EXPIRING_DAYS = 90
NEAR_NEXT_TIER_NIGHTS = 5
POPULAR_TOP = 10  # a personalised offer among its tier's most popular this many also says popular_in_tier
PROFILE_MIN_SHARE = 0.1  # a brand or partner counts for a reason from this share of the member's activity
_EPOCH = date(1970, 1, 1)
_CLASSIC = int(Tier.CLASSIC)
NEXT_TIER_NIGHTS = tuple(QUALIFYING_NIGHTS[Tier(t + 1)] for t in range(int(Tier.DIAMOND)))


Pick = tuple[int, float, str]  # offer index, score, source


@dataclass(frozen=True, slots=True)
class RankedOffer:
    index: int  # offer index in the catalogue
    score: float  # model score for personalised offers, popularity in tier otherwise
    reasons: tuple[str, ...]  # the source first, then what else makes it fit


def personalised(record: MemberRecord) -> bool:
    return record.informed and record.consent_personalisation


def rank(
    record: MemberRecord,
    catalogue: Catalogue,
    eligible: npt.NDArray[np.bool_],
    limit: int,
    *,
    day: int,
    reasons: bool = True,
) -> list[RankedOffer]:
    """The member's top ``limit`` eligible offers, best first, each with its reasons (only its source
    without ``reasons``: callers that re-rank explain the offers they finally keep)."""
    if limit <= 0:
        return []
    idx, scores, n_personalised = ranked(record, catalogue, eligible, limit)
    sources = [PERSONALISED] * n_personalised + [POPULAR_IN_TIER] * (len(idx) - n_personalised)
    picked: list[Pick] = list(zip(idx.tolist(), scores.tolist(), sources, strict=True))
    if not reasons:
        return [RankedOffer(i, s, (source,)) for i, s, source in picked]
    why = _reasons(picked, record, catalogue, day)
    return [RankedOffer(i, s, w) for (i, s, _), w in zip(picked, why, strict=True)]


def ranked(
    record: MemberRecord, catalogue: Catalogue, eligible: npt.NDArray[np.bool_], limit: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.floating], int]:
    """``rank`` as arrays, for the request path: offer indices and scores, best first, and how many lead
    as personalised (the rest are popular in tier). No object per offer: ``decide`` keeps a quarter."""
    idx: npt.NDArray[np.intp] = _NONE
    scores: npt.NDArray[np.floating] = _NO_SCORES
    if personalised(record):
        idx, scores = _personalised(record, catalogue, eligible, limit)
    n_personalised = len(idx)
    if n_personalised < limit:
        row = min(record.tier, len(catalogue.popular) - 1)
        order = _popular_order(catalogue, row)
        first = order[eligible[order]][:limit]  # holds what is wanted however many of them were picked above
        wanted = limit - n_personalised
        if n_personalised:
            picked = set(idx.tolist())
            first = np.array([i for i in first.tolist() if i not in picked][:wanted], dtype=np.intp)
        else:
            first = first[:wanted]
        idx = np.concatenate([idx, first])
        scores = np.concatenate([scores.astype(np.float64), catalogue.popular[row, first].astype(np.float64)])
    return idx, scores, n_personalised


def _popular_order(catalogue: Catalogue, row: int) -> npt.NDArray[np.intp]:
    """Every offer, most popular in tier row ``row`` first (ties in catalogue order), once per catalogue."""
    return catalogue.memoised(("popular_order", row), lambda: np.argsort(-catalogue.popular[row], kind="stable"))


def _personalised(
    record: MemberRecord, catalogue: Catalogue, eligible: npt.NDArray[np.bool_], limit: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.floating]]:
    cand = record.candidates.astype(np.intp)
    cand = cand[cand < catalogue.n_published]
    cand = cand[eligible[cand]][:limit]
    if record.factors.shape != (catalogue.n_factors,):  # cannot score: the published order stands
        return cand, np.arange(0, -len(cand), -1, dtype=np.float64)  # 0, -1, -2 ... (not -0.0)
    member = record.factors.astype(np.float32)
    # records keep candidates best first, without their scores: the few kept are rescored here
    scores = catalogue.factors[cand] @ member
    scores += catalogue.bias[cand]
    scores += np.float32(record.bias)
    added = catalogue.n_published
    if len(cand) >= limit:
        # offers added after publish are few: score them for everyone so new offers get a chance
        if added >= len(catalogue):
            return cand, scores
        extra = np.flatnonzero(eligible[added:] & catalogue.embedded[added:]) + added
    else:
        others = eligible & catalogue.embedded
        others[cand] = False
        extra = np.flatnonzero(others)
    if len(extra):
        extra_scores = catalogue.factors[extra] @ member + catalogue.bias[extra] + np.float32(record.bias)
        order = _top(extra_scores, limit)
        cand = np.concatenate([cand, extra[order]])
        scores = np.concatenate([scores, extra_scores[order].astype(np.float32)])
        best = np.argsort(-scores, kind="stable")[:limit]
        cand, scores = cand[best], scores[best]
    return cand, scores


_NONE = np.empty(0, dtype=np.intp)
_NO_SCORES = np.empty(0, dtype=np.float64)


def _top(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.intp]:
    """Positions of the ``k`` largest scores, best first, ties to the lowest position (``top_k``)."""
    return top_k(scores[None, :], k)[0][0]


def _reasons(picked: list[Pick], record: MemberRecord, c: Catalogue, day: int) -> list[tuple[str, ...]]:
    """Each picked offer's source, then the facts that make it fit, computed for all picks at once."""
    idx = np.fromiter((i for i, _, _ in picked), dtype=np.intp, count=len(picked))
    cost = c.points_cost[idx]
    expiring = 0 <= record.points_expiring_day - day <= POINTS_EXPIRING_DAYS
    needed = NEXT_TIER_NIGHTS[record.tier] - record.qualifying_nights_ytd if record.tier < len(NEXT_TIER_NIGHTS) else 0
    flags = (
        (NEW_OFFER, idx >= c.n_published),
        (TIER_EXCLUSIVE, c.min_tier[idx] > _CLASSIC),
        (ENDING_SOON, c.valid_to[idx] - day < ENDING_SOON_DAYS),
        (POINTS_EXPIRING, (cost > 0) & (cost <= record.points_balance) & expiring),
        (NEAR_NEXT_TIER, c.earns_qualifying_nights[idx] & (0 < needed <= NEAR_NEXT_TIER_NIGHTS)),
    )
    columns = [(name, mask.tolist()) for name, mask in flags if mask.any()]
    return [(source, *(name for name, hits in columns if hits[j])) for j, (_, _, source) in enumerate(picked)]


Explained = tuple[tuple[str, ...], dict[str, str]]  # reason codes (source first), details by code


@dataclass(frozen=True, slots=True)
class _Facts:
    """What ``explain`` reads of every offer, as Python lists: for the ten offers of an answer, indexing a
    list costs a fraction of a numpy gather and its ``tolist``."""

    brand: list[str]
    partner_id: list[str]
    partner_name: list[str]
    valid_to: list[str]
    valid_to_day: list[int]
    min_tier: list[int]
    points_cost: list[int]
    earns_nights: list[bool]
    campaign: list[bool]

    @classmethod
    def of(cls, c: Catalogue) -> _Facts:
        records = c.records
        return cls(
            brand=[str(r.get("brand") or "") for r in records],
            partner_id=[str(r.get("partner_id") or "") for r in records],
            partner_name=[str(r.get("partner_name") or r.get("partner_id") or "") for r in records],
            valid_to=[str(r.get("valid_to") or "") for r in records],
            valid_to_day=c.valid_to.tolist(),
            min_tier=c.min_tier.tolist(),
            points_cost=c.points_cost.tolist(),
            earns_nights=c.earns_qualifying_nights.tolist(),
            campaign=(c.lever > 1.0).tolist(),
        )


def _popular_top(c: Catalogue, tier: int) -> frozenset[int]:
    """The offers among the ``POPULAR_TOP`` most popular in ``tier`` (the head of the popular fill's order)."""
    row = min(tier, len(c.popular) - 1)
    return c.memoised(("popular_top", row), lambda: frozenset(_popular_order(c, row)[:POPULAR_TOP].tolist()))


def explain(
    indices: Sequence[int],
    sources: Sequence[str],
    record: MemberRecord,
    profile: MemberProfile,
    c: Catalogue,
    day: int,
    *,
    points_expiring_days: int = POINTS_EXPIRING_DAYS,
    near_next_tier_share: float | None = None,
) -> list[Explained]:
    """Reasons of each chosen offer: its source, then stayed_brand (the brand), partner_affinity (the
    partner), tier_exclusive (the tier), points_expiring (the date), near_next_tier (the tier and nights to
    go), popular_in_tier, campaign, new_offer, ending_soon (the last day). ``points_expiring_days`` and
    ``near_next_tier_share`` should be those the arbitration boosts by (None: within a few nights)."""
    tier = int(record.tier)
    brands = {
        c.profile_brands[b] for b, share in profile.brands if b < len(c.profile_brands) and share >= PROFILE_MIN_SHARE
    }
    partners = {
        c.profile_partners[p]
        for p, share in profile.partners
        if p < len(c.profile_partners) and share >= PROFILE_MIN_SHARE
    }
    expiring = 0 <= record.points_expiring_day - day <= points_expiring_days
    expiry = (_EPOCH + timedelta(days=record.points_expiring_day)).isoformat() if expiring else ""
    near, next_label, to_go = False, "", 0
    if tier < len(NEXT_TIER_NIGHTS):
        target = NEXT_TIER_NIGHTS[tier]
        to_go = target - record.qualifying_nights_ytd
        threshold = (
            target * near_next_tier_share if near_next_tier_share is not None else target - NEAR_NEXT_TIER_NIGHTS
        )
        near = to_go > 0 and record.qualifying_nights_ytd >= threshold
        next_label = TIER_LABELS[tier + 1]
    facts = c.memoised(("explain_facts",), lambda: _Facts.of(c))
    popular = _popular_top(c, tier)
    exclusive = tier > _CLASSIC  # as the tier-exclusive boost: offers whose minimum tier is the member's
    balance, n_published = record.points_balance, c.n_published
    brand_of, partner_of, partner_name = facts.brand, facts.partner_id, facts.partner_name
    min_tier, cost, earns, campaign = facts.min_tier, facts.points_cost, facts.earns_nights, facts.campaign
    last_day, last_date = facts.valid_to_day, facts.valid_to
    tier_label = TIER_LABELS[tier] if exclusive else ""
    to_go_text = f"{to_go} nights to {next_label}" if near else ""
    out: list[Explained] = []
    for i, source in zip(indices, sources, strict=True):
        codes = [source]
        details: dict[str, str] = {}
        if brands and brand_of[i] in brands:
            codes.append(STAYED_BRAND)
            details[STAYED_BRAND] = brand_of[i]
        if partners and partner_of[i] and partner_of[i] in partners:
            codes.append(PARTNER_AFFINITY)
            details[PARTNER_AFFINITY] = partner_name[i]
        if exclusive and min_tier[i] == tier:
            codes.append(TIER_EXCLUSIVE)
            details[TIER_EXCLUSIVE] = tier_label
        if expiring and 0 < cost[i] <= balance:
            codes.append(POINTS_EXPIRING)
            details[POINTS_EXPIRING] = expiry
        if near and earns[i]:
            codes.append(NEAR_NEXT_TIER)
            details[NEAR_NEXT_TIER] = to_go_text
        if source != POPULAR_IN_TIER and i in popular:
            codes.append(POPULAR_IN_TIER)
        if campaign[i]:
            codes.append(CAMPAIGN)
        if i >= n_published:
            codes.append(NEW_OFFER)
        if last_day[i] - day < ENDING_SOON_DAYS:
            codes.append(ENDING_SOON)
            details[ENDING_SOON] = last_date[i]
        out.append((tuple(codes), details))
    return out
