"""Publish and serve against a real 3-master Redis Cluster: keys spread over every node, the version
switch stays one atomic script in one slot, and readers never see a half-written version."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
import redis
import redis.asyncio as aredis
from redis.cluster import RedisCluster as ClusterClient

from recsys.cache import Keys
from recsys.catalogue_changes import aapply_changes, apply_changes
from recsys.errors import StoreError
from recsys.settings import Settings, get_settings
from recsys.store import RedisEndpoint, open_redis
from tests.conftest import running_api
from tests.support.live_api import auth, live_api
from tests.support.redis_cluster import RedisCluster, free_port
from tests.support.serving_bundle import make_bundle
from training.publish import kept_versions, publish, rollback, served_version


def keys_per_node(cluster: RedisCluster, pattern: str) -> list[int]:
    """How many keys matching ``pattern`` each node holds (asked node by node, not through the cluster client)."""
    counts = []
    for port in cluster.ports:
        node = cluster.node(port)
        counts.append(sum(1 for _ in node.scan_iter(match=pattern, count=10_000)))
        node.close()
    return counts


def test_cluster_is_three_masters_covering_every_slot(cluster: RedisCluster, cluster_client: ClusterClient) -> None:
    info = cluster_client.cluster_info()
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_ok"]) == 16384
    assert len(cluster_client.get_primaries()) == 3
    assert {n.port for n in cluster_client.get_primaries()} == set(cluster.ports)


def test_open_redis_gives_cluster_clients(cluster_endpoint: RedisEndpoint) -> None:
    assert cluster_endpoint.cluster

    async def roundtrip() -> bytes | None:
        client = await cluster_endpoint.aconnect()
        try:
            assert isinstance(client, aredis.RedisCluster)
            await client.set("scaleout:{probe}", b"1", ex=60)
            return await client.get("scaleout:{probe}")
        finally:
            await client.aclose()

    assert asyncio.run(roundtrip()) == b"1"


def test_an_unreachable_cluster_is_a_store_error() -> None:
    settings = get_settings(redis_url=f"redis://127.0.0.1:{free_port()}", redis_cluster=True)
    with pytest.raises(StoreError, match="not reachable"):
        open_redis(settings)


@pytest.mark.parametrize("prefix", ["lo", "s0123456789"])
def test_switch_keys_share_one_slot_and_member_keys_follow_the_member(
    cluster_client: ClusterClient, prefix: str
) -> None:
    keys = Keys(prefix)
    slot = cluster_client.cluster_keyslot
    assert slot(keys.current) == slot(keys.versions) == slot(keys.publish_lock) == slot(keys.sequence)
    assert slot(keys.catalogue_overlay) == slot(keys.catalogue_revision)
    for member in ("m0001", "GOLD-42", "会员-7"):
        mine = {slot(keys.member(v, member)) for v in ("1", "2", "17")} | {slot(keys.member_contacts(member))}
        assert len(mine) == 1, member
    spread = {slot(keys.member("1", f"m{i:04d}")) for i in range(200)}
    assert len(spread) > 150  # members do not pile into one slot


def test_publish_spreads_members_over_every_node_and_the_api_serves_them(
    cluster: RedisCluster, cluster_client: redis.Redis, cluster_keys: Keys, cluster_settings: Settings
) -> None:
    bundle, _ = make_bundle(n_members=300, n_plain_offers=30)
    result = publish(cluster_client, bundle, keys=cluster_keys, candidates=20)
    assert served_version(cluster_client, cluster_keys) == result.version
    per_node = keys_per_node(cluster, f"{cluster_keys.prefix}:v:{result.version}:m:*")
    assert sum(per_node) == 300
    assert min(per_node) > 50, per_node  # about a third each
    with running_api(cluster_settings) as http:
        assert http.get("/readyz").json() == {"status": "ready", "version": result.version}
        assert http.get("/v1/model").status_code == 200
        for member in bundle.member_ids[::37]:
            resp = http.get(f"/v1/members/{member}/offers", params={"limit": 5})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["version"] == result.version
            assert 0 < len(body["offers"]) <= 5
        assert http.get("/v1/members/nobody/offers").status_code == 404


def test_republish_keeps_two_versions_and_rollback_switches_back(
    cluster: RedisCluster, cluster_client: redis.Redis, cluster_keys: Keys, cluster_settings: Settings
) -> None:
    versions = [
        publish(cluster_client, make_bundle(60, 10, seed=s)[0], keys=cluster_keys, versions_kept=2).version
        for s in range(3)
    ]
    assert kept_versions(cluster_client, cluster_keys) == [versions[2], versions[1]]
    assert sum(keys_per_node(cluster, f"{cluster_keys.prefix}:v:{versions[0]}:*")) == 0  # dropped on every node
    assert sum(keys_per_node(cluster, f"{cluster_keys.prefix}:v:{versions[1]}:m:*")) == 60
    with running_api(cluster_settings) as http:
        assert http.get("/v1/members/m0003/offers").json()["version"] == versions[2]
        assert rollback(cluster_client, cluster_keys) == versions[1]
        assert http.get("/v1/members/m0003/offers").json()["version"] == versions[1]


def test_readers_never_see_a_half_written_version(
    cluster_client: redis.Redis, cluster_keys: Keys, cluster_settings: Settings
) -> None:
    first = publish(cluster_client, make_bundle(12000, 20, seed=1)[0], keys=cluster_keys).version
    seen: Counter[tuple[int, str]] = Counter()
    with running_api(cluster_settings) as http:
        writer = threading.Thread(
            target=publish, args=(cluster_client, make_bundle(12000, 20, seed=2)[0]), kwargs={"keys": cluster_keys}
        )
        writer.start()
        while writer.is_alive() or not seen:
            for member in ("m0000", "m0777", "m1499"):
                resp = http.get(f"/v1/members/{member}/offers", params={"limit": 3})
                seen[(resp.status_code, resp.json().get("version", ""))] += 1
        writer.join()
        after = http.get("/v1/members/m1499/offers").json()["version"]
    second = served_version(cluster_client, cluster_keys)
    assert second is not None and second != first and after == second
    assert set(seen) <= {(200, first), (200, second)}, seen
    assert seen[(200, first)] >= 3  # the old version was read while the new one was being written


def test_catalogue_changes_are_one_transaction_in_the_catalogue_slot(
    cluster_endpoint: RedisEndpoint, cluster_client: redis.Redis, cluster_keys: Keys
) -> None:
    assert apply_changes(cluster_client, cluster_keys, {"o001": None}) == 1

    async def takedown() -> int:
        client = await cluster_endpoint.aconnect()  # a transaction first, on a fresh client
        try:
            return await aapply_changes(client, cluster_keys, {"o002": None})
        finally:
            await client.aclose()

    assert asyncio.run(takedown()) == 2
    assert set(cluster_client.hkeys(cluster_keys.catalogue_overlay)) == {b"o001", b"o002"}


def test_a_takedown_as_the_first_request_works_on_a_cluster(
    cluster_client: redis.Redis, cluster_keys: Keys, cluster_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(cluster_client, make_bundle(20, 10)[0], keys=cluster_keys)
    with live_api(cluster_settings, monkeypatch) as http:
        resp = http.delete("/v1/offers/o001", headers=auth("catalogue-key"))
        assert resp.status_code == 200, resp.text
        offers = http.get("/v1/members/m0004/offers", params={"limit": 20}, headers=auth("reader-key")).json()
        assert "o001" not in {o["offer_id"] for o in offers["offers"]}
