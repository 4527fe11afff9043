"""Erasing a member on request: their record in every kept version and their contact state go at
once, their id joins ``Keys.erased_members()`` (publish, training exports and weekly picks skip it,
new events for it are refused), and their entries in the event log are deleted after.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import cast

import redis
import redis.asyncio as aredis
from redis.cluster import RedisCluster

from recsys.cache import Keys
from recsys.errors import StoreError
from recsys.events import StreamFields

PURGE_CHUNK = 5000


@dataclass(frozen=True)
class Erasure:
    member_id: str
    keys_removed: int  # member records and contact state that existed
    first_time: bool  # False when the id was already recorded as erased


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def _cluster(client: object) -> bool:
    return isinstance(client, RedisCluster | aredis.RedisCluster)


def _member_keys(keys: Keys, member_id: str, versions: list[bytes | str]) -> list[str]:
    live = [keys.member_contacts(member_id), keys.member_event_ids(member_id)]
    return [keys.member(_text(v), member_id) for v in versions] + live


def erase_member(client: redis.Redis, keys: Keys, member_id: str) -> Erasure:
    """Record the id as erased (the set, and a marker in the member's slot), then remove the member's
    data from every kept version (idempotent). One MULTI on a standalone Redis; on a Cluster the marker
    and the deletions share the member's slot and are applied in order, so a retry finishes an
    interrupted erasure."""
    try:
        versions = client.lrange(keys.versions, 0, -1)
        pipe = client.pipeline(transaction=not _cluster(client))
        pipe.sadd(keys.erased_members(), member_id)
        pipe.set(keys.member_erased(member_id), 1)
        for key in _member_keys(keys, member_id, versions):
            pipe.delete(key)  # one key per DEL: a Cluster pipeline refuses multi-key DEL
        added, _, *removed = pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"could not erase member {member_id!r}: {exc}") from exc
    return Erasure(member_id, sum(int(r) for r in removed), bool(added))


async def aerase_member(client: aredis.Redis, keys: Keys, member_id: str) -> Erasure:
    """``erase_member`` for an asyncio client."""
    try:
        versions = await client.lrange(keys.versions, 0, -1)
        pipe = client.pipeline(transaction=not _cluster(client))
        pipe.sadd(keys.erased_members(), member_id)
        pipe.set(keys.member_erased(member_id), 1)
        for key in _member_keys(keys, member_id, versions):
            pipe.delete(key)  # one key per DEL: a Cluster pipeline refuses multi-key DEL
        added, _, *removed = await pipe.execute()
    except redis.RedisError as exc:
        raise StoreError(f"could not erase member {member_id!r}: {exc}") from exc
    return Erasure(member_id, sum(int(r) for r in removed), bool(added))


def erased_ids(client: redis.Redis, keys: Keys) -> set[str]:
    """Every member id erased so far (publish, training and weekly picks leave them out)."""
    try:
        return {_text(m) for m in client.smembers(keys.erased_members())}
    except redis.RedisError as exc:
        raise StoreError(f"could not read the erased members: {exc}") from exc


def _matches(entries: Entries, members: Collection[str]) -> list[bytes]:
    field = StreamFields.MEMBER.encode()
    return [entry_id for entry_id, fields in entries if _text(fields.get(field, b"")) in members]


def purge_events(client: redis.Redis, keys: Keys, members: Collection[str] | None = None) -> int:
    """Delete the event-log entries of ``members`` (default: every erased member); returns how many."""
    wanted = erased_ids(client, keys) if members is None else set(members)
    if not wanted:
        return 0
    removed, start = 0, "-"
    try:
        while entries := cast(Entries, client.xrange(keys.events_stream, start, "+", count=PURGE_CHUNK)):
            doomed = _matches(entries, wanted)
            if doomed:
                removed += int(client.xdel(keys.events_stream, *doomed))
            start = "(" + _text(entries[-1][0])
    except redis.RedisError as exc:
        raise StoreError(f"could not purge events of erased members: {exc}") from exc
    return removed


async def apurge_events(client: aredis.Redis, keys: Keys, members: Collection[str]) -> int:
    """``purge_events`` for an asyncio client (run after an erasure's response)."""
    wanted = set(members)
    removed, start = 0, "-"
    try:
        while entries := cast(Entries, await client.xrange(keys.events_stream, start, "+", count=PURGE_CHUNK)):
            doomed = _matches(entries, wanted)
            if doomed:
                removed += int(await client.xdel(keys.events_stream, *doomed))
            start = "(" + _text(entries[-1][0])
    except redis.RedisError as exc:
        raise StoreError(f"could not purge events of erased members: {exc}") from exc
    return removed
