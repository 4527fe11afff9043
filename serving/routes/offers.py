"""A member's ranked offers, eligible now on the asking channel."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import State
from starlette.responses import Response

from recsys.access import Scope
from recsys.catalogue import day_number
from recsys.contacts import ContactState
from recsys.decision import decide
from recsys.errors import MemberNotFoundError, NotPublishedError, StoreError
from recsys.settings import Settings
from recsys.tiers import TIER_LABELS
from serving.errors import invalid_parameter
from serving.fallback import DEGRADED, DEGRADED_HEADER, Fallback
from serving.params import MemberIdPath, OnQuery, check_day
from serving.reader import OfferReader
from serving.responses import OrjsonResponse
from serving.schemas import ERROR_RESPONSES, Channel, MemberOffers
from serving.security import access_responses, require_scope

ACCESS = require_scope(Scope.OFFERS_READ)
"""Who may read offers: the route's dependency, and the check ``serving.hot_path`` makes itself."""

router = APIRouter(
    prefix="/v1/members",
    tags=["offers"],
    dependencies=[Depends(ACCESS)],
    responses=access_responses(Scope.OFFERS_READ),
)


@router.get(
    "/{member_id}/offers",
    response_model=MemberOffers,
    summary="A member's offers, best first",
    description="Ranked offers the member may see now on the channel: tier, validity, budget, region and "
    "channel rules applied before ranking. `limit` may not exceed the configured maximum (50 by default). "
    "While Redis is unreachable the answer comes from the last good copy of the served version (popular in "
    "tier, eligibility as far as known), with `degraded` set and the header `X-Offers-Degraded`.",
    responses=ERROR_RESPONSES,
)
async def member_offers(
    member_id: MemberIdPath,
    request: Request,
    limit: Annotated[int | None, Query(ge=1, description="How many offers (default from settings).")] = None,
    channel: Annotated[Channel, Query(description="Where the offers will be shown.")] = Channel.APP,
    on: OnQuery = None,
) -> Response:
    return await answer(request.app.state, member_id, limit=limit, channel=channel, on=on)


async def answer(state: State, member_id: str, *, limit: int | None, channel: Channel, on: date | None) -> Response:
    """The answer of ``GET /v1/members/{member_id}/offers`` to parameters already checked against the
    signature above; the route and ``serving.hot_path`` both call it. Raises what the app's error handlers
    map (unknown member, nothing published, Redis down with no last good copy, a limit over the maximum)."""
    reader: OfferReader = state.reader
    settings: Settings = state.settings
    if limit is None:
        limit = settings.default_limit
    elif limit > settings.max_limit:
        raise invalid_parameter("limit", f"Input should be less than or equal to {settings.max_limit}")
    now = datetime.now(UTC)
    day_of = now.date() if on is None else check_day(on, now.date())
    fallback: Fallback = state.fallback
    try:
        view = await reader.member(member_id)
    except (MemberNotFoundError, NotPublishedError):
        raise
    except StoreError:  # Redis unreachable: the last good copy, marked degraded, rather than no offers
        body = fallback.answer(
            member_id,
            channel=channel.value,
            day=day_of,
            now=now,
            limit=limit,
            contact_policy=state.contact_policy,
            ranking_policy=state.ranking_policy,
        )
        if body is None:
            raise
        return OrjsonResponse(body, headers={DEGRADED_HEADER: DEGRADED})
    fallback.seen(member_id, view)
    record, catalogue = view.record, view.catalogue
    decision = decide(
        record,
        catalogue,
        channel=channel.value,
        day=day_number(day_of),
        now=now,
        limit=limit,
        contacts=ContactState.from_redis(view.contacts),
        live_redeemed=view.live_redeemed,
        contact_policy=state.contact_policy,
        ranking_policy=state.ranking_policy,
        profile=view.profile,
    )
    offers: list[dict[str, Any]] = [
        {
            **catalogue.display[chosen.index],
            "score": chosen.score,
            "model_score": chosen.model_score,
            "reasons": chosen.reasons,
            "reason_details": chosen.details,
        }
        for chosen in decision.offers
    ]
    body = {
        "member_id": member_id,
        "version": view.version,
        "tier": TIER_LABELS[record.tier] if record.tier < len(TIER_LABELS) else str(record.tier),
        "channel": channel.value,
        "on": day_of.isoformat(),
        "offers": offers,
    }
    return OrjsonResponse(body)
