"""Reading what publish wrote, with as few Redis round trips as possible.

A member request is one script call (``MEMBER_READ``: served version, catalogue revision, live
redemptions, the member's contact state and record under the version seen last), sent in one write with
the calls of the other requests of the same event-loop turn (``serving.autopipeline``), and a second only
when the served version changed since. On a Redis Cluster those keys live in different slots, which one
script may not cross, so the same reads go in one pipeline instead. The decoded catalogue is cached per
(version, catalogue revision), so a switch, rollback or takedown is picked up on the next request
without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aredis

from recsys.cache import LIVE_BASE_FIELD, MEMBER_INDEX_CHUNK, Keys, MemberRecord
from recsys.catalogue import Catalogue, catalogue_from_hash
from recsys.errors import MemberNotFoundError, NotPublishedError, StoreError
from recsys.events import redemption_counts
from recsys.profiles import EMPTY_PROFILE, MemberProfile, read_profile
from recsys.store import REDIS_ERRORS
from serving.autopipeline import AutoPipeline

CATALOGUES_KEPT = 4

# KEYS: served version, catalogue revision, live redemptions, the member's contact state, the member's
# record under ARGV[1] (the version seen last; read only if it is still served). One command instead of a
# five-command pipeline: a third of the client's cost of reading a member (benchmarks/request_cost.py).
MEMBER_READ = """
local version = redis.call('GET', KEYS[1])
local record = false
if version and version == ARGV[1] then
  record = redis.call('GET', KEYS[5])
