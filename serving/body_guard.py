"""Turns away hostile request bodies before any route parses them: a body over the size limit (by its
Content-Length, or counted while it streams in) is 413; a JSON body that is not UTF-8 or nests deeper
than the limit is 400. Each answer is the usual JSON error naming the problem and the setting."""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.errors import error_response
from serving.limits import LimitSettings
from serving.schemas import ErrorBody

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The JSON body is not UTF-8, or nests deeper than OFFERS_MAX_JSON_DEPTH."},
    413: {"model": ErrorBody, "description": "The body is larger than OFFERS_MAX_BODY_BYTES."},
}
"""OpenAPI entries of what ``BodyGuard`` answers, for every route that takes a body."""

_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (brackets inside strings do not count)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for token in _JSON_TOKENS.finditer(body):
        first = token.group()[0]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first in _CLOSERS:
            depth -= 1
    return False


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return True  # FastAPI reads a body without a content type as JSON


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyGuard:
    """ASGI middleware: reads a request body (at most ``max_body_bytes``), checks it, then replays it."""

    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, f"Content-Length {declared} is over the limit")
            return
        if declared == 0 or (declared is None and not _has_chunked_body(scope)):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(scope, receive, send, "the streamed body grew over the limit")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json(scope) and not await self._json_ok(body, scope, receive, send):
            return
        await self.app(scope, _replay(body, receive), send)

    async def _json_ok(self, body: bytes, scope: Scope, receive: Receive, send: Send) -> bool:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"the body is not UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start}"
            await _refuse(400, "invalid_encoding", reason, scope, receive, send)
            return False
        depth = self.limits.max_json_depth
        if json_depth_exceeds(body, depth):
            reason = f"the JSON body nests deeper than {depth} levels (OFFERS_MAX_JSON_DEPTH)"
            await _refuse(400, "json_too_deep", reason, scope, receive, send)
            return False
        return True

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, why: str) -> None:
        limit = self.limits.max_body_bytes
        reason = f"the request body may be at most {limit} bytes (OFFERS_MAX_BODY_BYTES); {why}"
        await _refuse(413, "body_too_large", reason, scope, receive, send)


def _has_chunked_body(scope: Scope) -> bool:
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])


async def _refuse(status: int, code: str, reason: str, scope: Scope, receive: Receive, send: Send) -> None:
    fields = [{"field": "body", "location": "body", "message": reason}]
    response = error_response(status, code, reason, fields, headers={"Connection": "close"} if status == 413 else None)
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
