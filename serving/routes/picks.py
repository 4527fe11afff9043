"""Weekly picks for email systems: every email-consented member's offers for an ISO week, paged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from recsys.access import Scope
from recsys.errors import NotPublishedError
from recsys.picks import Cursor, page_rows, week_start
from serving.deps import ReaderDep
from serving.errors import error_response, invalid_parameter
from serving.params import check_day
from serving.responses import OrjsonResponse
from serving.schemas import ERROR_RESPONSES, ErrorBody, WeeklyPicksPage
from serving.security import access_responses, require_scope

router = APIRouter(
    prefix="/v1",
    tags=["weekly picks"],
    dependencies=[Depends(require_scope(Scope.PICKS_READ))],
    responses=access_responses(Scope.PICKS_READ),
)

MAX_PAGE = 1000


@router.get(
    "/weekly-picks",
    response_model=WeeklyPicksPage,
    summary="Every email-consented member's picks for a week, page by page",
    description="Same eligibility, contact and ranking rules as real time, decided as of the week's Monday "
    "00:00 UTC, so repeated pulls of a week give the same picks (for the same version). Start without "
    "`cursor`; pass each page's `next_cursor` until it is null. A cursor stays on the version it started "
    "with; if that version is no longer kept the pull answers 410 and must restart.",
    responses={
        **ERROR_RESPONSES,
        410: {"model": ErrorBody, "description": "The cursor's version is no longer kept; restart the pull."},
    },
)
async def weekly_picks(
    request: Request,
    reader: ReaderDep,
    week: Annotated[str, Query(description="ISO week, e.g. 2026-W48 (at most a year away).", examples=["2026-W48"])],
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Members per page.")] = MAX_PAGE,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the previous page.")] = None,
) -> Response:
    try:
        start = week_start(week)
    except ValueError as exc:
        raise invalid_parameter("week", str(exc)) from exc
    check_day(start.date(), datetime.now(UTC).date(), "week")
    if cursor is None:
        position = Cursor(await reader.served_version(), 0)
    else:
        try:
            position = Cursor.decode(cursor)
        except ValueError as exc:
            raise invalid_parameter("cursor", str(exc)) from exc
    page = await reader.picks_page(position.version, position.position, page_size)
    if page is None:
        if cursor is None:
            raise NotPublishedError("the served version was replaced while reading; retry")
        return error_response(410, "version_gone", f"version {position.version} is no longer kept; restart the pull")
    state = request.app.state
    rows: list[dict[str, Any]] = page_rows(
        page.member_ids,
        page.blobs,
        page.contacts,
        page.catalogue,
        page.live_redeemed,
        week=start,
        contact_policy=state.contact_policy,
        ranking_policy=state.ranking_policy,
    )
    following = Cursor(position.version, position.position + len(page.member_ids)).encode() if page.more else None
    body = {"week": week, "version": position.version, "members": rows, "next_cursor": following}
    return OrjsonResponse(body)
