"""Publishing a serving bundle to Redis as a new version, then switching to it atomically.

Everything of a version is written beside the served one under ``<prefix>:v:<version>:``; only when
it is complete does one Lua call (checking that this publish still holds the lock) set the served
version and push it onto the kept list. Readers therefore never see a half-written version, the
previous version stays for ``rollback``, and versions beyond ``versions_kept`` are removed after.
Keys of versions on no list (a publish that crashed half way) are removed by the next publish.
Members erased on request (``Keys.erased_members``) are never written.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import redis
from redis.cluster import RedisCluster
from tqdm import tqdm

from recsys.cache import (
    FLAG_CONSENT_EMAIL,
    FLAG_CONSENT_PERSONALISATION,
    FLAG_INFORMED,
    FORMAT_VERSION,
    LIVE_BASE_FIELD,
    MEMBER_INDEX_CHUNK,
    Keys,
    member_record_dtype,
)
from recsys.catalogue import offer_records, offers_hash
from recsys.errors import PublishError, StoreError
from recsys.profiles import TRAILER
from recsys.rewards import partner_records
from recsys.store import REDIS_ERRORS
from training.bundle import ServingBundle
from training.shards import MemberBatch, MemberWriter, OfferScoring, write_members

LOCK_TTL_MS = 120_000
LOCK_REFRESH_S = 10.0
SCAN_COUNT = 2_000  # keys one cleanup step looks at (a Lua step blocks Redis for a few ms at most)
UNLINK_BATCH = 1_000
MAX_OFFERS = np.iinfo(np.uint16).max  # candidates are stored as uint16 offer indices

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# KEYS: lock, current, versions; ARGV: token, version, versions kept. Returns the versions dropped from
# the kept list, or false when this publish no longer holds the lock (nothing switched).
_SWITCH = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return false
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[2])
local kept = tonumber(ARGV[3])
local dropped = redis.call('LRANGE', KEYS[3], kept, -1)
redis.call('LTRIM', KEYS[3], 0, kept - 1)
return dropped
"""
# ARGV: cursor, match, count, bytes before the version in a key, "keep"|"drop", versions... One SCAN step
# that unlinks the keys of versions outside (keep) or inside (drop) the given ones; returns {cursor, removed}.
_SCAN_UNLINK = """
local set = {}
for i = 6, #ARGV do set[ARGV[i]] = true end
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local skip = tonumber(ARGV[4])
local keep = ARGV[5] == 'keep'
local removed = 0
for _, key in ipairs(reply[2]) do
  local version = string.match(string.sub(key, skip + 1), '^([^:]+)')
  if version and (set[version] ~= nil) ~= keep then
    redis.call('UNLINK', key)
    removed = removed + 1
  end
end
return {reply[1], removed}
"""
# KEYS: current; ARGV: expected current, new current. Compare-and-set so a concurrent switch wins.
_SET_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


@dataclass(frozen=True)
class PublishResult:
    version: str
    members: int
    offers: int
    seconds: float
    bytes: int  # bytes of values written (member records, offers, meta)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def served_version(client: redis.Redis, keys: Keys) -> str | None:
    """The version readers are served now, or None before the first publish."""
    try:
        value = client.get(keys.current)
    except REDIS_ERRORS as exc:
        raise StoreError(f"cannot read the served version: {exc}") from exc
    return None if value is None else _text(value)


def kept_versions(client: redis.Redis, keys: Keys) -> list[str]:
    """Published versions still in Redis, newest first."""
    return [_text(v) for v in cast(list[bytes], client.lrange(keys.versions, 0, -1))]


def rollback(client: redis.Redis, keys: Keys) -> str:
    """Serve the kept version published before the one served now; returns it."""
    try:
        return _rollback(client, keys)
    except REDIS_ERRORS as exc:
        raise StoreError(f"rollback failed talking to Redis: {exc}") from exc


