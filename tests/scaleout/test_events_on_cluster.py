"""Offer events, contact caps and erasure on a real 3-master Redis Cluster: the member's slot and the
{ev} slot are written by one script each, still exactly once per client event id."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.cluster import RedisCluster as ClusterClient

from recsys.cache import Keys
from recsys.contacts import ContactPolicy, ContactState
from recsys.erasure import erase_member
from recsys.events import OfferEvent, record_events, redemption_counts
from recsys.settings import Settings
from tests.support.live_api import auth, live_api

NOW = datetime(2025, 3, 14, 12, tzinfo=UTC)


def event(member: str, kind: str = "redeem", event_id: str | None = None, days: float = 0) -> OfferEvent:
    return OfferEvent(
        member_id=member,
        offer_id="o1",
        kind=kind,  # type: ignore[arg-type]
        channel="app",
        timestamp=NOW - timedelta(days=days),
        event_id=event_id,
    )


def state(client: ClusterClient, keys: Keys, member: str) -> ContactState:
    return ContactState.from_redis(client.hgetall(keys.member_contacts(member)))


def test_members_on_every_node_are_recorded_once(cluster_client: ClusterClient, cluster_keys: Keys) -> None:
    members = [f"m{i:03d}" for i in range(30)]
    slots = {cluster_client.cluster_keyslot(cluster_keys.member_contacts(m)) for m in members}
    assert len({cluster_client.nodes_manager.get_node_from_slot(s).port for s in slots}) == 3
    batch = [event(m, event_id=f"{m}-{k}") for m in members for k in range(2)]
    results = record_events(cluster_client, cluster_keys, batch, NOW)
    assert [r.status for r in results] == ["recorded"] * 60
    assert [r.event_id for r in results] == [e.event_id for e in batch]
    again = record_events(cluster_client, cluster_keys, batch, NOW)
    assert {r.status for r in again} == {"duplicate"}
    assert cluster_client.xlen(cluster_keys.events_stream) == 60
    assert redemption_counts(cluster_client.hgetall(cluster_keys.offer_redemptions)) == {"o1": 60}
    assert all(state(cluster_client, cluster_keys, m).redemptions("o1") == 2 for m in members)


def test_a_half_recorded_batch_is_completed_by_its_retry(cluster_client: ClusterClient, cluster_keys: Keys) -> None:
    batch = [event("m1", event_id="a"), event("m1", event_id="b")]
    record_events(cluster_client, cluster_keys, batch, NOW)
    cluster_client.delete(cluster_keys.events_stream, cluster_keys.event_ids, cluster_keys.offer_redemptions)
    # as if the log step had never run: the retry writes the log without counting the member twice
    results = record_events(cluster_client, cluster_keys, batch, NOW)
    assert [r.status for r in results] == ["recorded", "recorded"]
    assert cluster_client.xlen(cluster_keys.events_stream) == 2
    assert state(cluster_client, cluster_keys, "m1").redemptions("o1") == 2


def test_caps_and_erasure_on_a_cluster(cluster_client: ClusterClient, cluster_keys: Keys) -> None:
    shown = [event("m2", kind="impression", days=d) for d in (3, 2, 1)]
    record_events(cluster_client, cluster_keys, shown, NOW)
    assert ContactPolicy.model_validate({}).suppressed(state(cluster_client, cluster_keys, "m2"), NOW) == {"o1"}
    erase_member(cluster_client, cluster_keys, "m2")
    assert not cluster_client.exists(cluster_keys.member_contacts("m2"))
    assert [r.status for r in record_events(cluster_client, cluster_keys, shown, NOW)] == ["erased"] * 3
    assert not cluster_client.exists(cluster_keys.member_contacts("m2"))
    assert cluster_client.xlen(cluster_keys.events_stream) == 3


def test_concurrent_writers_are_counted_exactly(cluster_client: ClusterClient, cluster_keys: Keys) -> None:
    def writer(t: int) -> None:
        client = ClusterClient(startup_nodes=cluster_client.get_primaries()[:1])
        for i in range(15):
            batch = [event(f"w{t}-{i % 4}", event_id=f"{t}-{i}")]
            record_events(client, cluster_keys, batch * 2, NOW)
        client.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cluster_client.xlen(cluster_keys.events_stream) == 60
    assert redemption_counts(cluster_client.hgetall(cluster_keys.offer_redemptions)) == {"o1": 60}


@pytest.fixture
def cluster_http(
    cluster_settings: Settings, cluster_client: ClusterClient, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    with live_api(cluster_settings, monkeypatch) as client:
        yield client


def test_events_and_erasure_over_http_on_a_cluster(
    cluster_http: httpx.Client, cluster_client: ClusterClient, cluster_keys: Keys
) -> None:
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    body = {
        "events": [
            {"member_id": f"h{i}", "offer_id": "o1", "kind": "click", "channel": "app", "timestamp": at}
            for i in range(10)
        ]
    }
    resp = cluster_http.post("/v1/events", json=body, headers=auth("events-key"))
    assert resp.status_code == 202, resp.text
    assert cluster_client.xlen(cluster_keys.events_stream) == 10
    assert cluster_http.delete("/v1/members/h3", headers=auth("admin-key")).status_code == 204
    assert cluster_client.sismember(cluster_keys.erased_members(), "h3")
    again = cluster_http.post("/v1/events", json=body, headers=auth("events-key")).json()
    assert [e["index"] for e in again["errors"]] == [3]
