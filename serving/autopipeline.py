"""Automatic pipelining of the request path's script calls.

Mobile apps' requests reach one API process many at a time, and each reads its member with one script
call (``serving.reader.MEMBER_READ``). Sent one by one through redis-py, each call takes a connection
from the pool, goes through the client's retry and timeout wrappers, writes its command, reads its
reply and gives the connection back: one write per request on both sides. ``AutoPipeline`` gathers the
calls of one script issued in one turn of the event loop and sends them as one pipeline on one pooled
connection (one write), then hands each caller its own reply; with one request in flight it is a single
call as before. It is what ioredis's ``enableAutoPipelining`` and Lettuce's command batching do;
redis-py has none, so this module adds it on redis-py's own connections (URL, authentication, TLS,
timeouts and the hiredis reply parser are redis-py's). The commands are packed by hiredis's
``pack_command``, in C, as redis-py's synchronous client packs them (its asyncio connection packs in
Python, a few microseconds a command).

Only idempotent reads go through it: a batch broken by a lost connection is sent once more on a fresh
connection, as the serving client's one retry would; after that every caller of the batch gets the
error. A script Redis does not know (``NOSCRIPT`` after a restart or ``SCRIPT FLUSH``) is left to
redis-py's script object, which loads it and calls again.

A Redis Cluster client is not batched: ``serving.reader`` reads a member with a pipeline there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aredis
from hiredis import pack_command
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

_RETRIED = (RedisConnectionError, RedisTimeoutError, OSError)  # what a fresh connection may cure
_Call = tuple[tuple[str, ...], "asyncio.Future[Any]"]  # EVALSHA's arguments, and where its reply goes


class AutoPipeline:
    """``await pipeline(keys, args)``: one call of ``script``, sent with the others of this turn."""

    def __init__(self, client: aredis.Redis, script: str) -> None:
        self._pool = client.connection_pool
        self._script = client.register_script(script)
        self._pending: list[_Call] = []
        self._sending: set[asyncio.Task[None]] = set()  # batches in flight (the loop keeps weak references)
        self.batches = 0  # batches sent, and calls in them: the mean batch size is calls / batches
        self.calls = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[str]) -> Any:
        """The script's reply to ``keys`` and ``args``, as redis-py gives it (raises what redis-py would)."""
        try:
            return await self._submit(("EVALSHA", self._script.sha, str(len(keys)), *keys, *args))
        except NoScriptError:  # Redis restarted or flushed its scripts: redis-py loads it and calls again
            return await self._script(keys=list(keys), args=list(args))

    def _submit(self, command: tuple[str, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)  # after every request already running this turn has added its call
        self._pending.append((command, future))
        return future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Call]) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            try:
                await self._round_trip(batch)
            except _RETRIED:
                # a connection a Redis restart broke: the calls still unanswered, once more on a fresh one
                unanswered = [call for call in batch if not call[1].done()]
                if unanswered:
                    await self._round_trip(unanswered)
        except BaseException as exc:  # every caller learns why; a cancelled batch cancels its callers
            for _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, Exception):
                    future.set_exception(exc)
                else:
                    future.cancel()
            if not isinstance(exc, Exception):
                raise

    async def _round_trip(self, batch: list[_Call]) -> None:
        connection = await self._pool.get_connection()
        try:
            # hiredis's stub types the argument as a one-item tuple; it takes any tuple of str/bytes/numbers
            packed = b"".join(pack_command(cast(Any, command)) for command, _ in batch)
            await connection.send_packed_command(packed)
            for _, future in batch:
                try:
                    reply = await connection.read_response()
                except ResponseError as exc:  # this call's error (NOSCRIPT, WRONGTYPE ...): the rest read on
                    if not future.done():
                        future.set_exception(exc)
                    continue
                if not future.done():  # a caller that went away (client disconnected) is skipped
                    future.set_result(reply)
        except BaseException:
            await connection.disconnect()  # replies left unread: the connection is out of step
            raise
        finally:
            await self._pool.release(connection)

    async def aclose(self) -> None:
        """Wait for the batches in flight (their callers get their replies)."""
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
