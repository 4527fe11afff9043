"""Errors mapped at the boundary: every failure leaves as ``{"error": {"code", "message"}}`` with the
right status (bad input 4xx, Redis or no published version 503), never as a bare 500 or a traceback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from recsys.errors import LoyaltyOffersError, MemberNotFoundError, NotPublishedError, StoreError
from recsys.store import REDIS_ERRORS
from serving.responses import OrjsonResponse

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def error_response(
    status: int,
    code: str,
    message: str,
    fields: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        body["fields"] = fields
    return OrjsonResponse({"error": body}, status_code=status, headers=headers)


def invalid_parameter(name: str, message: str, location: str = "query") -> RequestValidationError:
    """A validation error for a rule the signature cannot state (e.g. a limit from settings)."""
    return RequestValidationError([{"loc": (location, name), "msg": message, "type": "value_error"}])


def _field_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    problems = []
    for e in errors:
        loc = [str(part) for part in e.get("loc", ())]
        location = loc[0] if loc else "request"
        name = ".".join(loc[1:]) or location
        message = str(e.get("msg", "invalid"))
        if e.get("type") == "json_invalid":  # its loc ends with the character position, not a field
            name, message = "body", f"{message} at character {loc[-1] if len(loc) > 1 else 0}"
        problems.append({"field": name, "location": location, "message": message})
    return problems


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = _field_problems(exc.errors())
    message = "; ".join(f"{p['field']}: {p['message']}" for p in problems) or "invalid request"
    return error_response(422, "invalid_request", message, problems)


def _retry_after(request: Request) -> dict[str, str]:
    """A 503's ``Retry-After``: when a client (keeping its events) should try again."""
    settings = getattr(request.app.state, "settings", None)
    return {"Retry-After": str(getattr(settings, "retry_after_s", 2))}


async def _domain(request: Request, exc: Exception) -> Response:
    if isinstance(exc, MemberNotFoundError):
        return error_response(404, "member_not_found", str(exc))
    if isinstance(exc, NotPublishedError):
        return error_response(503, "not_published", str(exc), headers=_retry_after(request))
    if isinstance(exc, StoreError):
        return error_response(503, "store_unavailable", str(exc), headers=_retry_after(request))
    return error_response(500, "internal_error", str(exc))


async def _redis(request: Request, exc: Exception) -> Response:
    return error_response(
        503, "store_unavailable", f"Redis is not reachable: {type(exc).__name__}", headers=_retry_after(request)
    )


async def _unexpected(_: Request, exc: Exception) -> Response:
    return error_response(500, "internal_error", f"unexpected {type(exc).__name__}; the server log has details")


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", None) or _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = str(exc.detail)
    if exc.status_code in (404, 405) and message in ("Not Found", "Method Not Allowed"):  # the router's own
        message = f"no endpoint answers {request.method} at this path; the OpenAPI page lists them (/docs)"
    return error_response(exc.status_code, code, message, headers=exc.headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(LoyaltyOffersError, _domain)
    for error in REDIS_ERRORS:
        app.add_exception_handler(error, _redis)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)  # still logged by the server
