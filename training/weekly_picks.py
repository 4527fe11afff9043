"""``offers weekly-picks``: every email-consented member's picks for a week into one file, with the
same decision (``recsys.picks``) the API's paged endpoint uses, spread over processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TypeAlias, cast

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from tqdm import tqdm

from recsys.cache import LIVE_BASE_FIELD, MEMBER_INDEX_CHUNK, Keys
from recsys.catalogue import Catalogue, catalogue_from_hash
from recsys.contacts import ContactPolicy
from recsys.decision import RankingPolicy
from recsys.errors import DataError, NotPublishedError
from recsys.events import redemption_counts
from recsys.picks import page_rows, week_start
from recsys.store import RedisEndpoint

FORMATS = (".csv", ".jsonl", ".parquet")
COLUMNS = ["week", "member_id", "rank", "offer_id", "title", "score", "reasons"]  # of CSV and Parquet
PARQUET_SCHEMA = pa.schema(
    [
        ("week", pa.string()),
        ("member_id", pa.string()),
        ("rank", pa.int64()),
        ("offer_id", pa.string()),
        ("title", pa.string()),
        ("score", pa.float64()),
        ("reasons", pa.string()),
    ]
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def export_weekly_picks(
    client: redis.Redis,
    keys: Keys,
    week: str,
    out: Path,
    *,
    contact_policy: ContactPolicy,
    ranking_policy: RankingPolicy,
    show_progress: bool = True,
    endpoint: RedisEndpoint | None = None,
    workers: int = 1,
) -> tuple[str, int]:
    """Write the week's picks of the served version (one row per member and offer; members without
    picks get none) to ``out``; returns (version, members written). With ``workers`` > 1 and the
    ``endpoint`` to reach Redis from other processes, chunks of members are decided in that many
    processes (the decision is CPU-bound Python), and written in the member index's order."""
    if out.suffix.lower() not in FORMATS:
        raise DataError(f"{out}: the extension must be one of {', '.join(FORMATS)}")
    start = week_start(week)
    version_raw = client.get(keys.current)
    if version_raw is None:
        raise NotPublishedError("no version has been published yet; run `offers publish`")
    version = _text(version_raw)
    meta = {_text(k): _text(v) for k, v in client.hgetall(keys.version_meta(version)).items()}
    fields = cast(dict[bytes, bytes], client.hgetall(keys.version_offers(version)))
    overlay = cast(dict[bytes, bytes], client.hgetall(keys.catalogue_overlay))
    catalogue = catalogue_from_hash(fields, overlay)
    base_raw = fields.get(LIVE_BASE_FIELD.encode())
    base = {str(o): int(n) for o, n in orjson.loads(base_raw).items()} if base_raw else {}
    counted = redemption_counts(cast(dict[bytes, bytes], client.hgetall(keys.offer_redemptions)))
    live = {o: n - base.get(o, 0) for o, n in counted.items() if n > base.get(o, 0)}
    job = _Job(keys, version, start, week, live, contact_policy, ranking_policy, out.suffix.lower())
    members = 0
    chunks = range(int(meta.get("member_chunks", "0")))
    with contextlib.ExitStack() as stack:
        picks = stack.enter_context(_PicksFile(out))
        bar = stack.enter_context(
            tqdm(total=int(meta.get("members", "0")), unit="member", desc=f"picks {week}", disable=not show_progress)
        )
        if workers > 1 and endpoint is not None and len(chunks) > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(
                    min(workers, len(chunks)),
                    initializer=_start_worker,
                    initargs=(endpoint.url, endpoint.cluster, fields, overlay, job),
                )
            )
            results: Iterator[tuple[Piece, int, int]] = pool.map(_worker_chunk, chunks)
        else:
            results = (_chunk_piece(client, catalogue, job, chunk) for chunk in chunks)
        for piece, written, listed in results:
            picks.add(piece)
            members += written
            bar.update(listed)
    return version, members


