"""A publish spread over two local Ray workers serves exactly what a single-process publish serves:
the same member records in Redis and the same answers from the real API."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from recsys.cache import Keys
from recsys.errors import PublishError
from recsys.settings import Settings
from recsys.store import RedisEndpoint
from tests.conftest import running_api
from tests.support.serving_bundle import make_bundle
from training.bundle import ServingBundle
from training.publish import publish, served_version
from training.publish_ray import RayMemberWriter, publish_distributed, start_ray
from training.shards import MEMBERS_PER_PIPELINE, shard_bounds

ray = pytest.importorskip("ray")

N_MEMBERS = 2 * MEMBERS_PER_PIPELINE + 700  # three chunks: shards end mid-way through the members
SAMPLE = 40  # members asked through the API


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """One local Ray with two workers for the module (publish_distributed uses it, starts none)."""
    start_ray(2)
    yield
    ray.shutdown()


def records(client: redis.Redis, keys: Keys, version: str, bundle: ServingBundle) -> list[bytes | None]:
    names = [keys.member(version, str(m)) for m in bundle.member_ids]
    return [value for start in range(0, len(names), 1000) for value in client.mget(names[start : start + 1000])]


def answers(http: httpx.Client, bundle: ServingBundle) -> dict[str, Any]:
    step = len(bundle.member_ids) // SAMPLE
    out = {}
    for member in bundle.member_ids[::step][:SAMPLE]:
        for channel in ("app", "email"):
            resp = http.get(f"/v1/members/{member}/offers", params={"limit": 10, "channel": channel})
            assert resp.status_code == 200, resp.text
            body = resp.json()
            body.pop("version")
            out[f"{member}/{channel}"] = body
    return out


def test_shards_start_on_chunk_boundaries_and_cover_every_member() -> None:
    bounds = shard_bounds(N_MEMBERS, 8)
    assert bounds[0][0] == 0 and bounds[-1][1] == N_MEMBERS
    assert all(stop == start for (_, stop), (start, _) in itertools.pairwise(bounds))
    assert all(start % MEMBERS_PER_PIPELINE == 0 for start, _ in bounds)
    assert len(shard_bounds(N_MEMBERS, 2)) == 2


def test_two_ray_workers_serve_what_one_process_serves(
    redis_endpoint: RedisEndpoint, redis_client: redis.Redis, keys: Keys, app_settings: Settings
) -> None:
    bundle, _ = make_bundle(n_members=N_MEMBERS, seed=5)
    single = publish(redis_client, bundle, keys=keys, candidates=20)
    with running_api(app_settings) as http:
        served_single = answers(http, bundle)
        spread = publish_distributed(redis_endpoint, bundle, keys=keys, workers=2, candidates=20)
        assert served_version(redis_client, keys) == spread.version != single.version
        served_spread = answers(http, bundle)

    assert (spread.members, spread.offers, spread.bytes) == (single.members, single.offers, single.bytes)
    theirs = records(redis_client, keys, single.version, bundle)
    mine = records(redis_client, keys, spread.version, bundle)
    assert all(value is not None for value in mine) and len(mine) == N_MEMBERS
    assert mine == theirs  # byte for byte, every member
    assert len({v for v in mine if v is not None}) > N_MEMBERS // 2  # records differ: the check can fail
    assert served_spread == served_single
    personal = [body for body in served_spread.values() if body["offers"]]
    assert len(personal) > SAMPLE  # most sampled members got offers on some channel
    meta_single = redis_client.hgetall(keys.version_meta(single.version))
    meta_spread = redis_client.hgetall(keys.version_meta(spread.version))
    differ = {k for k in meta_single.keys() | meta_spread.keys() if meta_single.get(k) != meta_spread.get(k)}
    assert differ <= {b"version", b"published_at"}


def test_a_failing_worker_switches_nothing(redis_client: redis.Redis, keys: Keys) -> None:
    bundle, _ = make_bundle(n_members=N_MEMBERS, seed=6)
    first = publish(redis_client, bundle, keys=keys, candidates=20).version
    nowhere = RedisEndpoint("redis://127.0.0.1:1/0")  # the driver's Redis works, the workers' does not
    with pytest.raises(PublishError, match="worker failed"):
        publish(
            redis_client,
            bundle,
            keys=keys,
            candidates=20,
            writer=RayMemberWriter(nowhere.url, cluster=False, shards=2),
        )
    assert served_version(redis_client, keys) == first
