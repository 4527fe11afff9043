"""Request parameters shared by several routes, with the limits that turn hostile values away (4xx)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import Path, Query

from serving.errors import invalid_parameter

NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]+$"  # the data contract's ids: no control characters
MAX_DAYS_AWAY = 366
MEMBER_ID_MAX = 64

MemberIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MEMBER_ID_MAX,
        pattern=NO_CONTROL_CHARACTERS,
        description=f"Loyalty member id (at most {MEMBER_ID_MAX} characters, no control characters).",
        examples=["M000123"],
    ),
]

OnQuery = Annotated[
    date | None,
    Query(description=f"Judge eligibility for this day (default: today, UTC; at most {MAX_DAYS_AWAY} days away)."),
]


def check_day(day: date, today: date, name: str = "on") -> date:
    """``day`` when it is within ``MAX_DAYS_AWAY`` days of ``today``; else a 422 naming ``name``: eligibility
    is judged against the live catalogue, which says nothing about years away."""
    if abs((day - today).days) > MAX_DAYS_AWAY:
        earliest, latest = today - timedelta(days=MAX_DAYS_AWAY), today + timedelta(days=MAX_DAYS_AWAY)
        raise invalid_parameter(name, f"must be between {earliest} and {latest} (within {MAX_DAYS_AWAY} days of today)")
    return day
