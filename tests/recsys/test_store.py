"""The serving client against a real Redis (embedded, or ``REDIS_URL``) on uvloop, as ``offers serve`` runs it."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aredis
import uvloop

from recsys.store import RedisEndpoint


async def _close_under(connection: aredis.connection.AbstractConnection) -> None:
    """Close the connection's socket the way uvloop does when Redis resets it, behind redis-py's back."""
    writer = connection._writer
    assert writer is not None
    writer.transport.abort()
    await asyncio.sleep(0.05)  # the loop finishes closing the handle


def test_a_write_to_a_closed_socket_is_a_connection_error(redis_endpoint: RedisEndpoint) -> None:
    async def main() -> None:
        client = redis_endpoint.async_client()
        try:
            connection = await client.connection_pool.get_connection()
            await _close_under(connection)
            # uvloop's bare RuntimeError would reach the request as a 500
            with pytest.raises(redis.ConnectionError, match="closed while writing"):
                await connection.send_command("PING")
            await client.connection_pool.release(connection)
        finally:
            await client.aclose()

    uvloop.run(main())
