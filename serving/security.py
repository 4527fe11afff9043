"""API-key checks for routes: ``Depends(require_scope("events:write"))`` admits a request whose
``X-API-Key`` holds the scope, and answers 401 (no key, unknown key) or 403 (key lacks the scope)
with a body that says which. Keys are never logged or echoed. An admitted key then takes a token from
its rate limit (``serving.ratelimit``): over it, 429 with ``Retry-After``.

The key registry is loaded once: ``load_access(app)`` in the lifespan (a malformed ``OFFERS_API_KEYS``
then fails start-up), or lazily on the first request otherwise.
"""

from __future__ import annotations

import math
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException
from starlette.responses import Response

from recsys.access import ENV_VAR, ApiKey, KeyRegistry, Scope, load_key_registry
from serving.errors import error_response
from serving.limits import limits_of
from serving.ratelimit import RateLimiter, rate_of
from serving.schemas import ErrorBody

HEADER = "X-API-Key"
KEY_DESCRIPTION = "An API key issued to the caller."


class AccessDenied(HTTPException):
    """401 or 403 with a precise ``code``: missing_api_key, unknown_api_key or missing_scope."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        headers = {"WWW-Authenticate": f'ApiKey header="{HEADER}"'} if status_code == 401 else None
        super().__init__(status_code, message, headers)
        self.code = code


class RateLimited(HTTPException):
    """429: the key used up its rate; ``Retry-After`` says when its next request is admitted."""

    code = "rate_limited"

    def __init__(self, holder: ApiKey, per_s: float, burst: int, wait_s: float) -> None:
        retry = max(1, math.ceil(wait_s))
        message = (
            f"the API key '{holder.name}' is over its rate of {per_s:g} requests/s (burst {burst}); "
            f"retry after {retry} s"
        )
        super().__init__(429, message, {"Retry-After": str(retry)})


def access_responses(scope: Scope | str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the 401, 403 and 429 a guarded route may answer."""
    return {
        401: {"model": ErrorBody, "description": f"No `{HEADER}` header, or a key this server does not know."},
        403: {"model": ErrorBody, "description": f"The key lacks the `{scope}` scope."},
        429: {
            "model": ErrorBody,
            "description": "The key is over its request rate; `Retry-After` gives the seconds to wait.",
            "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
        },
    }


def load_access(app: FastAPI) -> KeyRegistry:
    """Read ``OFFERS_API_KEYS`` into ``app.state.key_registry`` (raises ConfigurationError if malformed)."""
    registry = load_key_registry()
    app.state.key_registry = registry
    return registry


def _registry(request: Request) -> KeyRegistry:
    registry = getattr(request.app.state, "key_registry", None)
    if registry is None:
        registry = load_access(request.app)
    return registry


def _limiter(request: Request) -> RateLimiter:
    """The app's rate limiter, made on first use over the reader's Redis client."""
    found = getattr(request.app.state, "rate_limiter", None)
    if found is None:
        reader = request.app.state.reader
        found = request.app.state.rate_limiter = RateLimiter(reader.client, reader.keys, limits_of(request.app))
    return cast(RateLimiter, found)


class ScopeCheck(SecurityBase):
    """A dependency admitting requests whose API key holds ``scope`` (``admin`` holds every scope).

    It is the ``APIKeyHeader`` security scheme itself (OpenAPI documents it as one), reading the header on
    its own: one dependency for FastAPI to solve a request instead of a scheme and a check beneath it."""

    def __init__(self, scope: Scope | str) -> None:
        self.needed = Scope(scope)
        self.model = APIKey.model_validate({"in": APIKeyIn.header, "name": HEADER, "description": KEY_DESCRIPTION})
        self.scheme_name = "APIKeyHeader"

    async def __call__(self, request: Request) -> ApiKey:
        key = request.headers.get(HEADER)
        if not key:
            raise AccessDenied(401, "missing_api_key", f"this endpoint needs an API key in the {HEADER} header")
        registry = _registry(request)
        holder = registry.lookup(key)
        if holder is None:
            hint = "" if len(registry) else f" (no keys are configured: set {ENV_VAR})"
            raise AccessDenied(401, "unknown_api_key", f"the API key in {HEADER} is not known to this server{hint}")
        needed = self.needed
        if not holder.allows(needed):
            raise AccessDenied(403, "missing_scope", f"the API key '{holder.name}' lacks the scope {needed.value}")
        request.state.api_key = holder
        wait = await _limiter(request).wait_needed(holder)
        if wait > 0:
            rate = rate_of(holder, limits_of(request.app))
            raise RateLimited(holder, rate.per_s, rate.burst, wait)
        return holder


def require_scope(scope: Scope | str) -> ScopeCheck:
    """The dependency admitting requests whose API key holds ``scope``: ``Depends(require_scope(...))``."""
    return ScopeCheck(scope)


async def _denied(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AccessDenied)
    return error_response(exc.status_code, exc.code, str(exc.detail), headers=exc.headers)


def install(app: FastAPI) -> None:
    """Answer access failures with their precise codes (without it they still leave as 401/403)."""
    app.add_exception_handler(AccessDenied, _denied)
