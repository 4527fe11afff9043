"""An access log without member data: each request is logged by its route template
(``/v1/members/{member_id}/offers``), never its path, query or headers, so member ids and API keys
stay out of the logs. ``offers serve`` turns uvicorn's own access log (which prints raw paths) off."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import uvicorn.config
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("serving.access")


def route_template(scope: Scope) -> str:
    """The template of the route that answered (the router records it in the scope), or ``<unmatched>``:
    the raw path is never logged, since it may carry a member id."""
    return str(getattr(scope.get("route"), "path", "<unmatched>"))


class AccessLog:
    """ASGI middleware logging method, route template, status, caller name and duration at INFO."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not logger.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            holder = getattr(scope.get("state", {}).get("api_key"), "name", "-")
            logger.info(
                "%s %s %d caller=%s %.1fms",
                scope["method"],
                route_template(scope),
                status or 500,
                holder,
                (time.perf_counter() - started) * 1000,
            )


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging configuration with this access log on uvicorn's handler; run uvicorn with
    ``access_log=False`` beside it, since uvicorn's access log prints raw paths."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"][logger.name] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config
