"""Automatic pipelining of script calls (``serving.autopipeline``) against a real Redis: calls of one loop
turn share one write and each caller gets its own reply, whatever happens to the others or the link."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio as aredis
from redis.exceptions import ResponseError

from recsys.cache import Keys
from recsys.store import RedisEndpoint
from serving.autopipeline import AutoPipeline

T = TypeVar("T")

# Answers its key and argument, and what the key holds: a caller given another's reply would show it.
ECHO = "return {KEYS[1], ARGV[1], redis.call('GET', KEYS[1])}"
# Fails on Redis's side when its argument says so, after the others of its batch were answered.
FAILS_ON_ASK = "if ARGV[1] == 'fail' then return redis.error_reply('ERR asked to fail') end return ARGV[1]"


def _run(redis_endpoint: RedisEndpoint, body: Callable[[aredis.Redis], Awaitable[T]]) -> T:
    async def main() -> T:
        client = await redis_endpoint.aconnect()
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_calls_of_one_turn_share_one_batch_and_each_gets_its_own_reply(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    names = [f"{keys.prefix}:echo:{i}" for i in range(40)]
    for i, name in enumerate(names):
        redis_client.set(name, f"value {i}")

    async def body(client: aredis.Redis) -> tuple[list[Any], int, int]:
        pipeline = AutoPipeline(client, ECHO)
        replies = await asyncio.gather(*(pipeline([n], [f"arg {i}"]) for i, n in enumerate(names)))
        return replies, pipeline.batches, pipeline.calls

    replies, batches, calls = _run(redis_endpoint, body)
    assert replies == [[n.encode(), f"arg {i}".encode(), f"value {i}".encode()] for i, n in enumerate(names)]
    assert (batches, calls) == (1, 40)


def test_a_call_alone_answers_as_redis_py_does(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    name = f"{keys.prefix}:alone"
    redis_client.set(name, b"\x00binary\xff")

    async def body(client: aredis.Redis) -> tuple[Any, Any, int]:
        pipeline = AutoPipeline(client, ECHO)
        ours = [await pipeline([name], ["é"]) for _ in range(3)]
        assert ours[0] == ours[1] == ours[2]
        theirs = await client.register_script(ECHO)(keys=[name], args=["é"])  # redis-py's own script call
        return ours[0], theirs, pipeline.batches

    ours, theirs, batches = _run(redis_endpoint, body)
    assert ours == theirs == [name.encode(), "é".encode(), b"\x00binary\xff"]
    assert batches == 3  # awaited one by one: nothing to wait for, nothing gathered


def test_an_error_reaches_only_its_caller(redis_endpoint: RedisEndpoint) -> None:
    async def body(client: aredis.Redis) -> tuple[list[Any], Any]:
        pipeline = AutoPipeline(client, FAILS_ON_ASK)
        asks = ["a", "fail", "b", "fail", "c"]
        replies = await asyncio.gather(*(pipeline(["k"], [a]) for a in asks), return_exceptions=True)
        return replies, await pipeline(["k"], ["after"])  # the connection is still in step

    replies, after = _run(redis_endpoint, body)
    assert replies[0::2] == [b"a", b"b", b"c"]
    assert all(isinstance(r, ResponseError) and "asked to fail" in str(r) for r in replies[1::2])
    assert after == b"after"


def test_a_script_redis_lost_is_loaded_again(redis_endpoint: RedisEndpoint) -> None:
    script_text = "return 'reloaded ' .. ARGV[1]"

    async def body(client: aredis.Redis) -> list[Any]:
        pipeline = AutoPipeline(client, script_text)
        await pipeline(["k"], ["first"])
        await client.script_flush()  # as after a Redis restart: the script's SHA is unknown now
        return list(await asyncio.gather(*(pipeline(["k"], [str(i)]) for i in range(3))))

    assert _run(redis_endpoint, body) == [b"reloaded 0", b"reloaded 1", b"reloaded 2"]


def test_a_broken_connection_is_replaced_and_the_batch_sent_again(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys
) -> None:
    name = f"{keys.prefix}:victim"
    redis_client.set(name, "still here")

    async def body(client: aredis.Redis) -> tuple[list[Any], int]:
        pipeline = AutoPipeline(client, ECHO)
        await pipeline([name], ["warm"])  # a pooled connection, idle now
        await client.client_setname("autopipeline-victim")  # only the test's own connections carry it
        killed = 0
        for info in redis_client.client_list():
            if info.get("name") == "autopipeline-victim":
                killed += int(redis_client.client_kill_filter(_id=info["id"]))
        assert killed  # the idle pooled connection is gone on Redis's side
        replies = await asyncio.gather(*(pipeline([name], [str(i)]) for i in range(5)))
        return list(replies), pipeline.batches

    replies, batches = _run(redis_endpoint, body)
    assert replies == [[name.encode(), str(i).encode(), b"still here"] for i in range(5)]
    assert batches == 2


def test_a_caller_that_goes_away_leaves_the_others_their_replies(redis_endpoint: RedisEndpoint) -> None:
    async def body(client: aredis.Redis) -> tuple[list[Any], Any]:
        pipeline = AutoPipeline(client, FAILS_ON_ASK)
        calls = [asyncio.ensure_future(pipeline(["k"], [str(i)])) for i in range(6)]
        await asyncio.sleep(0)  # every call submitted, none answered
        calls[2].cancel()
        replies = await asyncio.gather(*calls, return_exceptions=True)
        return list(replies), await pipeline(["k"], ["after"])

    replies, after = _run(redis_endpoint, body)
    assert isinstance(replies[2], asyncio.CancelledError)
    assert [r for i, r in enumerate(replies) if i != 2] == [str(i).encode() for i in (0, 1, 3, 4, 5)]
    assert after == b"after"


def test_redis_unreachable_fails_every_caller_with_a_redis_error() -> None:
    async def main() -> list[Any]:
        client = aredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens on port 1
        try:
            pipeline = AutoPipeline(client, "return 1")
            calls = (pipeline(["k"], ["a"]) for _ in range(3))
            return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            await client.aclose()

    replies = asyncio.run(main())
    assert len(replies) == 3 and all(isinstance(r, redis.ConnectionError) for r in replies)


@pytest.mark.parametrize("in_flight", [1, 7])
def test_closing_waits_for_the_batches_in_flight(redis_endpoint: RedisEndpoint, in_flight: int) -> None:
    async def body(client: aredis.Redis) -> list[Any]:
        pipeline = AutoPipeline(client, FAILS_ON_ASK)
        calls = [asyncio.ensure_future(pipeline(["k"], [str(i)])) for i in range(in_flight)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the batch was handed to its sender
        await pipeline.aclose()
        assert all(c.done() for c in calls)
        return [c.result() for c in calls]

    assert _run(redis_endpoint, body) == [str(i).encode() for i in range(in_flight)]
