"""Cross-brand rewards: what a member can do with their points at partners, ranked by the member's
affinity from partner activity (partner popularity when they have none, or did not consent to
personalisation).

Two kinds: conversions at the partner's ratio (hotel points to miles, and back for partners the member
is active with, since their partner balance is not known here), and partner offers from the live
catalogue that pass the same eligibility and contact rules as any offer. Only what the member can
afford with their balance is listed, each with what they would get ("25,000 points -> 8,332 miles").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.errors import ConfigurationError, StoreError

Kind = Literal["conversion", "partner_offer"]
TO_PARTNER = "points_to_partner"
FROM_PARTNER = "partner_to_points"
POINTS = "points"
PARTNER_AFFINITY = "partner_affinity"
POPULAR_PARTNER = "popular_partner"


class RewardsSettings(BaseSettings):
    """Limits of the rewards list, from ``OFFERS_REWARDS_*``."""

    model_config = SettingsConfigDict(env_prefix="OFFERS_REWARDS_", extra="ignore", frozen=True)

    default_limit: int = Field(10, ge=1, description="Rewards returned when a request names no limit.")
    max_limit: int = Field(50, ge=1, le=500, description="Largest limit a rewards request may ask for.")
    max_conversion_points: int = Field(
        50_000, ge=1, description="Largest conversion shown: the member's balance, capped at this, in whole steps."
    )
    default_step: int = Field(
        1_000, ge=1, description="Conversion step for partners whose min_transfer is 0 (points or partner units)."
    )


def load_rewards_settings() -> RewardsSettings:
    try:
        return RewardsSettings.model_validate({})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid rewards settings (OFFERS_REWARDS_*): {exc}") from exc


@dataclass(frozen=True, slots=True)
class Partner:
    """A partner and its conversion rules (``recsys.schema.PARTNERS``), with its popularity: the share
    of members active with it in the training history."""

    partner_id: str
    name: str
    kind: str
    points_to_partner: float  # partner units per hotel point; 0: not offered
    partner_to_points: float  # hotel points per partner unit; 0: not offered
    min_transfer: int
    unit: str
    popularity: float = 0.0


def partner_records(partners: pd.DataFrame, popularity: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """JSON-ready partner records for publish (``recsys.catalogue.OffersHash.PARTNERS``)."""
    frame = partners.reset_index() if "partner_id" not in partners.columns else partners
    shares = popularity or {}
    out = []
    for row in frame.to_dict("records"):
        pid = str(row["partner_id"])
        unit = row.get("unit")
        out.append(
            {
                "partner_id": pid,
                "name": str(row.get("name") or pid),
                "kind": str(row.get("kind") or ""),
                "points_to_partner": _number(row.get("points_to_partner")),
                "partner_to_points": _number(row.get("partner_to_points")),
                "min_transfer": int(_number(row.get("min_transfer"))),
                "unit": str(unit) if isinstance(unit, str) and unit else "units",
                "popularity": float(shares.get(pid, 0.0)),
            }
        )
    return out


def _number(value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(number) else number


def parse_partners(blob: bytes | None) -> tuple[Partner, ...]:
    """Partners as publish stored them (none for a version published without them)."""
    if not blob:
        return ()
    try:
        return tuple(Partner(**p) for p in orjson.loads(blob))
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise StoreError(f"the partners of this version are malformed: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Reward:
    kind: Kind
    partner: Partner
    gives: int  # what the member spends: points, or partner units for a conversion back to points
    gives_unit: str
    gets: int | None  # what the member receives (None for a partner offer: see ``offer_index``)
    gets_unit: str | None
    affinity: float  # the member's share of partner activity with this partner (0 when none)
    direction: str | None = None  # TO_PARTNER or FROM_PARTNER for conversions
    offer_index: int | None = None  # the partner offer in the catalogue

    @property
    def reason(self) -> str:
        return PARTNER_AFFINITY if self.affinity > 0 else POPULAR_PARTNER


def _step(partner: Partner, default_step: int) -> int:
    return partner.min_transfer if partner.min_transfer > 0 else default_step


def conversions(
    balance: int, partners: Sequence[Partner], affinity: Mapping[str, float], settings: RewardsSettings
) -> list[Reward]:
    """Points-to-partner conversions the balance affords (the balance capped at ``max_conversion_points``,
    in whole steps of the partner's minimum), and partner-to-points conversions for active partners."""
    out: list[Reward] = []
    for p in partners:
        share = affinity.get(p.partner_id, 0.0)
        step = _step(p, settings.default_step)
        if p.points_to_partner > 0:
            spend = min(balance, settings.max_conversion_points) // step * step
            gets = math.floor(spend * p.points_to_partner + 1e-9)
            if spend >= step and gets > 0:
                out.append(Reward("conversion", p, spend, POINTS, gets, p.unit, share, TO_PARTNER))
        if p.partner_to_points > 0 and share > 0:
            gets = math.floor(step * p.partner_to_points + 1e-9)
            if gets > 0:
                out.append(Reward("conversion", p, step, p.unit, gets, POINTS, share, FROM_PARTNER))
    return out


def partner_offers(
    balance: int,
    partners: Sequence[Partner],
    affinity: Mapping[str, float],
    *,
    partner_of_offer: npt.NDArray[np.integer],
    points_cost: npt.NDArray[np.integer],
    allowed: npt.NDArray[np.bool_],
) -> list[Reward]:
    """Partner offers (``partner_of_offer`` >= 0 indexes ``partners``) that are ``allowed`` (eligible, not
    suppressed) and cost at most the balance."""
    idx = np.flatnonzero(allowed & (partner_of_offer >= 0) & (points_cost <= balance))
    out = []
    for i in idx.tolist():
        p = partners[int(partner_of_offer[i])]
        share = affinity.get(p.partner_id, 0.0)
        out.append(Reward("partner_offer", p, int(points_cost[i]), POINTS, None, None, share, offer_index=i))
    return out


def rank_rewards(rewards: list[Reward], value: npt.NDArray[np.floating], limit: int) -> list[Reward]:
    """Best first: the member's affinity with the partner, then the partner's popularity, then conversions
    before offers, then the offer's value to the business; ties by partner id, then offer index."""

    def key(r: Reward) -> tuple[float, float, int, float, str, int]:
        worth = float(value[r.offer_index]) if r.offer_index is not None else 0.0
        order = 0 if r.kind == "conversion" else 1
        return (-r.affinity, -r.partner.popularity, order, -worth, r.partner.partner_id, r.offer_index or -1)

    return sorted(rewards, key=key)[:limit]


def summary(reward: Reward, title: str | None = None) -> str:
    """What the member gives and gets, e.g. ``25,000 points -> 8,332 miles``."""
    gives = f"{reward.gives:,} {reward.gives_unit}"
    if reward.gets is not None:
        return f"{gives} -> {reward.gets:,} {reward.gets_unit}"
    return f"{gives} -> {title or 'offer'}"
