"""Failed-authentication flood limit: a client address whose requests fail authentication (401: no key or
an unknown one; 403: a key without the scope) ``OFFERS_AUTH_FAILURES_MAX`` times within
``OFFERS_AUTH_FAILURES_WINDOW_S`` is answered 429 ``too_many_auth_failures`` with ``Retry-After`` until
that window ends, before its body is read or its key looked at. A key guesser gets the limit's worth of
guesses per window, not the server's capacity; the per-key rate limit cannot stop it (it starts after
the key check), nor a client hammering with a key that lacks the scope.

Failures are counted in Redis (one counter per address, the window its expiry: a fixed window), so every
worker and replica draws on one count: counted in each process, a guesser spread by the load balancer
over W workers and R replicas would get W x R times the limit. Only failures reach Redis; an admitted
request costs one dict lookup. A process learns that an address is over the limit from a failure of its
own, so each further worker the client reaches lets at most one more failure through. If Redis cannot be
reached, failures are counted in the process instead (the limit then holds per worker): an outage must
not open the door to guessing, and it costs legitimate callers nothing, since only failures count.

The probes (``/healthz``, ``/readyz``) are never refused. Keys are never logged; a refused address is
logged once per window.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recsys.cache import Keys
from recsys.store import REDIS_ERRORS
from serving.errors import error_response
from serving.limits import LimitSettings

logger = logging.getLogger(__name__)

CODE = "too_many_auth_failures"
FAILED = frozenset({401, 403})
PROBES = frozenset({"/healthz", "/readyz"})
RETRY_AFTER_FAILURE_S = 1.0  # Redis is not asked again for this long after it could not be reached
PRUNE_ABOVE = 10_000  # addresses kept in the process before expired entries are swept

# KEYS[1] the address's counter; ARGV[1] window in ms. Returns {failures in the window, ms left of it}.
COUNT_FAILURE = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


def client_address(scope: Scope) -> str:
    """The peer's address as uvicorn gives it: behind a proxy, set ``FORWARDED_ALLOW_IPS`` to the proxy's
    address so that it is the client's (from ``X-Forwarded-For``), not the proxy's."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class FailedAuthLimit:
    """ASGI middleware: refuses an address over its failure limit, and counts the 401/403 it is answered."""

    def __init__(self, app: ASGIApp, limits: LimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.clock = app, clock
        self.max_failures, self.window_s = limits.auth_failures_max, limits.auth_failures_window_s
        self._refused_until: dict[str, float] = {}  # address -> clock time its window ends
        self._local: dict[str, tuple[int, float]] = {}  # while Redis is away: address -> (failures, window end)
        self._script: Any = None
        self._skip_redis_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.max_failures <= 0 or scope["path"] in PROBES:
            await self.app(scope, receive, send)
            return
        address = client_address(scope)
        wait = self._refused_until.get(address, 0.0) - self.clock()
        if wait > 0:
            await self._refuse(wait)(scope, receive, send)
            return

        async def counting_failures(message: Message) -> None:
            # counted before the answer leaves: the client's next request (uvicorn reads it as soon as this
            # one's body is sent) must meet the refusal
            if message["type"] == "http.response.start" and message["status"] in FAILED:
                await self._count(scope, address)
            await send(message)

        await self.app(scope, receive, counting_failures)

    def _refuse(self, wait_s: float) -> ASGIApp:
        retry = max(1, math.ceil(wait_s))
        message = (
            f"too many failed authentications from this address ({self.max_failures} within "
            f"{self.window_s:g} s); retry after {retry} s"
        )
        return error_response(429, CODE, message, headers={"Retry-After": str(retry)})

    async def _count(self, scope: Scope, address: str) -> None:
        """Counts one failure of ``address``; at the limit, refuses it until its window ends."""
        counted = await self._count_in_redis(scope, address)
        failures, left_s = counted if counted is not None else self._count_here(address)
        if failures < self.max_failures:
            return
        if len(self._refused_until) >= PRUNE_ABOVE:
            now = self.clock()
            self._refused_until = {a: t for a, t in self._refused_until.items() if t > now}
        self._refused_until[address] = self.clock() + left_s
        if failures == self.max_failures:
            logger.warning(
                "client %s refused for %.0f s: %d failed authentications within %g s",
                address,
                left_s,
                failures,
                self.window_s,
            )

    async def _count_in_redis(self, scope: Scope, address: str) -> tuple[int, float] | None:
        reader = getattr(scope["app"].state, "reader", None) if "app" in scope else None
        if reader is None or self.clock() < self._skip_redis_until:
            return None
        if self._script is None:
            self._script = reader.client.register_script(COUNT_FAILURE)
        keys: Keys = reader.keys
        try:
            failures, left_ms = await self._script(
                keys=[keys.auth_failures(address)], args=[math.ceil(self.window_s * 1000)]
            )
        except REDIS_ERRORS as exc:
            self._skip_redis_until = self.clock() + RETRY_AFTER_FAILURE_S
            logger.warning(
                "failed authentications counted in this process for %.0f s: Redis is not reachable (%s)",
                RETRY_AFTER_FAILURE_S,
                type(exc).__name__,
            )
            return None
        return int(failures), int(left_ms) / 1000

    def _count_here(self, address: str) -> tuple[int, float]:
        now = self.clock()
        failures, ends = self._local.get(address, (0, 0.0))
        if ends <= now:
            if len(self._local) >= PRUNE_ABOVE:
                self._local = {a: v for a, v in self._local.items() if v[1] > now}
            failures, ends = 0, now + self.window_s
        self._local[address] = (failures + 1, ends)
        return failures + 1, ends - now
