"""Recording offer events against a real Redis: validation one by one, the event log, contact state
and live redemption counters written together, exactly once per client event id."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis

from recsys.cache import Keys
from recsys.contacts import ContactState
from recsys.events import OfferEvent, StreamFields, parse_events, record_events, redemption_counts

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)


def raw(**changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "member_id": "m1",
        "offer_id": "o1",
        "kind": "impression",
        "channel": "app",
        "timestamp": "2025-03-14T11:00:00Z",
    }
    return {**base, **changes}


def test_valid_events_parse_and_naive_timestamps_are_utc() -> None:
    contract_names = {k: v for k, v in raw(event="redeem").items() if k != "kind"}
    valid, rejected = parse_events([raw(timestamp="2025-03-14T08:00:00"), contract_names], NOW)
    assert rejected == []
    assert valid[0][1].timestamp == datetime(2025, 3, 14, 8, tzinfo=UTC)
    assert valid[1][1].kind == "redeem"  # the data contract's column name is accepted too


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"timestamp": "2025-03-15T12:00:01Z"}, "timestamp", "more than a day after the server time"),
        ({"timestamp": "1999-12-31T23:59:59Z"}, "timestamp", "before 2000-01-01"),
        ({"timestamp": "yesterday"}, "timestamp", "datetime"),
        ({"kind": "purchase"}, "kind", "impression"),
        ({"channel": "fax"}, "channel", "app"),
        ({"member_id": ""}, "member_id", "at least 1 character"),
        ({"offer_id": "x" * 65}, "offer_id", "at most 64 characters"),
        ({"offer_id": "o\n1"}, "offer_id", "pattern"),
        ({"colour": "red"}, "colour", "Extra inputs"),
    ],
)
def test_each_problem_names_its_field(changes: dict[str, object], field: str, reason: str) -> None:
    valid, rejected = parse_events([raw(), raw(**changes), raw()], NOW)
    assert [i for i, _ in valid] == [0, 2]
    assert [(r.index, r.field) for r in rejected] == [(1, field)]
    assert reason in rejected[0].reason


def test_a_non_object_is_rejected_as_a_whole() -> None:
    _, rejected = parse_events([42], NOW)
    assert [(r.index, r.field) for r in rejected] == [(0, "")]


def test_recording_writes_log_contacts_and_counters_together(redis_client: redis.Redis, keys: Keys) -> None:
    events = [
        OfferEvent.model_validate(raw(kind=k, offer_id=o, event_id=f"e{i}"))
        for i, (k, o) in enumerate([("impression", "o1"), ("click", "o1"), ("redeem", "o1"), ("redeem", "o2")])
    ]
    results = record_events(redis_client, keys, events, NOW)
    assert [r.status for r in results] == ["recorded"] * 4
    assert [r.event_id for r in results] == ["e0", "e1", "e2", "e3"]
    entries = redis_client.xrange(keys.events_stream)
    assert [e[0].decode() for e in entries] == [r.entry for r in results]
    first = entries[0][1]
    assert first[StreamFields.MEMBER.encode()] == b"m1" and first[StreamFields.KIND.encode()] == b"impression"
    assert int(first[StreamFields.TIMESTAMP.encode()]) == int(datetime(2025, 3, 14, 11, tzinfo=UTC).timestamp() * 1000)
    state = ContactState.from_redis(redis_client.hgetall(keys.member_contacts("m1")))
    assert state.redemptions("o1") == 1 and state.redemptions("o2") == 1 and "o1" in state.clicks
    assert redemption_counts(redis_client.hgetall(keys.offer_redemptions)) == {"o1": 1, "o2": 1}
    assert 0 < redis_client.ttl(keys.member_contacts("m1")) <= 400 * 86_400


def test_a_retried_event_id_is_counted_once(redis_client: redis.Redis, keys: Keys) -> None:
    batch = [OfferEvent.model_validate(raw(kind="redeem", event_id=f"r{i}")) for i in range(3)]
    first = record_events(redis_client, keys, batch, NOW)
    again = record_events(redis_client, keys, [*batch, batch[0]], NOW + timedelta(minutes=1))
    assert [r.status for r in first] == ["recorded"] * 3
    assert [r.status for r in again] == ["duplicate"] * 4
    assert redis_client.xlen(keys.events_stream) == 3
    assert redemption_counts(redis_client.hgetall(keys.offer_redemptions)) == {"o1": 3}


def test_events_without_id_get_one_and_are_never_merged(redis_client: redis.Redis, keys: Keys) -> None:
    event = OfferEvent.model_validate(raw())
    results = record_events(redis_client, keys, [event, event], NOW)
    assert [r.status for r in results] == ["recorded", "recorded"]
    assert results[0].event_id != results[1].event_id
    assert redis_client.xlen(keys.events_stream) == 2


def test_client_ids_are_forgotten_after_the_dedupe_window(redis_client: redis.Redis, keys: Keys) -> None:
    event = [OfferEvent.model_validate(raw(event_id="e1"))]
    record_events(redis_client, keys, event, NOW)
    assert record_events(redis_client, keys, event, NOW + timedelta(days=6))[0].status == "duplicate"
    assert record_events(redis_client, keys, event, NOW + timedelta(days=8))[0].status == "recorded"


def test_events_of_an_erased_member_are_refused(redis_client: redis.Redis, keys: Keys) -> None:
    redis_client.sadd(keys.erased_members(), "m1")
    results = record_events(redis_client, keys, [OfferEvent.model_validate(raw())], NOW)
    assert results[0].status == "erased"
    assert redis_client.xlen(keys.events_stream) == 0 and not redis_client.exists(keys.member_contacts("m1"))


def test_large_batches_are_recorded_in_chunks(redis_client: redis.Redis, keys: Keys) -> None:
    events = [OfferEvent.model_validate(raw(member_id=f"m{i % 50}", kind="redeem")) for i in range(2500)]
    results = record_events(redis_client, keys, events, NOW)
    assert len(results) == 2500 and all(r.status == "recorded" for r in results)
    assert redis_client.xlen(keys.events_stream) == 2500
    assert redemption_counts(redis_client.hgetall(keys.offer_redemptions)) == {"o1": 2500}


def test_concurrent_writers_are_counted_exactly(redis_endpoint: object, redis_client: redis.Redis, keys: Keys) -> None:
    def writer(t: int) -> None:
        client = redis.Redis.from_url(redis_endpoint.url)
        for i in range(20):
            batch = [OfferEvent.model_validate(raw(kind="redeem", member_id=f"m{t}", event_id=f"{t}-{i}"))]
            record_events(client, keys, batch * 2, NOW)  # each batch carries its own retry
        client.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert redis_client.xlen(keys.events_stream) == 120
    assert redemption_counts(redis_client.hgetall(keys.offer_redemptions)) == {"o1": 120}
    assert all(redis_client.hget(keys.member_contacts(f"m{t}"), "r:o1") == b"20" for t in range(6))
