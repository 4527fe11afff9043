"""Scoring members and writing their records to Redis, one batch of members at a time.

A publish prepares every member's record (profile fields, trailer) once, as a ``MemberBatch``; this
module fills in the embedding and the top candidates (batched matrix products, then a partial sort) and
writes the records, ``MEMBERS_PER_PIPELINE`` members per round trip. The same ``write_members`` runs in
the publishing process (``training.publish``) and in each Ray task of a distributed publish
(``training.publish_ray``), on a slice of the batch; slices start on chunk boundaries, so both write
exactly the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import redis
from redis.cluster import RedisCluster

from models.base import top_k

MEMBERS_PER_PIPELINE = 2_000
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class OfferScoring:
    """What scoring any member needs: offer factors (transposed), offer bias, popular offers per tier."""

    factors_t: npt.NDArray[np.float32]  # (n_factors, n_offers)
    bias: npt.NDArray[np.float32]  # (n_offers,)
    popular_ids: npt.NDArray[np.int64]  # (5, k) top offers of each tier, for members scored by popularity
    k: int

    @classmethod
    def of(
        cls, offer_factors: npt.NDArray[np.floating], offer_bias: npt.NDArray[np.floating], popular: npt.NDArray, k: int
    ) -> OfferScoring:
        popular_ids, _ = top_k(np.asarray(popular, dtype=np.float32), k)
        return cls(
            factors_t=np.ascontiguousarray(offer_factors.T, dtype=np.float32),
            bias=np.asarray(offer_bias, dtype=np.float32),
            popular_ids=np.asarray(popular_ids, dtype=np.int64),
            k=k,
        )


@dataclass(frozen=True)
class MemberBatch:
    """Members to write: their Redis keys, records with the profile fields filled, which of them get
    personal candidates, and their embeddings (rows follow ``keys``)."""

    keys: list[bytes]
    records: npt.NDArray[np.void]
    personal: npt.NDArray[np.bool_]
    factors: npt.NDArray[np.floating]
    bias: npt.NDArray[np.floating]

    def __len__(self) -> int:
        return len(self.keys)

    def slice(self, start: int, stop: int) -> MemberBatch:
        return MemberBatch(
            keys=self.keys[start:stop],
            records=self.records[start:stop],
            personal=self.personal[start:stop],
            factors=self.factors[start:stop],
            bias=self.bias[start:stop],
        )


def shard_bounds(n_members: int, shards: int) -> list[tuple[int, int]]:
    """(start, stop) of at most ``shards`` slices of about equal size, each starting on a chunk boundary."""
    chunks = -(-n_members // MEMBERS_PER_PIPELINE)
    per = max(-(-chunks // max(shards, 1)), 1) * MEMBERS_PER_PIPELINE
    return [(start, min(start + per, n_members)) for start in range(0, n_members, per)]


class MemberWriter(Protocol):
    """Scores and writes a batch; calls ``keep_alive`` now and then (the publish lock) and ``progress``
    with the number of members written since its last call; returns the bytes written."""

    def __call__(
        self,
        client: redis.Redis,
        batch: MemberBatch,
        scoring: OfferScoring,
        keep_alive: Callable[[], None],
        progress: Callable[[int], object],
    ) -> int: ...


def write_members(
    client: redis.Redis,
    batch: MemberBatch,
    scoring: OfferScoring,
    keep_alive: Callable[[], None],
    progress: Callable[[int], object],
) -> int:
    """Score and write ``batch`` from this process, chunk by chunk."""
    records, personal = batch.records, batch.personal
    cluster = isinstance(client, RedisCluster)
    size = records.dtype.itemsize
    written = 0
    # the next chunk is scored while the previous one travels to Redis (numpy and sockets release the GIL)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-writer") as writer:
        sending: Future[None] | None = None
        sent = 0
        for start in range(0, len(batch), MEMBERS_PER_PIPELINE):
            stop = min(start + MEMBERS_PER_PIPELINE, len(batch))
            chunk = records[start:stop]
            mine = personal[start:stop]
            rows = np.flatnonzero(mine) + start
            if len(rows):
                factors = batch.factors[rows]
                scores = factors @ scoring.factors_t
                scores += scoring.bias[None, :]
                scores += batch.bias[rows, None]
                chunk["candidates"][mine] = top_k(scores.astype(np.float32, copy=False), scoring.k)[0]
                chunk["factors"][mine] = np.clip(factors, -FLOAT16_MAX, FLOAT16_MAX)
                chunk["bias"][mine] = batch.bias[rows]
            tiers = chunk["tier"][~mine].astype(np.intp)
            chunk["candidates"][~mine] = scoring.popular_ids[tiers]
            raw = chunk.tobytes()
            values = [raw[i : i + size] for i in range(0, len(raw), size)]
            if sending is not None:
                sending.result()
                progress(sent)
            sending = writer.submit(_write_chunk, client, batch.keys[start:stop], values, cluster)
            sent = stop - start
            written += len(raw)
            keep_alive()
        if sending is not None:
            sending.result()
            progress(sent)
    return written


def _write_chunk(client: redis.Redis, names: list[bytes], values: list[bytes], cluster: bool) -> None:
    """One round trip per chunk: MSET on a single server; SETs grouped by node in a cluster."""
    pipe = client.pipeline(transaction=False)
    if cluster:
        for name, value in zip(names, values, strict=True):
            pipe.set(name, value)
    else:
        flat: list[bytes] = [b""] * (2 * len(names))
        flat[0::2] = names
        flat[1::2] = values
        pipe.execute_command("MSET", *flat)
    pipe.execute()
