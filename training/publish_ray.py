"""Publishing spread over Ray workers: each task scores one shard of members and writes it to Redis.

The publishing process keeps everything that must happen once: the lock, the new version number, the
offers and meta, the member index and the one atomic switch at the end (``training.publish``). Only the
members' records, the bulk of the work for tens of millions of members, go to Ray tasks, each writing
its shard under the new version with ``training.shards.write_members`` (the code a single-process
publish runs). While tasks run, the driver keeps the publish lock alive; if a task fails the version is
never switched to, and the next publish removes what it left.

Ray starts only here, only when asked for (``offers publish --workers N`` with N > 1): a local Ray with
N worker processes, or the cluster named by ``RAY_ADDRESS`` (whose workers must reach ``REDIS_URL``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import redis

from recsys.cache import Keys
from recsys.errors import PublishError
from recsys.store import RedisEndpoint
from training.bundle import ServingBundle
from training.publish import LOCK_REFRESH_S, PublishResult, publish
from training.shards import MemberBatch, OfferScoring, shard_bounds, write_members

OBJECT_STORE_BYTES = 512 * 1024 * 1024  # of a local Ray: shards in flight, not the whole publish
SHARDS_PER_WORKER = 4  # more shards than workers, so a slow one does not hold the others up


def publish_distributed(
    endpoint: RedisEndpoint,
    bundle: ServingBundle,
    *,
    keys: Keys,
    workers: int,
    candidates: int = 100,
    versions_kept: int = 2,
    show_progress: bool = False,
    now: datetime | None = None,
) -> PublishResult:
    """``training.publish.publish`` with the member records written by ``workers`` Ray workers."""
    if workers < 1:
        raise PublishError("workers must be at least 1")
    import ray  # the optional extra "scale"; imported only for a distributed publish

    started_here = not ray.is_initialized()
    if started_here:
        start_ray(workers)
    client = endpoint.client()
    try:
        return publish(
            client,
            bundle,
            keys=keys,
            candidates=candidates,
            versions_kept=versions_kept,
            show_progress=show_progress,
            now=now,
            writer=RayMemberWriter(endpoint.url, endpoint.cluster, shards=workers * SHARDS_PER_WORKER),
        )
    finally:
        client.close()
        if started_here:
            ray.shutdown()


def start_ray(workers: int) -> None:
    """A local Ray with ``workers`` worker slots, or the cluster at ``RAY_ADDRESS``."""
    import ray

    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)  # an existing cluster: its own workers and resources
    else:
        ray.init(
            num_cpus=workers,
            include_dashboard=False,
            log_to_driver=False,
            object_store_memory=OBJECT_STORE_BYTES,
        )


@dataclass(frozen=True)
class RayMemberWriter:
    """A ``training.shards.MemberWriter`` that hands shards of the batch to Ray tasks (at most two per
    worker slot in flight, so the driver never holds every shard's copy at once)."""

    redis_url: str
    cluster: bool
    shards: int

    def __call__(
        self,
        client: redis.Redis,
        batch: MemberBatch,
        scoring: OfferScoring,
        keep_alive: Callable[[], None],
        progress: Callable[[int], object],
    ) -> int:
        import ray
        from ray.exceptions import RayError

        task = ray.remote(num_cpus=1, max_retries=0)(_write_shard)
        scoring_ref = ray.put(scoring)
        in_flight_max = max(2 * int(ray.cluster_resources().get("CPU", 1)), 2)
        pending: dict[Any, int] = {}
        written = 0

        def collect(block_until: int) -> None:
            nonlocal written
            while len(pending) > block_until:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=LOCK_REFRESH_S)
                keep_alive()
                for ref in done:
                    written += int(ray.get(ref))
                    progress(pending.pop(ref))

        try:
            for start, stop in shard_bounds(len(batch), self.shards):
                collect(in_flight_max - 1)
                ref = task.remote(self.redis_url, self.cluster, batch.slice(start, stop), scoring_ref)
                pending[ref] = stop - start
            collect(0)
        except RayError as exc:
            _settle(list(pending), keep_alive)
            raise PublishError(f"a publish worker failed; nothing was switched: {exc}") from exc
        return written


def _settle(refs: list[Any], keep_alive: Callable[[], None]) -> None:
    """Wait until the shards still in flight have ended, however they end, so none writes after the
    failure is reported. They are not cancelled: in Ray 2.60 a cancellation that meets the task's own
    reply kills the driver ("Check failed: it != submissible_tasks_.end()"; the race is described in
    ray-project/ray#54798), which once ended a test run here. At most two per worker slot are in flight."""
    import ray

    while refs:
        _, refs = ray.wait(refs, num_returns=len(refs), timeout=LOCK_REFRESH_S)
        keep_alive()


def _write_shard(redis_url: str, cluster: bool, shard: MemberBatch, scoring: OfferScoring) -> int:
    """One Ray task: score and write one shard with its own Redis connection."""
    writable = replace(shard, records=shard.records.copy())  # Ray hands arrays over read-only
    client = RedisEndpoint(redis_url, cluster=cluster).client()
    try:
        return write_members(client, writable, scoring, lambda: None, lambda n: None)
    finally:
        client.close()
