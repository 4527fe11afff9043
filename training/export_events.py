"""Export the live event log (``Keys.events_stream``) as an ``offer_events`` file of the data contract,
so retraining learns from the feedback recorded since the last export. Erased members are left out.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import redis
from tqdm import tqdm

from recsys.cache import Keys
from recsys.erasure import erased_ids
from recsys.errors import DataError, StoreError
from recsys.events import StreamFields
from recsys.schema import OFFER_EVENTS

COLUMNS = tuple(c.name for c in OFFER_EVENTS.columns)  # event_id, member_id, offer_id, event, channel, timestamp
CHUNK = 10_000
FORMATS = (".csv", ".parquet", ".jsonl")
_ID, _MEMBER, _OFFER, _KIND, _CHANNEL, _TS = (
    name.encode()
    for name in (
        StreamFields.EVENT_ID,
        StreamFields.MEMBER,
        StreamFields.OFFER,
        StreamFields.KIND,
        StreamFields.CHANNEL,
        StreamFields.TIMESTAMP,
    )
)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _rows(
    client: redis.Redis, keys: Keys, erased: set[str], progress: tqdm[Any], chunk: int
) -> Iterator[list[dict[str, Any]]]:
    """Chunks of rows, oldest first; ``timestamp`` as an aware UTC datetime."""
    start = "-"
    while True:
        try:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.events_stream, start, "+", count=chunk)
            )
        except redis.RedisError as exc:
            raise StoreError(f"could not read the event log: {exc}") from exc
        if not entries:
            return
        rows = []
        for entry_id, fields in entries:
            member = _text(fields[_MEMBER])
            if member in erased:
                continue
            ms = int(fields[_TS])
            rows.append(
                {
                    "event_id": _text(fields.get(_ID) or entry_id),
                    "member_id": member,
                    "offer_id": _text(fields[_OFFER]),
                    "event": _text(fields[_KIND]),
                    "channel": _text(fields[_CHANNEL]),
                    "timestamp": datetime.fromtimestamp(ms / 1000, UTC),
                }
            )
        progress.update(len(entries))
        yield rows
        start = "(" + _text(entries[-1][0])


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


_SCHEMA = pa.schema([(name, pa.string()) for name in COLUMNS[:-1]] + [("timestamp", pa.timestamp("ms", tz="UTC"))])


def export_events(client: redis.Redis, keys: Keys, out: Path, *, show_progress: bool = True, chunk: int = CHUNK) -> int:
    """Write every stored event to ``out`` (.csv, .parquet or .jsonl by extension); returns the rows written."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"{out}: export to one of {', '.join(FORMATS)}")
    try:
        total = int(client.xlen(keys.events_stream))
    except redis.RedisError as exc:
        raise StoreError(f"could not read the event log: {exc}") from exc
    erased = erased_ids(client, keys)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        with tqdm(total=total, unit="event", desc="export", disable=not show_progress) as progress:
            written = _write(_rows(client, keys, erased, progress, chunk), partial, suffix)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return written


def _write(chunks: Iterator[list[dict[str, Any]]], path: Path, suffix: str) -> int:
    written = 0
    if suffix == ".parquet":
        with pq.ParquetWriter(path, _SCHEMA) as writer:
            for rows in chunks:
                writer.write_table(pa.Table.from_pylist(rows, schema=_SCHEMA))
                written += len(rows)
        return written
    with path.open("w", newline="", encoding="utf-8") as handle:
        table = csv.DictWriter(handle, fieldnames=COLUMNS) if suffix == ".csv" else None
        if table is not None:
            table.writeheader()
        for rows in chunks:
            for row in rows:
                row["timestamp"] = _iso(row["timestamp"])
                if table is not None:
                    table.writerow(row)
                else:
                    handle.write(orjson.dumps(row).decode() + "\n")
            written += len(rows)
    return written
