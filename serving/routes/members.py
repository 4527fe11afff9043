"""Erasing a member on request (the right to be forgotten)."""

from __future__ import annotations

from fastapi import APIRouter, BackgroundTasks, Depends
from starlette.responses import Response

from recsys.access import Scope
from recsys.erasure import aerase_member, apurge_events
from serving.deps import ReaderDep
from serving.params import MemberIdPath
from serving.schemas import ERROR_RESPONSES
from serving.security import access_responses, require_scope

router = APIRouter(prefix="/v1/members", tags=["members"])


@router.delete(
    "/{member_id}",
    status_code=204,
    summary="Erase a member's data",
    description="Removes the member's record from every kept version and their contact state at once, and "
    "records the id as erased: publish, training exports and weekly picks leave it out from then on, and new "
    "events for it are refused. Their entries in the event log are deleted right after the response. "
    "Idempotent: answers 204 whether or not the member was known (so the answer reveals nothing).",
    responses={422: ERROR_RESPONSES[422], 503: ERROR_RESPONSES[503], **access_responses(Scope.ADMIN)},
    dependencies=[Depends(require_scope(Scope.ADMIN))],
)
async def erase_member(
    member_id: MemberIdPath,
    reader: ReaderDep,
    background: BackgroundTasks,
) -> Response:
    await aerase_member(reader.client, reader.keys, member_id)
    background.add_task(apurge_events, reader.client, reader.keys, [member_id])
    return Response(status_code=204)