@dataclass(frozen=True)
class _Job:
    """What every chunk of one export shares (picklable, for the worker processes)."""

    keys: Keys
    version: str
    start: datetime
    week: str
    live: dict[str, int]
    contact_policy: ContactPolicy
    ranking_policy: RankingPolicy
    suffix: str  # of the output file: what each chunk is encoded as


Piece: TypeAlias = bytes | pa.Table  # one chunk's rows encoded for the file: CSV or JSON lines, or a Parquet row group


def _chunk_piece(client: redis.Redis, catalogue: Catalogue, job: _Job, chunk: int) -> tuple[Piece, int, int]:
    """One chunk of the member index, decided and encoded where it was decided (a worker process hands
    the parent bytes or an Arrow table, not a million dicts to unpickle): (piece, members with picks,
    members listed)."""
    keys, version = job.keys, job.version
    ids = _text(client.get(keys.member_index(version, chunk)) or b"").split("\n")
    ids = [m for m in ids if m][:MEMBER_INDEX_CHUNK]
    pipe = client.pipeline(transaction=False)
    for member_id in ids:
        pipe.get(keys.member(version, member_id))
        pipe.hgetall(keys.member_contacts(member_id))
    replies = pipe.execute()
    page = page_rows(
        ids,
        replies[0::2],
        replies[1::2],
        catalogue,
        job.live,
        week=job.start,
        contact_policy=job.contact_policy,
        ranking_policy=job.ranking_policy,
    )
    rows = [
        {"week": job.week, "member_id": row["member_id"], "rank": rank, **offer}
        for row in page
        for rank, offer in enumerate(cast(list[dict[str, Any]], row["offers"]), start=1)
    ]
    return _encoded(rows, job.suffix), len(page), len(ids)


def _encoded(rows: list[dict[str, Any]], suffix: str) -> Piece:
    if suffix == ".jsonl":
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if suffix == ".parquet":
        columns = {name: [row[name] for row in rows] for name in COLUMNS}
        columns["reasons"] = ["|".join(reasons) for reasons in columns["reasons"]]
        return pa.table(columns, schema=PARQUET_SCHEMA)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["reasons"] = frame["reasons"].map(lambda r: "|".join(r) if isinstance(r, list) else "")
    return cast(str, frame.to_csv(index=False, header=False)).encode()


_worker: dict[str, Any] = {}  # one worker process's client, catalogue and job


def _start_worker(url: str, cluster: bool, fields: dict[bytes, bytes], overlay: dict[bytes, bytes], job: _Job) -> None:
    """A worker decodes the parent's copy of the catalogue, so every chunk is judged against the same one."""
    _worker.update(client=RedisEndpoint(url, cluster).client(), catalogue=catalogue_from_hash(fields, overlay), job=job)


def _worker_chunk(chunk: int) -> tuple[Piece, int, int]:
    return _chunk_piece(_worker["client"], _worker["catalogue"], _worker["job"], chunk)


class _PicksFile:
    """The output, written chunk by chunk (memory holds one chunk's rows, not a million members') to a
    hidden file beside ``out`` that replaces ``out`` once every chunk is in."""

    def __init__(self, out: Path) -> None:
        self.out, self.suffix = out, out.suffix.lower()
        self.part = out.with_name(f".{out.name}.part")
        self._binary: IO[bytes] | None = None
        self._parquet: pq.ParquetWriter | None = None

    def __enter__(self) -> _PicksFile:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.suffix == ".parquet":
            self._parquet = pq.ParquetWriter(self.part, PARQUET_SCHEMA)
        else:
            self._binary = self.part.open("wb")
            if self.suffix == ".csv":
                self._binary.write((",".join(COLUMNS) + "\n").encode())
        return self

    def add(self, piece: Piece) -> None:
        if isinstance(piece, pa.Table):
            if self._parquet is not None and piece.num_rows:
                self._parquet.write_table(piece)
        elif self._binary is not None:
            self._binary.write(piece)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        for closing in (self._binary, self._parquet):
            if closing is not None:
                closing.close()
        if kind is None:
            self.part.replace(self.out)
        else:
            self.part.unlink(missing_ok=True)
