"""Feedback events (impression, click, redeem, dismiss): validated one by one, then recorded so the
event log, the member's contact state and the offer's live redemption counter change together,
exactly once per client ``event_id``, even under concurrent posts.

On a standalone Redis a batch is one Lua script (atomic). A Redis Cluster refuses a script over
several slots, so there the member's slot and slot ``{ev}`` are written by one script each, both
once-only per client ``event_id``: a retried batch completes what an interrupted one left undone.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import redis
import redis.asyncio as aredis
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.cluster import RedisCluster

from recsys.cache import Keys
from recsys.contacts import DAY, ContactPolicy, iso_week
from recsys.errors import ConfigurationError, StoreError

Identifier = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""An id as the data contract defines it: non-empty, no control characters, at most 64 characters."""

EventKind = Literal["impression", "click", "redeem", "dismiss"]
Channel = Literal["app", "email", "web", "sms"]
Status = Literal["recorded", "duplicate", "erased"]

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)
SCRIPT_CHUNK = 1000  # events per script call: each call is atomic, and short enough not to stall Redis


class StreamFields:
    """Field names of one ``Keys.events_stream`` entry."""

    EVENT_ID = "id"
    MEMBER = "m"
    OFFER = "o"
    KIND = "k"
    CHANNEL = "c"
    TIMESTAMP = "t"  # milliseconds since 1970-01-01 UTC


class EventSettings(BaseSettings):
    """Limits of the events API, from ``OFFERS_EVENTS_*``."""

    model_config = SettingsConfigDict(env_prefix="OFFERS_EVENTS_", extra="ignore", frozen=True)

    max_batch: int = Field(1000, ge=1, le=100_000, description="Most events one POST /v1/events may carry.")
    dedupe_days: float = Field(
        7, ge=0, description="How long a client event_id is remembered, so a retried batch is not counted twice."
    )


def load_event_settings() -> EventSettings:
    try:
        return EventSettings.model_validate({})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid events settings (OFFERS_EVENTS_*): {exc}") from exc


