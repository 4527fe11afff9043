"""Synthetic sample data: a hotel group's loyalty programme whose history is drawn from hidden
member tastes, so models can be trained, compared and checked against the truth.

``generate`` writes every file of the data contract (``recsys.schema``) plus ``ground_truth/``
(hidden tastes, properties, restaurants, the legacy planner's push per offer), in chunks of
members so a million members fit in bounded memory. The same seed and ``as_of`` give the same
bytes. ``load_tastes`` and ``true_affinity`` give an evaluation the oracle ranking.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from recsys.errors import ConfigurationError
from recsys.schema import FILES, FILES_BY_NAME, FileSpec, Kind
from training.synthetic_history import Catalogue, prepare, simulate
from training.synthetic_tastes import TASTES_FILE, draw_tastes, load_tastes, true_affinity
from training.synthetic_world import build_world

__all__ = ["CHUNK_MEMBERS", "FORMATS", "generate", "load_tastes", "true_affinity"]

CHUNK_MEMBERS = 20_000  # members simulated and written at a time; part of what a seed means
FORMATS = ("csv", "parquet")
GROUND_TRUTH = "ground_truth"


def generate(
    out: Path,
    *,
    members: int = 5000,
    seed: int = 7,
    as_of: date | None = None,
    fmt: str = "csv",
    show_progress: bool = True,
    offers: int | None = None,
) -> dict[str, int]:
    """Write ``members`` members' history up to ``as_of`` (default today, UTC) into ``out``; return
    rows written per contract file. ``offers`` sets the catalogue size (default: the usual 320)."""
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if members < 1:
        raise ConfigurationError("members must be at least 1")
    as_of = as_of or datetime.now(UTC).date()
    out = Path(out)
    truth = out / GROUND_TRUTH
    truth.mkdir(parents=True, exist_ok=True)
    for other in FORMATS:
        if other != fmt:  # a stale file of the other format would make the folder ambiguous
            for name in [*FILES_BY_NAME, f"{GROUND_TRUTH}/{TASTES_FILE}"]:
                (out / f"{name}.{other}").unlink(missing_ok=True)

    world = build_world(np.random.default_rng([seed, 0]), as_of, members, offers)
    catalogue: Catalogue = prepare(world, as_of)
    world.properties.drop(columns=["city_idx"]).to_csv(truth / "properties.csv", index=False, lineterminator="\n")
    world.outlets.drop(columns=["prop_idx"]).to_csv(truth / "outlets.csv", index=False, lineterminator="\n")
    exposure = pd.DataFrame({"offer_id": world.offers["offer_id"], "push": world.push})
    exposure.to_csv(truth / "offer_push.csv", index=False, lineterminator="\n")

    counts = {spec.name: 0 for spec in FILES}
    writers = {spec.name: _Writer(out / f"{spec.name}.{fmt}", spec) for spec in FILES}
    tastes_writer = _Writer(truth / f"{TASTES_FILE}.{fmt}", None)
    with tqdm(total=members, unit=" members", desc="generate", disable=not show_progress) as progress:
        try:
            counts["partners"] = writers["partners"].write(world.partners)
            counts["offers"] = writers["offers"].write(world.offers)
            for chunk, first in enumerate(range(0, members, CHUNK_MEMBERS)):
                size = min(CHUNK_MEMBERS, members - first)
                rng = np.random.default_rng([seed, 1, chunk])
                member_ids = np.char.add("M", np.char.zfill(np.arange(first + 1, first + size + 1).astype(str), 7))
                tastes = draw_tastes(rng, member_ids)
                first_ids = {name: counts[name] + 1 for name in counts}
                batch = simulate(rng, tastes, world, catalogue, first_ids)
                for name in ("members", "stays", "dining", "partner_activity", "offer_events"):
                    counts[name] += writers[name].write(getattr(batch, name))
                tastes_writer.write(tastes)
                progress.update(size)
        finally:
            for writer in (*writers.values(), tastes_writer):
                writer.close()
    return counts


class _Writer:
    """Appends frames to one CSV or Parquet file, formatted as the data contract spells values."""

    def __init__(self, path: Path, spec: FileSpec | None) -> None:
        self.path, self.spec = path, spec
        self._csv: IO[str] | None = None
        self._parquet: pq.ParquetWriter | None = None
        self._started = False

    def write(self, frame: pd.DataFrame) -> int:
        if self.spec is not None:
            frame = frame[[c.name for c in self.spec.columns]]
        if self.path.suffix == ".csv":
            if self._csv is None:
                self._csv = self.path.open("w", encoding="utf-8", newline="")
            _as_csv_text(frame, self.spec).to_csv(self._csv, header=not self._started, index=False, lineterminator="\n")
        else:
            table = _as_arrow(frame, self.spec)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            self._parquet.write_table(table)
        self._started = True
        return len(frame)

    def close(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None


def _as_csv_text(frame: pd.DataFrame, spec: FileSpec | None) -> pd.DataFrame:
    """Dates as YYYY-MM-DD, timestamps as ISO 8601 UTC ('Z'), booleans as true/false."""
    kinds = {c.name: c.kind for c in spec.columns} if spec is not None else {}
    out = {}
    for name, column in frame.items():
        values = column.to_numpy()
        kind = kinds.get(str(name))
        if column.dtype == bool:
            out[name] = np.where(values, "true", "false")
        elif kind in (Kind.DATE, Kind.DATETIME):
            unit, form = ("D", "%Y-%m-%d") if kind == Kind.DATE else ("s", "%Y-%m-%dT%H:%M:%SZ")
            stamps = pa.array(values.astype(f"datetime64[{unit}]").astype("datetime64[s]"), from_pandas=True)
            out[name] = pd.Series(pc.strftime(stamps, format=form).fill_null(""), dtype=str)
        else:
            out[name] = column
    return pd.DataFrame(out)


def _as_arrow(frame: pd.DataFrame, spec: FileSpec | None) -> pa.Table:
    """Native Parquet types per column kind; empty optional text becomes null."""
    kinds = {c.name: c for c in spec.columns} if spec is not None else {}
    arrays, fields = [], []
    for name, column in frame.items():
        col = kinds.get(str(name))
        kind = col.kind if col is not None else None
        if kind == Kind.DATE:
            array = pa.array(column.to_numpy().astype("datetime64[D]"), type=pa.date32(), from_pandas=True)
        elif kind == Kind.DATETIME:
            array = pa.array(column.to_numpy().astype("datetime64[s]"), type=pa.timestamp("s")).cast(
                pa.timestamp("s", tz="UTC")
            )
        elif column.dtype == bool:
            array = pa.array(column.to_numpy(), type=pa.bool_())
        elif column.dtype.kind in "iu" or str(column.dtype) == "Int64":
            array = pa.array(column, type=pa.int64(), from_pandas=True)
        elif column.dtype.kind == "f":
            array = pa.array(column.to_numpy(), type=pa.float64())
        else:
            values = column.astype(str).to_numpy(dtype=object)
            if col is not None and col.nullable:
                values = np.where(values == "", None, values)
            array = pa.array(values, type=pa.string())
        arrays.append(array)
        fields.append(pa.field(str(name), array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
