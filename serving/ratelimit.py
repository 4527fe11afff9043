"""Per-key rate limiting: a token bucket per API key holder, kept in Redis so every replica draws on
the same bucket. One Lua script refills and takes a token atomically, on Redis's clock.

A process takes a small lease of tokens at once (at most a twentieth of the burst, and what the rate
refills in ``LEASE_S``), spends it locally and forfeits what is left after ``LEASE_S``: Redis is asked
about once per lease instead of once per request, and a key never gets more than its rate (replicas
may, at worst, admit a little less). With small buckets the lease is one token, as without leases.
What a lease leaves unspent goes back to the bucket with the next request that reaches Redis, and a
process asks Redis about one key holder one request at a time, so concurrent requests share one lease
(and one refusal, until its token is due) instead of each draining the bucket into a lease of its own.

If Redis cannot be reached the limiter fails open: requests are admitted unlimited (the offers must
keep answering), a warning is logged, and Redis is not asked again for ``RETRY_AFTER_FAILURE_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from recsys.access import ApiKey
from recsys.cache import Keys
from recsys.store import REDIS_ERRORS
from serving.limits import LimitSettings

logger = logging.getLogger(__name__)

RETRY_AFTER_FAILURE_S = 1.0
LEASE_S = 0.1  # tokens taken ahead are spent within this long, or forfeited
LEASE_SHARE = 20  # a lease takes at most this fraction (1/LEASE_SHARE) of the burst

# KEYS[1] bucket; ARGV rate per second, burst, tokens wanted, unspent tokens given back. Returns
# {tokens taken (1 to wanted), 0} or {0, seconds to wait}.
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3] or '1')
local returned = tonumber(ARGV[4] or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + returned + math.max(0, now - ts) * rate)
local wait = 0
local admitted = 0
if tokens >= 1 then
  admitted = math.min(wanted, math.floor(tokens))
  tokens = tokens - admitted
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {admitted, tostring(wait)}
"""


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: int


def rate_of(holder: ApiKey, limits: LimitSettings) -> Rate:
    """The key's own rate where its ``OFFERS_API_KEYS`` entry sets one, else the settings' default."""
    per_s = holder.rate_per_s if holder.rate_per_s is not None else limits.rate_per_s
    burst = holder.burst if holder.burst is not None else limits.rate_burst
    return Rate(per_s, burst)


def lease_size(rate: Rate) -> int:
    """Tokens one process takes from Redis at once: 1 for small buckets, up to a twentieth of the burst."""
    return max(1, min(rate.burst // LEASE_SHARE, int(rate.per_s * LEASE_S)))


@dataclass
class _Lease:
    tokens: int  # left to spend locally
    until: float  # clock time after which they are forfeited


class RateLimiter:
    def __init__(
        self, client: Any, keys: Keys, limits: LimitSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.keys, self.limits, self.clock = keys, limits, clock
        self._script = client.register_script(TOKEN_BUCKET)
        self._skip_until = 0.0
        self._leases: dict[str, _Lease] = {}  # per key holder
        self._refused_until: dict[str, float] = {}  # per key holder: Redis said no until then
        self._asking: dict[str, asyncio.Lock] = {}  # per key holder: one question to Redis at a time

    def _from_lease(self, name: str) -> bool:
        lease = self._leases.get(name)
        if lease is not None and lease.tokens > 0 and self.clock() < lease.until:
            lease.tokens -= 1
            return True
        return False

    async def wait_needed(self, holder: ApiKey) -> float:
        """0 when ``holder`` may go ahead (a token taken); else the seconds until its next token."""
        rate = rate_of(holder, self.limits)
        if rate.per_s <= 0 or self.clock() < self._skip_until:
            return 0.0
        name = holder.name
        if self._from_lease(name):
            return 0.0
        # Requests that miss the lease ask Redis one at a time, so a concurrent burst does not take a lease
        # each (draining the bucket into leases nobody spends) and a refusal is shared until its token is due.
        async with self._asking.setdefault(name, asyncio.Lock()):
            if self._from_lease(name) or self.clock() < self._skip_until:  # a fetch just now leased or failed
                return 0.0
            refused_for = self._refused_until.get(name, 0.0) - self.clock()
            if refused_for > 0:
                return refused_for
            lease = self._leases.pop(name, None)
            try:
                admitted, wait = await self._script(
                    keys=[self.keys.rate_bucket(name)],
                    args=[rate.per_s, rate.burst, lease_size(rate), lease.tokens if lease is not None else 0],
                )
            except REDIS_ERRORS as exc:
                self._skip_until = self.clock() + RETRY_AFTER_FAILURE_S
                logger.warning(
                    "rate limiting suspended for %.0f s: Redis is not reachable (%s); requests are admitted unlimited",
                    RETRY_AFTER_FAILURE_S,
                    type(exc).__name__,
                )
                return 0.0
            taken = int(admitted)
            if taken > 1:
                self._leases[name] = _Lease(taken - 1, self.clock() + LEASE_S)
            if not taken:
                self._refused_until[name] = self.clock() + float(wait)
            return 0.0 if taken else float(wait)
