"""Feedback events from apps, email and web: each event is checked on its own, the valid ones are
recorded at once (event log, contact caps, live redemption counters) and acknowledged only after
Redis applied them.

Status: 202 every event accepted (recorded, or a retry of one already recorded); 207 some events
rejected, the others recorded; 422 none accepted. The body lists each rejected event by ``index``
with the ``field`` and ``reason``, whatever the status. 413 when the batch exceeds the limit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal, cast

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, RootModel
from starlette.responses import Response

from recsys.access import Scope
from recsys.contacts import ContactPolicy, load_contact_policy
from recsys.events import EventSettings, OfferEvent, arecord_events, load_event_settings, parse_events
from serving.body_guard import BODY_RESPONSES
from serving.deps import ReaderDep
from serving.errors import error_response
from serving.responses import OrjsonResponse
from serving.schemas import ErrorBody, example
from serving.security import access_responses, require_scope

router = APIRouter(prefix="/v1", tags=["events"])


def contact_policy(request: Request) -> ContactPolicy:
    """The contact policy loaded once per app (``app.state.contact_policy``)."""
    policy = getattr(request.app.state, "contact_policy", None)
    if policy is None:
        policy = request.app.state.contact_policy = load_contact_policy()
    return cast(ContactPolicy, policy)


def event_settings(request: Request) -> EventSettings:
    """The events limits loaded once per app (``app.state.event_settings``)."""
    found = getattr(request.app.state, "event_settings", None)
    if found is None:
        found = request.app.state.event_settings = load_event_settings()
    return cast(EventSettings, found)


class EventBatch(BaseModel):
    events: list[Any] = Field(
        min_length=1,
        description="Offer events (see the item schema); at most OFFERS_EVENTS_MAX_BATCH (1000 by default).",
        json_schema_extra={"items": OfferEvent.model_json_schema()},
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "event_id": "app-7f3c2a",
                            "member_id": "M000042",
                            "offer_id": "OF0107",
                            "kind": "impression",
                            "channel": "app",
                            "timestamp": "2025-03-14T09:26:50Z",
                        },
                        {
                            "member_id": "M000042",
                            "offer_id": "OF0107",
                            "kind": "click",
                            "channel": "app",
                            "timestamp": "2025-03-14T09:26:53Z",
                        },
                    ]
                }
            ]
        }
    )


class EventOutcome(BaseModel):
    index: int = Field(description="Position of the event in the batch.", examples=[0])
    event_id: str = Field(description="The client's event_id, or the one the server gave it.", examples=["app-7f3c2a"])
    status: Literal["recorded", "duplicate"] = Field(
        description="recorded; or duplicate: an event with this event_id was already recorded and is not counted again."
    )


class EventError(BaseModel):
    index: int = Field(examples=[1])
    field: str = Field(
        description="The field at fault; empty when the event as a whole is wrong.", examples=["timestamp"]
    )
    reason: str = Field(examples=["timestamp is more than a day after the server time (2025-03-14T09:27:00Z)"])


class EventsReport(BaseModel):
    model_config = example(
        {
            "received": 2,
            "accepted": 2,
            "duplicates": 0,
            "rejected": 0,
            "results": [
                {"index": 0, "event_id": "app-7f3c2a", "status": "recorded"},
                {"index": 1, "event_id": "6c1f0e5b9d2a4e7f8a3b2c1d0e9f8a7b", "status": "recorded"},
            ],
            "errors": [],
        }
    )

    received: int = Field(examples=[2])
    accepted: int = Field(description="Events recorded now or earlier (duplicates).", examples=[2])
    duplicates: int = Field(examples=[0])
    rejected: int = Field(description="Events refused; see errors.", examples=[0])
    results: list[EventOutcome]
    errors: list[EventError]


class EventsRefused(RootModel[EventsReport | ErrorBody]):
    """A 422: the report when no event was accepted, or an error body when the body is no batch at all."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "received": 1,
                    "accepted": 0,
                    "duplicates": 0,
                    "rejected": 1,
                    "results": [],
                    "errors": [{"index": 0, "field": "timestamp", "reason": "timestamp is before 2000-01-01"}],
                },
                {
                    "error": {
                        "code": "invalid_request",
                        "message": "events: Field required",
                        "fields": [{"field": "events", "location": "body", "message": "Field required"}],
                    }
                },
            ]
        }
    )


@router.post(
    "/events",
    status_code=202,
    response_model=EventsReport,
    summary="Record offer events (impression, click, redeem, dismiss)",
    description=__doc__,
    responses={
        207: {"model": EventsReport, "description": "Some events rejected (listed in errors); the others recorded."},
        400: BODY_RESPONSES[400],
        413: {
            "model": ErrorBody,
            "description": "More events than the batch limit, or a body over OFFERS_MAX_BODY_BYTES; the message "
            "names which.",
        },
        422: {
            "model": EventsRefused,
            "description": "No event accepted: the report lists each; or the body is no batch: an error body.",
        },
        **access_responses(Scope.EVENTS_WRITE),
    },
    dependencies=[Depends(require_scope(Scope.EVENTS_WRITE))],
)
async def post_events(batch: EventBatch, request: Request, reader: ReaderDep) -> Response:
    limits = event_settings(request)
    if len(batch.events) > limits.max_batch:
        return error_response(
            413,
            "batch_too_large",
            f"a batch may carry at most {limits.max_batch} events (OFFERS_EVENTS_MAX_BATCH); this one has "
            f"{len(batch.events)}: split it",
        )
    now = datetime.now(UTC)
    valid, rejected = parse_events(batch.events, now)
    recorded = await arecord_events(
        reader.client, reader.keys, [e for _, e in valid], now, policy=contact_policy(request), settings=limits
    )
    errors: list[dict[str, Any]] = [{"index": r.index, "field": r.field, "reason": r.reason} for r in rejected]
    results: list[dict[str, Any]] = []
    for (index, _), outcome in zip(valid, recorded, strict=True):
        if outcome.status == "erased":
            errors.append({"index": index, "field": "member_id", "reason": "the member was erased; no events are kept"})
        else:
            results.append({"index": index, "event_id": outcome.event_id, "status": outcome.status})
    errors.sort(key=lambda e: int(e["index"]))
    refused = len({e["index"] for e in errors})
    body = {
        "received": len(batch.events),
        "accepted": len(results),
        "duplicates": sum(1 for r in results if r["status"] == "duplicate"),
        "rejected": refused,
        "results": results,
        "errors": errors,
    }
    status = 202 if not refused else (207 if results else 422)
    return OrjsonResponse(body, status_code=status)
