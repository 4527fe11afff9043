"""What the API returns, separate from the internal types; the examples feed the OpenAPI page."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def example(*examples: dict[str, Any], protected_namespaces: tuple[str, ...] | None = None) -> ConfigDict:
    """A model config whose whole-body examples the OpenAPI page shows."""
    config = ConfigDict(json_schema_extra={"examples": list(examples)})
    if protected_namespaces is not None:
        config["protected_namespaces"] = protected_namespaces
    return config


OFFER_EXAMPLE: dict[str, Any] = {
    "offer_id": "OF0042",
    "title": "2 nights at Aster Grand Shanghai: 20% off",
    "category": "stay",
    "brand": "Aster Grand",
    "city": "Shanghai",
    "partner_id": None,
    "points_cost": 9600,
    "valid_to": "2026-12-31",
    "score": 0.82,
    "model_score": 1.73,
    "reasons": ["personalised", "stayed_brand", "tier_exclusive", "points_expiring"],
    "reason_details": {"stayed_brand": "Aster Grand", "tier_exclusive": "gold", "points_expiring": "2026-12-15"},
}


class Channel(StrEnum):
    """Where the offers will be shown (``recsys.schema.CHANNELS``)."""

    APP = "app"
    EMAIL = "email"
    WEB = "web"
    SMS = "sms"


class RankedOfferOut(BaseModel):
    offer_id: str = Field(examples=["OF-00042"])
    title: str = Field(examples=["Double points on weekend stays"])
    category: str = Field(examples=["stay"])
    brand: str = Field(examples=["Aster Grand"])
    city: str | None = Field(None, examples=["Shanghai"])
    partner_id: str | None = Field(None, examples=[None])
    points_cost: int = Field(ge=0, examples=[0])
    valid_to: date = Field(description="Last day the offer may be shown (inclusive).")
    score: float = Field(
        description="Decision score: propensity (from the model's rank) x value x lever x tier boosts x rotation.",
        examples=[0.82],
    )
    model_score: float = Field(
        description="The model's own score when personalised, popularity in tier otherwise.", examples=[1.73]
    )
    reasons: list[str] = Field(
        description="Why the offer is here, codes a product team can show or log: the source (personalised, "
        "popular_in_tier) first, then any of stayed_brand, partner_affinity, tier_exclusive, points_expiring, "
        "near_next_tier, popular_in_tier, campaign, new_offer, ending_soon.",
        examples=[["personalised", "stayed_brand", "tier_exclusive"]],
    )
    reason_details: dict[str, str] = Field(
        default_factory=dict,
        description="What some reasons refer to, by code: stayed_brand -> the brand, partner_affinity -> the "
        "partner, tier_exclusive -> the tier, points_expiring -> the expiry date, near_next_tier -> nights to the "
        "next tier, ending_soon -> the last day.",
        examples=[{"stayed_brand": "Aster Grand", "tier_exclusive": "gold"}],
    )


class MemberOffers(BaseModel):
    model_config = example(
        {
            "member_id": "M000123",
            "version": "7",
            "tier": "gold",
            "channel": "app",
            "on": "2026-11-23",
            "offers": [OFFER_EXAMPLE],
        }
    )

    member_id: str = Field(examples=["M000123"])
    version: str = Field(description="The published version that answered.", examples=["7"])
    tier: str | None = Field(
        description="The member's tier; null only in a degraded answer for a member the server has not seen.",
        examples=["gold"],
    )
    channel: Channel
    on: date = Field(description="The day eligibility was judged for.")
    offers: list[RankedOfferOut]
    degraded: str | None = Field(
        None,
        description="Absent when read from Redis; `redis-unavailable` when Redis was unreachable and the offers "
        "come from the server's last good copy of the version (popular in tier, no contact caps).",
        examples=[None],
    )


class ModelInfo(BaseModel):
    model_config = example(
        {
            "version": "7",
            "model_name": "loyalty-offers",
            "model_version": "3",
            "family": "lightfm",
            "run_id": "5f0c2d9e8a7b4c1d9e0f1a2b3c4d5e6f",
            "trained_at": "2026-11-22T02:00:00+00:00",
            "published_at": "2026-11-22T02:05:12+00:00",
            "members": 5000,
            "offers": 320,
            "metrics": {"precision_at_10": 0.21, "ndcg_at_10": 0.33},
        },
        protected_namespaces=(),
    )

    version: str = Field(description="The served version.", examples=["7"])
    model_name: str | None = Field(None, examples=["loyalty-offers"])
    model_version: str | None = Field(None, description="Registered model version.", examples=["3"])
    family: str | None = Field(None, examples=["lightfm"])
    run_id: str | None = None
    trained_at: str | None = Field(None, examples=["2025-05-01T02:00:00+00:00"])
    published_at: str | None = None
    members: int | None = None
    offers: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict, examples=[{"precision_at_10": 0.21}])


class Health(BaseModel):
    model_config = example({"status": "ok"})

    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    model_config = example({"status": "ready", "version": "7"})

    status: str = Field(examples=["ready"])
    version: str = Field(examples=["7"])


class FieldProblem(BaseModel):
    field: str = Field(examples=["limit"])
    location: str = Field(examples=["query"])
    message: str = Field(examples=["Input should be greater than or equal to 1"])


class ErrorDetail(BaseModel):
    code: str = Field(examples=["member_not_found"])
    message: str = Field(examples=["member 'M999' is not known to the served version"])
    fields: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    model_config = example(
        {"error": {"code": "member_not_found", "message": "member 'M999' is not known to the served version"}},
        {
            "error": {
                "code": "invalid_request",
                "message": "limit: Input should be greater than or equal to 1",
                "fields": [
                    {"field": "limit", "location": "query", "message": "Input should be greater than or equal to 1"}
                ],
            }
        },
    )

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown member."},
    422: {"model": ErrorBody, "description": "A parameter is invalid; `fields` names it."},
    503: {"model": ErrorBody, "description": "No version published yet, or Redis unreachable."},
}


class PickOut(BaseModel):
    offer_id: str = Field(examples=["OF0114"])
    title: str | None = Field(examples=["Seafood dinner for two at Atlas Business Shenzhen"])
    score: float = Field(examples=[0.82])
    reasons: list[str] = Field(examples=[["personalised", "stayed_brand", "tier_exclusive"]])
    reason_details: dict[str, str] = Field(
        default_factory=dict, examples=[{"stayed_brand": "Aster Grand", "tier_exclusive": "gold"}]
    )


class MemberPicks(BaseModel):
    member_id: str = Field(examples=["M0000042"])
    offers: list[PickOut]


class WeeklyPicksPage(BaseModel):
    model_config = example(
        {
            "week": "2026-W48",
            "version": "7",
            "members": [
                {
                    "member_id": "M0000042",
                    "offers": [
                        {
                            "offer_id": "OF0114",
                            "title": "Seafood dinner for two at Atlas Business Shenzhen",
                            "score": 0.82,
                            "reasons": ["personalised", "stayed_brand"],
                            "reason_details": {"stayed_brand": "Atlas Business"},
                        }
                    ],
                }
            ],
            "next_cursor": "NzoxMDAw",
        }
    )

    week: str = Field(examples=["2026-W48"])
    version: str = Field(description="The published version every page of this pull comes from.", examples=["7"])
    members: list[MemberPicks] = Field(description="Email-consented members of this page, each once per pull.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
