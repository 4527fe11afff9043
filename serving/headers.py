"""Security headers on every response, errors included: no MIME sniffing, no framing, no referrer, and
no caching (answers carry member data); Strict-Transport-Security only when configured (behind TLS)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.limits import LimitSettings

BASE_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def security_headers(limits: LimitSettings) -> dict[str, str]:
    headers = dict(BASE_HEADERS)
    if limits.hsts_seconds:
        headers["Strict-Transport-Security"] = f"max-age={limits.hsts_seconds}; includeSubDomains"
    return headers


class SecurityHeaders:
    """ASGI middleware adding ``security_headers`` to each response (a route's own value wins)."""

    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app, self.headers = app, security_headers(limits)
        self.raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in self.raw if header[0] not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
