"""The offers endpoint's hot path. Mobile apps call ``GET /v1/members/{member_id}/offers`` on every
screen, and FastAPI's routing, parameter machinery and dependency solving cost that request more CPU
than its answer (``python -m benchmarks.request_cost --profile 30`` shows where). ``OffersHotPath``, the
innermost of the app's middlewares, answers the plain form of that request itself, with the route's own
access check (``routes.offers.ACCESS``) and answer (``routes.offers.answer``), and maps errors with the
app's own exception handlers. The outer middlewares (security headers, access log, failed-authentication
limit, body checks) wrap it as they wrap every route.

Everything else goes on to FastAPI, which validates and answers it as the OpenAPI page documents:
another route or method, a parameter it does not know or that is repeated or not in its plain form, a
root path, dependency overrides. A request is judged before anything is done for it, so none is counted
twice against a rate limit.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, cast
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.params import MEMBER_ID_MAX
from serving.routes.offers import ACCESS, answer, member_offers, router
from serving.schemas import Channel

PREFIX, SUFFIX = "/v1/members/", "/offers"
TEMPLATE = PREFIX + "{member_id}" + SUFFIX
MAX_LIMIT_DIGITS = 6
_NOT_IN_MEMBER_ID = re.compile(r"[\x00-\x1f\x7f/]")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CHANNELS = {channel.value: channel for channel in Channel}

Handler = Callable[[Request, Exception], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class PlainOffersRequest:
    """The parameters of an offers request in their plain form, already valid for the route's signature."""

    member_id: str
    limit: int | None = None
    channel: Channel = Channel.APP
    on: date | None = None


def plain_offers_request(scope: Scope) -> PlainOffersRequest | None:
    """The parameters of ``scope`` when it is a plain offers request, or None when FastAPI should judge it."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not (path.startswith(PREFIX) and path.endswith(SUFFIX)):
        return None
    member_id = path[len(PREFIX) : -len(SUFFIX)]
    if not 0 < len(member_id) <= MEMBER_ID_MAX or _NOT_IN_MEMBER_ID.search(member_id):
        return None
    query: bytes = scope["query_string"]
    if not query:
        return PlainOffersRequest(member_id)
    found: dict[str, Any] = {}
    for name, value in _pairs(query.decode("latin-1")):
        if name in found:
            return None
        if name == "limit" and value.isascii() and value.isdigit() and len(value) <= MAX_LIMIT_DIGITS:
            found[name] = int(value)
            if found[name] < 1:
                return None
        elif name == "channel" and value in _CHANNELS:
            found[name] = _CHANNELS[value]
        elif name == "on" and _DAY.fullmatch(value):
            try:
                found[name] = date.fromisoformat(value)
            except ValueError:
                return None
        else:
            return None
    return PlainOffersRequest(member_id, **found)


def _pairs(query: str) -> list[tuple[str, str]]:
    """The query's name-value pairs as Starlette reads them, split by hand when nothing is escaped."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    return [(name, value) for name, _, value in (part.partition("=") for part in query.split("&") if part)]


def _offers_route() -> APIRoute:
    """The route the hot path stands in for (the router records it in the scope; the access log reads it)."""
    for route in router.routes:
        if isinstance(route, APIRoute) and route.endpoint is member_offers and route.path == TEMPLATE:
            return route
    raise LookupError(f"serving.routes.offers has no GET {TEMPLATE} route for the hot path to stand in for")


ROUTE = _offers_route()


def _handler(app: FastAPI, exc: Exception) -> Handler | None:
    """The app's handler of ``exc``, as Starlette's ExceptionMiddleware finds it; None for a handler of
    ``Exception`` itself, which stays with the outermost middleware (it logs the traceback, then answers)."""
    handlers = app.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return cast(Handler, handlers[exc.status_code])
    for kind in type(exc).__mro__:
        if kind is Exception:
            return None
        if kind in handlers:
            return cast(Handler, handlers[kind])
    return None


class OffersHotPath:
    """ASGI middleware answering plain offers requests without FastAPI's per-request machinery."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        plain = plain_offers_request(scope)
        app: FastAPI | None = scope.get("app")
        if plain is None or app is None or app.dependency_overrides:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE  # what the router records: the access log names the route by it
        request: Request = Request(scope, receive, send)
        try:
            await ACCESS(request)
            response = await answer(app.state, plain.member_id, limit=plain.limit, channel=plain.channel, on=plain.on)
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)
