"""Cross-brand rewards of one member: partner conversions and partner offers they can afford, ranked by
their affinity from partner activity."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from recsys.access import Scope
from recsys.catalogue import Catalogue, day_number
from recsys.contacts import ContactPolicy, ContactState
from recsys.decision import live_mask
from recsys.rewards import (
    Reward,
    RewardsSettings,
    conversions,
    load_rewards_settings,
    partner_offers,
    rank_rewards,
    summary,
)
from recsys.rules import eligible
from serving.deps import ReaderDep
from serving.errors import invalid_parameter
from serving.params import MemberIdPath, OnQuery, check_day
from serving.reader import MemberView
from serving.responses import OrjsonResponse
from serving.schemas import ERROR_RESPONSES, Channel
from serving.security import access_responses, require_scope

router = APIRouter(
    prefix="/v1/members",
    tags=["rewards"],
    dependencies=[Depends(require_scope(Scope.OFFERS_READ))],
    responses=access_responses(Scope.OFFERS_READ),
)


class Amount(BaseModel):
    amount: int = Field(ge=0, examples=[25000])
    unit: str = Field(examples=["points"])


class Receives(BaseModel):
    amount: int | None = Field(None, description="For a conversion: what the member receives.", examples=[8332])
    unit: str | None = Field(None, examples=["miles"])
    offer_id: str | None = Field(None, description="For a partner offer: the offer.", examples=[None])
    title: str | None = Field(None, examples=[None])


class RewardOut(BaseModel):
    kind: Literal["conversion", "partner_offer"]
    partner_id: str = Field(examples=["skywings"])
    partner_name: str = Field(examples=["SkyWings Airlines"])
    partner_kind: str = Field(examples=["airline"])
    direction: Literal["points_to_partner", "partner_to_points"] | None = Field(
        None, description="For a conversion: which way points move.", examples=["points_to_partner"]
    )
    gives: Amount
    gets: Receives
    summary: str = Field(examples=["25,000 points -> 8,332 miles"])
    affinity: float = Field(
        description="The member's share of partner activity with this partner (0: none, ranked by popularity).",
        examples=[0.75],
    )
    reasons: list[str] = Field(
        description="partner_affinity (the member is active with the partner) or popular_partner.",
        examples=[["partner_affinity"]],
    )


class MemberRewards(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": "M000123",
                    "version": "7",
                    "points_balance": 27300,
                    "rewards": [
                        {
                            "kind": "conversion",
                            "partner_id": "skywings",
                            "partner_name": "SkyWings Airlines",
                            "partner_kind": "airline",
                            "direction": "points_to_partner",
                            "gives": {"amount": 27000, "unit": "points"},
                            "gets": {"amount": 8999, "unit": "miles"},
                            "summary": "27,000 points -> 8,999 miles",
                            "affinity": 0.75,
                            "reasons": ["partner_affinity"],
                        },
                        {
                            "kind": "partner_offer",
                            "partner_id": "driveaway",
                            "partner_name": "DriveAway Rentals",
                            "partner_kind": "car_rental",
                            "gives": {"amount": 3000, "unit": "points"},
                            "gets": {"offer_id": "OF0231", "title": "DriveAway Rentals: 20% off in Paris"},
                            "summary": "3,000 points -> DriveAway Rentals: 20% off in Paris",
                            "affinity": 0.25,
                            "reasons": ["partner_affinity"],
                        },
                    ],
                }
            ]
        }
    )

    member_id: str = Field(examples=["M000123"])
    version: str = Field(description="The published version that answered.", examples=["7"])
    points_balance: int = Field(examples=[27300])
    rewards: list[RewardOut]


def rewards_settings(request: Request) -> RewardsSettings:
    """The rewards limits loaded once per app (``app.state.rewards_settings``)."""
    found = getattr(request.app.state, "rewards_settings", None)
    if found is None:
        found = request.app.state.rewards_settings = load_rewards_settings()
    return cast(RewardsSettings, found)


def _affinity(view: MemberView) -> dict[str, float]:
    """Partner id -> the member's share of partner activity; empty without consent to personalisation."""
    if not view.record.consent_personalisation:
        return {}
    names = view.catalogue.profile_partners
    return {names[i]: share for i, share in view.profile.partners if i < len(names)}


def _out(reward: Reward, c: Catalogue) -> dict[str, Any]:
    p = reward.partner
    out: dict[str, Any] = {
        "kind": reward.kind,
        "partner_id": p.partner_id,
        "partner_name": p.name,
        "partner_kind": p.kind,
        "direction": reward.direction,
        "gives": {"amount": reward.gives, "unit": reward.gives_unit},
        "affinity": round(reward.affinity, 4),
        "reasons": [reward.reason],
    }
    if reward.offer_index is None:
        out["gets"] = {"amount": reward.gets, "unit": reward.gets_unit}
        out["summary"] = summary(reward)
    else:
        title = str(c.display[reward.offer_index].get("title") or "")
        out["gets"] = {"offer_id": str(c.offer_ids[reward.offer_index]), "title": title}
        out["summary"] = summary(reward, title)
    return out


@router.get(
    "/{member_id}/rewards",
    response_model=MemberRewards,
    summary="What a member can do with their points at partners",
    description="Partner conversions (hotel points to miles at the partner's ratio, and back for partners the "
    "member is active with) and partner offers (car rental, cards, transfers) that the member can afford with "
    "their balance, ranked by their affinity from partner activity, then by partner popularity. Partner offers "
    "pass the same eligibility and contact rules as any offer on the channel.",
    responses=ERROR_RESPONSES,
)
async def member_rewards(
    member_id: MemberIdPath,
    request: Request,
    reader: ReaderDep,
    limit: Annotated[int | None, Query(ge=1, description="How many rewards (default 10).")] = None,
    channel: Annotated[Channel, Query(description="Where the rewards will be shown.")] = Channel.APP,
    on: OnQuery = None,
) -> Response:
    settings = rewards_settings(request)
    if limit is None:
        limit = settings.default_limit
    elif limit > settings.max_limit:
        raise invalid_parameter("limit", f"Input should be less than or equal to {settings.max_limit}")
    now = datetime.now(UTC)
    day = now.date() if on is None else check_day(on, now.date())
    view = await reader.member(member_id)
    record, c = view.record, view.catalogue
    base = eligible(c, tier=record.tier, country=record.country, day=day_number(day), channel=channel)
    policy: ContactPolicy = request.app.state.contact_policy
    allowed, _ = live_mask(base, c, ContactState.from_redis(view.contacts), view.live_redeemed, policy, now)
    affinity = _affinity(view)
    balance = record.points_balance
    found = conversions(balance, c.partners, affinity, settings) + partner_offers(
        balance, c.partners, affinity, partner_of_offer=c.partner_of_offer, points_cost=c.points_cost, allowed=allowed
    )
    body = {
        "member_id": member_id,
        "version": view.version,
        "points_balance": balance,
        "rewards": [_out(r, c) for r in rank_rewards(found, c.value, limit)],
    }
    return OrjsonResponse(body)