class OfferEvent(BaseModel):
    """One member response to an offer, as a client reports it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "app-7f3c2a",
                    "member_id": "M000042",
                    "offer_id": "OF0107",
                    "kind": "click",
                    "channel": "app",
                    "timestamp": "2025-03-14T09:26:53Z",
                }
            ]
        },
    )

    member_id: Identifier
    offer_id: Identifier
    kind: EventKind = Field(validation_alias=AliasChoices("kind", "event"), description="What the member did.")
    channel: Channel = Field(description="Where it happened.")
    timestamp: datetime = Field(
        description="When it happened, ISO 8601; without a zone it is UTC. Refused before 2000 or more than a "
        "day ahead of the server clock."
    )
    event_id: Identifier | None = Field(
        None, description="Client id of the event: a retried event with the same id is recorded once."
    )

    @field_validator("timestamp")
    @classmethod
    def _plausible(cls, value: datetime, info: ValidationInfo) -> datetime:
        value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if value < EARLIEST:
            raise ValueError("timestamp is before 2000-01-01")
        if value > now + FUTURE_SLACK:
            raise ValueError(f"timestamp is more than a day after the server time ({now:%Y-%m-%dT%H:%M:%SZ})")
        return value


@dataclass(frozen=True)
class Rejection:
    """Why one event of a batch was refused (``field`` is empty when the event as a whole is wrong)."""

    index: int
    field: str
    reason: str


@dataclass(frozen=True)
class EventResult:
    event_id: str
    status: Status  # recorded; duplicate (already recorded, not counted again); erased (member was erased)
    entry: str | None = None  # stream entry id when recorded


def parse_events(items: Sequence[object], now: datetime) -> tuple[list[tuple[int, OfferEvent]], list[Rejection]]:
    """Validate each item on its own: the valid events (with their index) and one rejection per error."""
    valid: list[tuple[int, OfferEvent]] = []
    rejected: list[Rejection] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, OfferEvent.model_validate(item, context={"now": now})))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                field = ".".join(str(part) for part in error["loc"])
                rejected.append(Rejection(index, field, str(error["msg"]).removeprefix("Value error, ")))
    return valid, rejected


# The contact update of one event on the member's hash ``c`` (fields in ``recsys.contacts``).
_TOUCH = """
local function touch(c, offer, kind, channel, ts_ms, week, kept, ttl)
  local ts = math.floor(tonumber(ts_ms) / 1000)
  if kind == 'impression' then
    local f = 'i:' .. offer
    local times = {}
    local cur = redis.call('HGET', c, f)
    if cur then
      for x in string.gmatch(cur, '%d+') do times[#times + 1] = tonumber(x) end
    end
    times[#times + 1] = ts
    table.sort(times)
    local keep = {}
    for j = math.max(1, #times - kept + 1), #times do keep[#keep + 1] = string.format('%d', times[j]) end
    redis.call('HSET', c, f, table.concat(keep, ','))
    if channel == 'email' then
      local w, count = nil, 0
      local cur_week = redis.call('HGET', c, 'ew')
      if cur_week then
        local text, number = string.match(cur_week, '^(.-):(%d+)$')
        w, count = text, tonumber(number or '0') or 0
      end
      if w == week then
        redis.call('HSET', c, 'ew', week .. ':' .. string.format('%d', count + 1))
      elseif (not w) or week > w then
        redis.call('HSET', c, 'ew', week .. ':1')
      end
    end
  elseif kind == 'click' or kind == 'dismiss' then
    local f = (kind == 'click' and 'c:' or 'd:') .. offer
    local cur = tonumber(redis.call('HGET', c, f) or '')
    if (not cur) or ts > cur then redis.call('HSET', c, f, string.format('%d', ts)) end
  elseif kind == 'redeem' then
    redis.call('HINCRBY', c, 'r:' .. offer, 1)
  end
  redis.call('EXPIRE', c, ttl)
end

local function forget(ids, now, window)
  if window > 0 then
    redis.call('ZREMRANGEBYSCORE', ids, '-inf', '(' .. string.format('%d', now - window))
  end
end
"""

# Standalone Redis: the whole batch in one script.
# KEYS: 1 stream, 2 recent client ids, 3 live redemptions, 4 erased members, 4+i contacts of event i.
# ARGV: 1 now (ms), 2 dedupe window (ms), 3 impressions kept, 4 contact ttl (s), then 8 per event:
# event id, dedupe flag, member, offer, kind, channel, timestamp (ms), ISO week.
_RECORD = (
    _TOUCH
    + """
local now, kept, ttl = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
forget(KEYS[2], now, tonumber(ARGV[2]))
local out = {}
for i = 1, (#ARGV - 4) / 8 do
  local a = 4 + (i - 1) * 8
  local eid, dedupe, member, offer = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
  local kind, channel, ts_ms, week = ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8]
  if redis.call('SISMEMBER', KEYS[4], member) == 1 then
    out[i] = 'erased'
  elseif dedupe == '1' and redis.call('ZADD', KEYS[2], 'NX', now, eid) == 0 then
    out[i] = 'duplicate'
  else
    out[i] = redis.call('XADD', KEYS[1], '*', 'id', eid, 'm', member, 'o', offer, 'k', kind, 'c', channel, 't', ts_ms)
    touch(KEYS[4 + i], offer, kind, channel, ts_ms, week, kept, ttl)
    if kind == 'redeem' then redis.call('HINCRBY', KEYS[3], offer, 1) end
  end
end
return out
"""
)

# Redis Cluster, step 1 (the member's slot): contact state, once per client event id.
# KEYS: 1 contacts, 2 the member's recent client ids, 3 the member's erasure mark. ARGV as _RECORD.
_RECORD_MEMBER = (
    _TOUCH
    + """
local now, kept, ttl = tonumber(ARGV[1]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
local erased = redis.call('EXISTS', KEYS[3]) == 1
if not erased then forget(KEYS[2], now, tonumber(ARGV[2])) end
for i = 1, (#ARGV - 4) / 8 do
  local a = 4 + (i - 1) * 8
  if erased then
    out[i] = 'erased'
  elseif ARGV[a + 2] == '1' and redis.call('ZADD', KEYS[2], 'NX', now, ARGV[a + 1]) == 0 then
    out[i] = 'duplicate'
  else
    touch(KEYS[1], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7], ARGV[a + 8], kept, ttl)
    if ARGV[a + 2] == '1' then redis.call('EXPIRE', KEYS[2], ttl) end
    out[i] = 'ok'
  end
end
return out
"""
)

# Redis Cluster, step 2 (slot {ev}): the event log and live redemption counters, once per client event id.
# KEYS: 1 stream, 2 recent client ids, 3 live redemptions. ARGV as _RECORD.
_RECORD_LOG = (
    _TOUCH
    + """
local now = tonumber(ARGV[1])
forget(KEYS[2], now, tonumber(ARGV[2]))
local out = {}
for i = 1, (#ARGV - 4) / 8 do
  local a = 4 + (i - 1) * 8
  local eid, member, offer, kind = ARGV[a + 1], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  if ARGV[a + 2] == '1' and redis.call('ZADD', KEYS[2], 'NX', now, eid) == 0 then
    out[i] = 'duplicate'
  else
    local channel, ts_ms = ARGV[a + 6], ARGV[a + 7]
    out[i] = redis.call('XADD', KEYS[1], '*', 'id', eid, 'm', member, 'o', offer, 'k', kind, 'c', channel, 't', ts_ms)
    if kind == 'redeem' then redis.call('HINCRBY', KEYS[3], offer, 1) end
  end
end
return out
"""
)

Row = list[str | int]


@dataclass(frozen=True)
class _Batch:
    """The script arguments of a batch: a shared head and one row of 8 values per event."""

    head: list[str | int]
    rows: list[Row]
    event_ids: list[str]
    members: list[str]

    def args(self, positions: Sequence[int]) -> list[str | int]:
        return [*self.head, *(value for i in positions for value in self.rows[i])]


def _batch(events: Sequence[OfferEvent], now: datetime, policy: ContactPolicy, dedupe_days: float) -> _Batch:
    now_ms = int(now.timestamp() * 1000)
    head: list[str | int] = [
        now_ms,
        int(dedupe_days * 86_400_000),
        policy.impressions_kept,
        policy.contact_ttl_days * DAY,
    ]
    batch = _Batch(head, [], [], [])
    for event in events:
        event_id = event.event_id or uuid.uuid4().hex
        at = event.timestamp
        batch.rows.append(
            [
                event_id,
                "1" if event.event_id else "0",
                event.member_id,
                event.offer_id,
                event.kind,
                event.channel,
                int(at.timestamp() * 1000),
                iso_week(at.astimezone(UTC)),
            ]
        )
        batch.event_ids.append(event_id)
        batch.members.append(event.member_id)
    return batch


def _chunks(positions: Sequence[int]) -> list[Sequence[int]]:
    return [positions[start : start + SCRIPT_CHUNK] for start in range(0, len(positions), SCRIPT_CHUNK)]


Call = tuple[Sequence[int], list[str], list[str | int]]  # event positions, script keys, script arguments


def _standalone_calls(keys: Keys, batch: _Batch) -> list[Call]:
    control = [keys.events_stream, keys.event_ids, keys.offer_redemptions, keys.erased_members()]
    calls: list[Call] = []
    for chunk in _chunks(range(len(batch.rows))):
        contacts = [keys.member_contacts(batch.members[i]) for i in chunk]
        calls.append((chunk, control + contacts, batch.args(chunk)))
    return calls


def _member_calls(keys: Keys, batch: _Batch) -> list[Call]:
    groups: dict[str, list[int]] = {}
    for i, member in enumerate(batch.members):
        groups.setdefault(member, []).append(i)
    calls: list[Call] = []
    for member, positions in groups.items():
        member_keys = [keys.member_contacts(member), keys.member_event_ids(member), keys.member_erased(member)]
        calls.append((positions, member_keys, batch.args(positions)))
    return calls


def _log_calls(keys: Keys, batch: _Batch, outcome: dict[int, str]) -> list[Call]:
    """The {ev}-slot calls for the events the member step did not refuse as erased."""
    logged = [i for i in range(len(batch.rows)) if outcome[i] != "erased"]
    log_keys = [keys.events_stream, keys.event_ids, keys.offer_redemptions]
    return [(chunk, log_keys, batch.args(chunk)) for chunk in _chunks(logged)]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _collect(outcome: dict[int, str], positions: Sequence[int], replies: Sequence[object]) -> None:
    outcome |= {i: _text(r) for i, r in zip(positions, replies, strict=True)}


def _results(batch: _Batch, outcome: dict[int, str]) -> list[EventResult]:
    out = []
    for i, event_id in enumerate(batch.event_ids):
        text = outcome[i]
        if text == "duplicate":
            out.append(EventResult(event_id, "duplicate"))
        elif text == "erased":
            out.append(EventResult(event_id, "erased"))
        else:
            out.append(EventResult(event_id, "recorded", text))
    return out


def _is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster | aredis.RedisCluster)


def _prepare(
    events: Sequence[OfferEvent], now: datetime, policy: ContactPolicy | None, settings: EventSettings | None
) -> _Batch:
    policy = policy or ContactPolicy.model_validate({})
    settings = settings or EventSettings.model_validate({})
    return _batch(events, now, policy, settings.dedupe_days)


def record_events(
    client: redis.Redis,
    keys: Keys,
    events: Sequence[OfferEvent],
    now: datetime,
    *,
    policy: ContactPolicy | None = None,
    settings: EventSettings | None = None,
) -> list[EventResult]:
    """Record validated events (one result each, in order); returns once Redis has applied them.

    On a standalone Redis each chunk of ``SCRIPT_CHUNK`` events is one atomic script. On a Redis
    Cluster every member's contact state is written by a script in the member's slot, then the log
    and counters by one in slot ``{ev}``; each step is once-only per client ``event_id``, so a retry
    of an interrupted batch completes it without counting anything twice."""
    batch = _prepare(events, now, policy, settings)
    outcome: dict[int, str] = {}
    try:
        if not _is_cluster(client):
            script = client.register_script(_RECORD)
            for positions, script_keys, args in _standalone_calls(keys, batch):
                _collect(outcome, positions, script(keys=script_keys, args=args))
            return _results(batch, outcome)
        pipe = client.pipeline(transaction=False)
        member_calls = _member_calls(keys, batch)
        for _, script_keys, args in member_calls:
            pipe.execute_command("EVAL", _RECORD_MEMBER, len(script_keys), *script_keys, *args)
        for (positions, _, _), replies in zip(member_calls, pipe.execute(), strict=True):
            _collect(outcome, positions, replies)
        for positions, script_keys, args in _log_calls(keys, batch, outcome):
            reply = client.execute_command("EVAL", _RECORD_LOG, len(script_keys), *script_keys, *args)
            _collect(outcome, positions, reply)
    except redis.RedisError as exc:
        raise StoreError(f"could not record events: {exc}") from exc
    return _results(batch, outcome)


async def arecord_events(
    client: aredis.Redis,
    keys: Keys,
    events: Sequence[OfferEvent],
    now: datetime,
    *,
    policy: ContactPolicy | None = None,
    settings: EventSettings | None = None,
) -> list[EventResult]:
    """``record_events`` for an asyncio client."""
    batch = _prepare(events, now, policy, settings)
    outcome: dict[int, str] = {}
    try:
        if not _is_cluster(client):
            script = client.register_script(_RECORD)
            for positions, script_keys, args in _standalone_calls(keys, batch):
                _collect(outcome, positions, await script(keys=script_keys, args=args))
            return _results(batch, outcome)
        pipe = client.pipeline(transaction=False)
        member_calls = _member_calls(keys, batch)
        for _, script_keys, args in member_calls:
            pipe.execute_command("EVAL", _RECORD_MEMBER, len(script_keys), *script_keys, *args)
        for (positions, _, _), replies in zip(member_calls, await pipe.execute(), strict=True):
            _collect(outcome, positions, replies)
        for positions, script_keys, args in _log_calls(keys, batch, outcome):
            reply = await client.execute_command("EVAL", _RECORD_LOG, len(script_keys), *script_keys, *args)
            _collect(outcome, positions, reply)
    except redis.RedisError as exc:
        raise StoreError(f"could not record events: {exc}") from exc
    return _results(batch, outcome)


def redemption_counts(mapping: dict[bytes, bytes] | dict[str, str]) -> dict[str, int]:
    """Parse the raw ``HGETALL`` of ``Keys.offer_redemptions``: offer id -> redemptions recorded live."""
    out: dict[str, int] = {}
    for key, value in mapping.items():
        try:
            out[key.decode() if isinstance(key, bytes) else key] = int(value)
        except ValueError:
            continue
    return out