end
return {version, redis.call('GET', KEYS[2]), redis.call('HGETALL', KEYS[3]), redis.call('HGETALL', KEYS[4]), record}
"""


@dataclass(frozen=True, slots=True)
class MemberView:
    version: str
    record: MemberRecord
    catalogue: Catalogue
    contacts: dict[bytes, bytes]  # raw HGETALL of the member's contact state
    live_redeemed: dict[str, int]  # redemptions recorded live since this version was published
    profile: MemberProfile = EMPTY_PROFILE  # top brands and partners (members consenting to personalisation)


@contextlib.contextmanager
def _store_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except REDIS_ERRORS as exc:
        raise StoreError(f"Redis failed while {doing}: {type(exc).__name__}: {exc}") from exc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A script's ``HGETALL`` reply (field, value, field, value ...) as the dict redis-py's gives."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


class _VersionGone(StoreError):
    """The version just read as served was removed meanwhile (a publish after a rollback dropped it)."""


class _MissingIn(MemberNotFoundError):
    def __init__(self, member_id: str, version: str) -> None:
        super().__init__(member_id)
        self.version = version


def _not_published() -> NotPublishedError:
    return NotPublishedError("no version has been published yet; run `offers publish`")


class OfferReader:
    def __init__(self, client: aredis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys
        self._last_version: str | None = None
        self._catalogues: dict[tuple[str, int], Catalogue] = {}
        self._live_base: dict[str, dict[str, int]] = {}  # version -> live redemptions at publish
        self._loading = asyncio.Lock()
        # a cluster spreads one member's reads over several slots: a pipeline there, one script elsewhere
        # concurrent requests' reads go in one write per loop turn (``serving.autopipeline``)
        self._read_member = None if isinstance(client, aredis.RedisCluster) else AutoPipeline(client, MEMBER_READ)

    async def aclose(self) -> None:
        """Let the member reads in flight finish (before the client is closed)."""
        if self._read_member is not None:
            await self._read_member.aclose()

    async def ping(self) -> None:
        with _store_errors("pinging"):
            await self.client.ping()

    async def served_version(self) -> str:
        with _store_errors("reading the served version"):
            value = await self.client.get(self.keys.current)
        if value is None:
            raise _not_published()
        return _text(value)

    async def member(self, member_id: str) -> MemberView:
        """The member as the served version has it. A version switched away and removed between two
        reads of one request is read again from the version served then, so an answer always comes
        wholly from one version and a switch never shows as a missing member."""
        try:
            return await self._member(member_id)
        except _VersionGone:
            return await self._member(member_id)
        except _MissingIn as exc:
            with _store_errors("reading the served version"):
                now = await self.client.get(self.keys.current)
            if now is None or _text(now) == exc.version:
                raise
            return await self._member(member_id)

    async def _member(self, member_id: str) -> MemberView:
        keys, guess = self.keys, self._last_version
        with _store_errors("reading a member"):
            if self._read_member is not None:
                found, revision, redeemed, contacts, blob = await self._read_member(
                    keys=[
                        keys.current,
                        keys.catalogue_revision,
                        keys.offer_redemptions,
                        keys.member_contacts(member_id),
                        keys.member(guess or "", member_id),
                    ],
                    args=[guess or ""],
                )
                redeemed, contacts = _pairs(redeemed), _pairs(contacts)
            else:
                pipe = self.client.pipeline(transaction=False)
                pipe.get(keys.current)
                pipe.get(keys.catalogue_revision)
                pipe.hgetall(keys.offer_redemptions)
                pipe.hgetall(keys.member_contacts(member_id))
                if guess is not None:
                    pipe.get(keys.member(guess, member_id))
                found, revision, redeemed, contacts, *guessed = await pipe.execute()
                blob = guessed[0] if guessed else None
            if found is None:
                raise _not_published()
            version = _text(found)
            if version != guess:
                blob = await self.client.get(keys.member(version, member_id))
                self._last_version = version
        if blob is None:
            raise _MissingIn(member_id, version)
        catalogue = await self.catalogue(version, int(revision or 0))
        base = self._live_base.get(version, {})
        live = {o: n - base.get(o, 0) for o, n in redemption_counts(redeemed).items() if n > base.get(o, 0)}
        record = MemberRecord.unpack(blob)
        return MemberView(version, record, catalogue, contacts, live, read_profile(blob, record))

    async def catalogue(self, version: str, revision: int) -> Catalogue:
        """The decoded catalogue of ``version`` at ``revision``, loaded once per process."""
        found = self._catalogues.get((version, revision))
        if found is not None:
            return found
        async with self._loading:
            found = self._catalogues.get((version, revision))
            if found is not None:
                return found
            with _store_errors("loading the catalogue"):
                pipe = self.client.pipeline(transaction=False)
                pipe.hgetall(self.keys.version_offers(version))
                pipe.hgetall(self.keys.catalogue_overlay)
                fields, overlay = await pipe.execute()
            if not fields:
                raise _VersionGone(f"version {version} has no offers in Redis (removed while being read?)")
            catalogue = await asyncio.to_thread(catalogue_from_hash, fields, overlay)
            raw_base = fields.get(LIVE_BASE_FIELD.encode())
            self._live_base[version] = {str(o): int(n) for o, n in orjson.loads(raw_base).items()} if raw_base else {}
            while len(self._catalogues) >= CATALOGUES_KEPT:
                self._catalogues.pop(next(iter(self._catalogues)))
            for stale in set(self._live_base) - {v for v, _ in self._catalogues} - {version}:
                del self._live_base[stale]
            self._catalogues[(version, revision)] = catalogue
            return catalogue

    async def version_meta(self) -> tuple[str, dict[str, Any]]:
        version = await self.served_version()
        with _store_errors("reading the version meta"):
            raw = await self.client.hgetall(self.keys.version_meta(version))
        return version, {_text(k): _text(v) for k, v in raw.items()}

    async def picks_page(self, version: str, position: int, size: int) -> PicksPage | None:
        """Member ids ``position`` .. ``position + size`` of ``version`` with their records and contact
        state, the live redemptions since publish and the catalogue; None if the version is gone."""
        keys = self.keys
        first, last = position // MEMBER_INDEX_CHUNK, (position + size - 1) // MEMBER_INDEX_CHUNK
        with _store_errors("reading weekly picks"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(keys.version_meta(version), "members")
            pipe.get(keys.catalogue_revision)
            pipe.hgetall(keys.offer_redemptions)
            for chunk in range(first, last + 1):
                pipe.get(keys.member_index(version, chunk))
            listed, revision, live_raw, *chunks = await pipe.execute()
            if listed is None:
                return None
            ids = [m for text in chunks if text for m in _text(text).split("\n")]
            offset = position - first * MEMBER_INDEX_CHUNK
            ids = ids[offset : offset + size]
            pipe = self.client.pipeline(transaction=False)
            for member_id in ids:
                pipe.get(keys.member(version, member_id))
                pipe.hgetall(keys.member_contacts(member_id))
            replies = await pipe.execute() if ids else []
        catalogue = await self.catalogue(version, int(revision or 0))
        base = self._live_base.get(version, {})
        live = {o: n - base.get(o, 0) for o, n in redemption_counts(live_raw).items() if n > base.get(o, 0)}
        more = position + len(ids) < int(listed)
        return PicksPage(ids, replies[0::2], replies[1::2], catalogue, live, more)


@dataclass(frozen=True, slots=True)
class PicksPage:
    member_ids: list[str]
    blobs: list[bytes | None]
    contacts: list[dict[bytes, bytes]]
    catalogue: Catalogue
    live_redeemed: dict[str, int]
    more: bool  # members remain after this page