def _rollback(client: redis.Redis, keys: Keys) -> str:
    current = served_version(client, keys)
    if current is None:
        raise PublishError("nothing to roll back: no version has been published")
    versions = kept_versions(client, keys)
    try:
        previous = versions[versions.index(current) + 1]
    except (ValueError, IndexError):
        raise PublishError(
            f"cannot roll back from version {current}: no earlier version is kept (kept: {', '.join(versions)})"
        ) from None
    if _text(client.hget(keys.version_meta(previous), "status") or b"") != "complete":
        raise PublishError(f"cannot roll back to version {previous}: it is not complete in Redis")
    if not client.register_script(_SET_IF)(keys=[keys.current], args=[current, previous]):
        raise PublishError("the served version changed during the rollback; look again and retry")
    return previous


def _owner_gone(token: str) -> bool:
    """Whether a lock token (``host:pid:random``) names a process of this host that no longer runs."""
    host, _, rest = token.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, someone else's
        return False
    return False


class _Lock:
    """The publish lock: SET NX with an expiry, refreshed while writing, released by its owner only.
    The token names the owner's host and process, so a publish on the same host takes over at once
    the lock of one that was killed; elsewhere the lock expires ``LOCK_TTL_MS`` after its last refresh."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        if not client.set(key, self.token, nx=True, px=LOCK_TTL_MS):
            held = _text(client.get(key) or b"")
            if not (
                _owner_gone(held)
                and client.register_script(_TAKE_OVER)(keys=[key], args=[held, self.token, LOCK_TTL_MS])
            ):
                ttl = client.pttl(key)
                owner = f" by {held.rsplit(':', 1)[0]}" if held.count(":") == 2 else ""
                raise PublishError(
                    f"a publish is running (lock {key} held{owner}, {max(ttl, 0) / 1000:.0f} s left); "
                    "wait for it to finish"
                )
        self._refresh = client.register_script(_REFRESH)
        self._refreshed = time.monotonic()

    def keep(self) -> None:
        if time.monotonic() - self._refreshed < LOCK_REFRESH_S:
            return
        if not self._refresh(keys=[self.key], args=[self.token, LOCK_TTL_MS]):
            raise PublishError("the publish lock expired while writing; another publish may have started")
        self._refreshed = time.monotonic()

    def release(self) -> None:
        with contextlib.suppress(*REDIS_ERRORS):
            self.client.register_script(_RELEASE)(keys=[self.key], args=[self.token])


def publish(
    client: redis.Redis,
    bundle: ServingBundle,
    *,
    keys: Keys,
    candidates: int = 100,
    versions_kept: int = 2,
    show_progress: bool = False,
    now: datetime | None = None,
    writer: MemberWriter = write_members,
) -> PublishResult:
    """Write ``bundle`` as a new version and serve it; see the module docstring for the guarantees.
    ``writer`` scores and writes the members' records: in this process by default, or spread over
    workers (``training.publish_ray``); offers, meta and the switch stay here."""
    if versions_kept < 1:
        raise PublishError("versions_kept must be at least 1 (the served version)")
    if candidates < 1:
        raise PublishError("candidates must be at least 1")
    if len(bundle.offer_ids) > MAX_OFFERS:
        raise PublishError(f"{len(bundle.offer_ids)} offers; a version holds at most {MAX_OFFERS}")
    if len(bundle.offer_ids) == 0:
        raise PublishError("nothing to publish: the bundle has no offers")
    started = time.perf_counter()
    published_at = (now or datetime.now(UTC)).isoformat()
    try:
        lock = _Lock(client, keys.publish_lock)
        try:
            version = str(client.incr(keys.sequence))
            kept = set(kept_versions(client, keys)) | {served_version(client, keys) or ""}
            _unlink_versions(client, keys, kept | {version}, keep=True, lock=lock)  # left by a crashed publish
            members, written = _write_version(
                client, keys, version, bundle, candidates, lock, show_progress, published_at=published_at, writer=writer
            )
            _switch(client, keys, version, versions_kept, lock)
        finally:
            lock.release()
    except REDIS_ERRORS as exc:
        raise StoreError(f"publish failed talking to Redis: {exc}") from exc
    return PublishResult(
        version=version,
        members=members,
        offers=len(bundle.offer_ids),
        seconds=time.perf_counter() - started,
        bytes=written,
    )


def _write_version(
    client: redis.Redis,
    keys: Keys,
    version: str,
    bundle: ServingBundle,
    candidates: int,
    lock: _Lock,
    show_progress: bool,
    *,
    published_at: str,
    writer: MemberWriter = write_members,
) -> tuple[int, int]:
    """Offers, meta and member records of a new version, meta status=complete last; returns
    (members written, bytes written). Members erased on request are left out."""
    written = _write_offers(client, keys, version, bundle)
    # Live redemptions counted so far are in this version's history (or lost to it): budgets count
    # only the redemptions recorded after this snapshot on top of the published ones.
    snapshot = {_text(o): int(n) for o, n in client.hgetall(keys.offer_redemptions).items()}
    client.hset(keys.version_offers(version), LIVE_BASE_FIELD, orjson.dumps(snapshot))
    k = min(candidates, len(bundle.offer_ids))
    meta = {**bundle.meta, "version": version, "published_at": published_at, "status": "writing"}
    meta |= {"offers": str(len(bundle.offer_ids)), "n_factors": str(bundle.n_factors), "candidates": str(k)}
    client.hset(keys.version_meta(version), mapping=cast(Any, meta))
    erased = _erased(client, keys)
    chosen = np.flatnonzero(~np.isin(bundle.member_ids.astype(str), list(erased)))
    written += _write_members(client, keys, version, bundle, chosen, k, lock, show_progress, writer)
    late = (_erased(client, keys) - erased) & set(bundle.member_ids.astype(str).tolist())
    if late:  # erased while this version was written, before it joined the kept list
        client.unlink(*(keys.member(version, m) for m in late))
    members = len(chosen) - len(late)
    listed = [m for m in bundle.member_ids[chosen].astype(str).tolist() if m not in late]
    chunks = _write_member_index(client, keys, version, listed)
    client.hset(
        keys.version_meta(version),
        mapping={"members": str(members), "member_chunks": str(chunks), "status": "complete"},
    )
    return members, written


def _switch(client: redis.Redis, keys: Keys, version: str, versions_kept: int, lock: _Lock) -> None:
    """Serve ``version`` and keep it (one Lua call, only while holding the lock), then remove the
    versions beyond ``versions_kept``."""
    switch = client.register_script(_SWITCH)
    dropped = switch(keys=[keys.publish_lock, keys.current, keys.versions], args=[lock.token, version, versions_kept])
    if dropped is None:
        raise PublishError("the publish lock expired before the switch; version not served")
    gone = {_text(v) for v in cast(list[bytes], dropped)}
    if gone:
        _unlink_versions(client, keys, gone, keep=False, lock=lock)


def _erased(client: redis.Redis, keys: Keys) -> set[str]:
    """Members erased on request: never written again."""
    return {_text(m) for m in cast(set[bytes], client.smembers(keys.erased_members()))}


def _unlink_versions(
    client: redis.Redis, keys: Keys, versions: set[str], *, keep: bool, lock: _Lock | None = None
) -> int:
    """Unlink the per-version keys of every version outside ``versions`` (``keep``) or inside it
    (not ``keep``); returns how many. On one server the keys never leave it: a Lua step scans a slice
    of the keyspace and unlinks in place. A cluster is scanned node by node from here."""
    prefix_bytes = len(keys.prefix.encode()) + 3  # "<prefix>:v:"
    # to drop known versions, Redis filters by their pattern itself: less work per step than Lua on every key
    patterns = [f"{keys.prefix}:v:*"] if keep else [keys.version_pattern(v) for v in sorted(versions)]
    count = SCAN_COUNT if keep else 5 * SCAN_COUNT
    if isinstance(client, RedisCluster):
        return sum(_unlink_versions_cluster(client, p, prefix_bytes, versions, keep) for p in patterns)
    step = client.register_script(_SCAN_UNLINK)
    mode = "keep" if keep else "drop"
    removed = 0
    for pattern in patterns:
        cursor: bytes | int = b"0"
        while True:
            reply = step(args=[cursor, pattern, count, prefix_bytes, mode, *sorted(versions)])
            cursor, removed = reply[0], removed + int(reply[1])
            if cursor in (b"0", 0, "0"):
                break
            if lock is not None:
                lock.keep()
    return removed


def _unlink_versions_cluster(
    client: RedisCluster, pattern: str, prefix_bytes: int, versions: set[str], keep: bool
) -> int:
    removed = 0
    batch: list[bytes] = []
    for key in cast(Iterator[bytes], client.scan_iter(match=pattern, count=SCAN_COUNT)):
        if (key[prefix_bytes:].split(b":", 1)[0].decode() in versions) != keep:
            batch.append(key)
            if len(batch) >= UNLINK_BATCH:
                removed += int(client.unlink(*batch))
                batch.clear()
    if batch:
        removed += int(client.unlink(*batch))
    return removed


def _write_offers(client: redis.Redis, keys: Keys, version: str, bundle: ServingBundle) -> int:
    offers = _aligned(bundle.offers, "offer_id", bundle.offer_ids)
    records = offer_records(offers, partners=bundle.partners, redeemed=bundle.redeemed)
    profiles = bundle.profiles
    popularity = dict(zip(profiles.partner_ids, profiles.partner_popularity.tolist(), strict=True)) if profiles else {}
    fields = offers_hash(
        records,
        bundle.offer.factors,
        bundle.offer.bias,
        bundle.popular_by_tier,
        bundle.feature_space_json,
        feature_table=bundle.offer_features,
        partners=partner_records(bundle.partners, popularity) if len(bundle.partners) else (),
        profile_brands=profiles.brand_names if profiles else (),
        profile_partners=profiles.partner_ids if profiles else (),
    )
    client.hset(keys.version_offers(version), mapping=cast(Any, fields))
    return sum(len(v) for v in fields.values())


def _aligned(frame: pd.DataFrame, id_column: str, ids: npt.NDArray[np.str_]) -> pd.DataFrame:
    """``frame`` with one row per id of ``ids``, in that order (by column, index or position)."""
    if id_column in frame.columns:
        indexed = frame.set_index(id_column)
    elif frame.index.name == id_column:
        indexed = frame
    elif len(frame) == len(ids):
        return frame.assign(**{id_column: ids})
    else:
        raise PublishError(f"a frame without {id_column} has {len(frame)} rows for {len(ids)} ids")
    indexed.index = indexed.index.astype(str)
    missing = pd.Index(ids.astype(str)).difference(indexed.index)
    if len(missing):
        raise PublishError(f"{len(missing)} ids have no row in the {id_column} frame, e.g. {list(missing[:3])}")
    return indexed.reindex(ids.astype(str)).rename_axis(id_column).reset_index()


def _profiles(bundle: ServingBundle, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Every member's record with profile fields filled (embedding and candidates come per chunk)."""
    m = _aligned(bundle.members, "member_id", bundle.member_ids)
    n = len(m)
    rec = np.zeros(n, dtype=dtype)
    consent_p = _bools(m, "consent_personalisation")
    consent_e = _bools(m, "consent_email")
    informed = np.asarray(bundle.member.informed, dtype=bool)
    rec["format"] = FORMAT_VERSION
    rec["tier"] = m["tier"].to_numpy(dtype=np.int64)
    rec["flags"] = (
        np.where(consent_p, FLAG_CONSENT_PERSONALISATION, 0)
        | np.where(consent_e, FLAG_CONSENT_EMAIL, 0)
        | np.where(informed, FLAG_INFORMED, 0)
    )
    rec["country"] = [
        (c if isinstance(c, str) and c else "??").encode("ascii", "replace")[:2].ljust(2, b"?")
        for c in m["home_country"].tolist()
    ]
    nights = m["qualifying_nights_ytd"] if "qualifying_nights_ytd" in m else pd.Series(np.zeros(n))
    rec["qualifying_nights_ytd"] = np.clip(nights.fillna(0).to_numpy(dtype=np.int64), 0, 65535)
    points = m["points_balance"].fillna(0).to_numpy(dtype=np.int64)
    rec["points_balance"] = np.clip(points, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    if "points_expiring_on" in m:
        expiring = pd.to_datetime(m["points_expiring_on"]).to_numpy(dtype="datetime64[D]")
        rec["points_expiring_day"] = np.where(np.isnat(expiring), -1, expiring.astype(np.int64))
    else:
        rec["points_expiring_day"] = -1
    rec["n_factors"] = dtype["factors"].shape[0]
    rec["n_candidates"] = dtype["candidates"].shape[0]
    return rec


def _bools(frame: pd.DataFrame, column: str) -> npt.NDArray[np.bool_]:
    if column not in frame:
        return np.zeros(len(frame), dtype=bool)
    return frame[column].fillna(False).to_numpy(dtype=bool)


def _write_member_index(client: redis.Redis, keys: Keys, version: str, member_ids: list[str]) -> int:
    """The version's member ids in chunks, so batch readers page through every member exactly once."""
    chunks = range(0, len(member_ids), MEMBER_INDEX_CHUNK)
    pipe = client.pipeline(transaction=False)
    for n, start in enumerate(chunks):
        pipe.set(keys.member_index(version, n), "\n".join(member_ids[start : start + MEMBER_INDEX_CHUNK]))
    pipe.execute()
    return len(chunks)


def _member_batch(keys: Keys, version: str, bundle: ServingBundle, chosen: npt.NDArray[np.intp], k: int) -> MemberBatch:
    """The records (``k`` candidates each) of the bundle's members at rows ``chosen``, profile fields
    filled; embedding and candidates are filled where they are scored (``training.shards``)."""
    dtype = member_record_dtype(bundle.n_factors, k)
    if bundle.profiles is not None:  # each record followed by the member's profile trailer
        dtype = np.dtype(dtype.descr + TRAILER.descr)
    records = _profiles(bundle, dtype)[chosen]
    personal = (records["flags"] & FLAG_INFORMED).astype(bool) & (
        records["flags"] & FLAG_CONSENT_PERSONALISATION
    ).astype(bool)
    if bundle.profiles is not None:
        consented = (records["flags"] & FLAG_CONSENT_PERSONALISATION).astype(bool)
        trailer = bundle.profiles.trailer(chosen, consented)
        for name in TRAILER.names or ():
            records[name] = trailer[name]
    return MemberBatch(
        keys=[keys.member(version, str(mid)).encode() for mid in bundle.member_ids[chosen]],
        records=records,
        personal=personal,
        factors=bundle.member.factors[chosen],
        bias=bundle.member.bias[chosen],
    )


def _write_members(
    client: redis.Redis,
    keys: Keys,
    version: str,
    bundle: ServingBundle,
    chosen: npt.NDArray[np.intp],
    k: int,
    lock: _Lock,
    show_progress: bool,
    writer: MemberWriter,
) -> int:
    """Score and write the bundle's members at rows ``chosen`` with ``writer``; returns the bytes written."""
    batch = _member_batch(keys, version, bundle, chosen, k)
    scoring = OfferScoring.of(bundle.offer.factors, bundle.offer.bias, bundle.popular_by_tier, k)
    with tqdm(total=len(chosen), unit="member", desc=f"publish v{version}", disable=not show_progress) as bar:
        return writer(client, batch, scoring, lock.keep, bar.update)
