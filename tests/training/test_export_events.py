"""Exporting the live event log as the data contract's offer_events file: every format, chunk
boundaries, erased members left out, and a round trip through the contract's own loader."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import redis

from recsys.cache import Keys
from recsys.errors import DataError
from recsys.events import OfferEvent, record_events
from recsys.validation import load_dataset
from training.export_events import COLUMNS, export_events
from training.generate import generate

NOW = datetime(2025, 3, 14, 12, tzinfo=UTC)


def recorded(client: redis.Redis, keys: Keys, n: int) -> list[OfferEvent]:
    events = [
        OfferEvent(
            event_id=f"e{i}",
            member_id=f"m{i % 4}",
            offer_id=f"o{i % 3}",
            kind=("impression", "click", "redeem", "dismiss")[i % 4],
            channel=("app", "email", "web", "sms")[i % 4],
            timestamp=datetime(2025, 3, 1, 8, 0, i, 250_000, tzinfo=UTC),
        )
        for i in range(n)
    ]
    record_events(client, keys, events, NOW)
    return events


def read(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        frame["timestamp"] = frame["timestamp"].map(lambda t: t.isoformat(timespec="milliseconds"))
        return frame
    if path.suffix == ".jsonl":
        return pd.DataFrame([json.loads(line) for line in path.read_text().splitlines()])
    return pd.read_csv(path, dtype=str)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
@pytest.mark.parametrize("chunk", [3, 10_000])
def test_every_event_in_order_without_erased_members(
    redis_client: redis.Redis, keys: Keys, tmp_path: Path, suffix: str, chunk: int
) -> None:
    events = recorded(redis_client, keys, 10)
    redis_client.sadd(keys.erased_members(), "m1")
    out = tmp_path / "sub" / f"offer_events{suffix}"
    written = export_events(redis_client, keys, out, show_progress=False, chunk=chunk)
    kept = [e for e in events if e.member_id != "m1"]
    assert written == len(kept) == 7
    frame = read(out)
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["event_id"]) == [e.event_id for e in kept]
    assert list(frame["event"]) == [e.kind for e in kept]
    assert list(frame["channel"]) == [e.channel for e in kept]
    assert frame["timestamp"].iloc[0] == "2025-03-01T08:00:00.250+00:00"
    assert not list(out.parent.glob("*.partial"))


def test_an_empty_log_gives_a_file_with_only_the_header(redis_client: redis.Redis, keys: Keys, tmp_path: Path) -> None:
    assert export_events(redis_client, keys, tmp_path / "e.csv", show_progress=False) == 0
    assert (tmp_path / "e.csv").read_text().strip() == ",".join(COLUMNS)


def test_an_unknown_format_is_refused(redis_client: redis.Redis, keys: Keys, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="export to one of"):
        export_events(redis_client, keys, tmp_path / "e.xlsx", show_progress=False)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_the_export_loads_as_the_contracts_offer_events(
    redis_client: redis.Redis, keys: Keys, tmp_path: Path, suffix: str
) -> None:
    data = tmp_path / "data"
    generate(data, members=60, seed=3, show_progress=False)
    history = pd.read_csv(data / "offer_events.csv", dtype=str)
    events = [
        OfferEvent(
            event_id=r.event_id,
            member_id=r.member_id,
            offer_id=r.offer_id,
            kind=r.event,
            channel=r.channel,
            timestamp=datetime.fromisoformat(r.timestamp),
        )
        for r in history.itertuples()
    ]
    record_events(redis_client, keys, events, datetime.now(UTC))
    (data / "offer_events.csv").unlink()
    shutil.rmtree(data / "rejects", ignore_errors=True)
    export_events(redis_client, keys, data / f"offer_events{suffix}", show_progress=False)
    loaded = load_dataset(data).data.offer_events
    assert len(loaded) == len(history)
    assert sorted(loaded["event_id"]) == sorted(history["event_id"])
    assert set(loaded["event"]) <= {"impression", "click", "redeem", "dismiss"}
