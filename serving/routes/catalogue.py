"""Live catalogue changes: edit, add or take down one offer without a new publish. The change and a
bumped catalogue revision are written in one MULTI; every server applies it on its next request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from recsys.access import Scope
from recsys.catalogue_changes import OfferBody, aapply_changes
from serving.body_guard import BODY_RESPONSES
from serving.deps import ReaderDep
from serving.schemas import ERROR_RESPONSES, example
from serving.security import access_responses, require_scope

router = APIRouter(
    prefix="/v1/offers", tags=["catalogue"], dependencies=[Depends(require_scope(Scope.CATALOGUE_WRITE))]
)

OfferId = Annotated[
    str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$", description="Offer id.", examples=["OF0107"])
]
_RESPONSES = {
    **BODY_RESPONSES,
    422: ERROR_RESPONSES[422],
    503: ERROR_RESPONSES[503],
    **access_responses(Scope.CATALOGUE_WRITE),
}


class OfferChanged(BaseModel):
    model_config = example(
        {
            "offer_id": "OF0107",
            "revision": 12,
            "offer": {
                "offer_id": "OF0107",
                "title": "Double points on weekend stays",
                "category": "stay",
                "brand": "Aster Grand",
                "city": "Shanghai",
                "partner_id": None,
                "min_tier": 1,
                "max_tier": None,
                "valid_from": "2025-03-01",
                "valid_to": "2025-04-30",
                "points_cost": 0,
                "value": 40.0,
                "budget": 500,
                "regions": [],
                "channels": ["app", "email"],
                "lever": 1.0,
                "per_member_limit": 1,
                "earns_qualifying_nights": False,
            },
        },
        {"offer_id": "OF0107", "revision": 13, "offer": None},
    )

    offer_id: str = Field(examples=["OF0107"])
    revision: int = Field(description="Catalogue revision after the change.", examples=[12])
    offer: dict[str, Any] | None = Field(description="The offer as now served; null once taken down.")


@router.put(
    "/{offer_id}",
    response_model=OfferChanged,
    summary="Create or replace an offer live",
    description="Checked by the data contract's offers rules (category, tiers, dates with valid_from <= "
    "valid_to, non-negative numbers). An offer not in the published catalogue is added and ranked from its "
    "features until the next publish.",
    responses=_RESPONSES,
)
async def put_offer(offer_id: OfferId, body: OfferBody, reader: ReaderDep) -> dict[str, Any]:
    record = body.record(offer_id)
    revision = await aapply_changes(reader.client, reader.keys, {offer_id: record})
    return {"offer_id": offer_id, "revision": revision, "offer": record}


@router.delete(
    "/{offer_id}",
    response_model=OfferChanged,
    summary="Take an offer down now",
    description="No member sees it from the next request on, on any channel, until it is PUT again. "
    "Idempotent: taking down an unknown or already withdrawn offer also answers 200.",
    responses=_RESPONSES,
)
async def take_down(offer_id: OfferId, reader: ReaderDep) -> dict[str, Any]:
    revision = await aapply_changes(reader.client, reader.keys, {offer_id: None})
    return {"offer_id": offer_id, "revision": revision, "offer": None}
