"""Load the history in chunks, so a file of a hundred million offer responses never sits in memory as text.

``load_dataset_chunked`` reads the small files of the data contract whole (``recsys.validation``) and
streams the history files (stays, dining, partner activity, offer responses): Parquet row groups or CSV
blocks of about
``chunk_rows`` rows are typed and validated one at a time by the same checks, rejects are appended to
the same ``<file>.rejects.csv`` (row by row, with the reason), counts and the reject threshold stay per
file, and duplicate keys are found across chunks. Each accepted chunk is kept compact: ids that refer to
another file and choice columns become ``pandas.Categorical`` with sorted categories (a few bytes a row
instead of a Python string; sorted, so grouping by them orders groups as grouping strings does), and the
file's own row key (``event_id``, ``stay_id``, ...), which no job reads after validation, is dropped.
Matrices, features and profiles built from these frames are the same as from ``load_dataset``'s
(``tests/recsys/test_streaming.py``).

Duplicate keys across chunks are found by 64-bit hashes of the accepted keys (8 bytes a row), kept in
sorted runs; two different keys with the same hash (odds about 1 in 3,000 at 100 million rows) would
reject the later row as a duplicate.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from recsys.dataset import LoyaltyData
from recsys.errors import DataError
from recsys.schema import FILES, FileSpec, Kind
from recsys.validation import (
    REASON,
    FileReport,
    LoadResult,
    check_header,
    csv_header,
    csv_options,
    file_report,
    input_folders,
    is_strictly_increasing,
    load_file,
    merge_reasons,
    parquet_cells,
    problem_rows,
    rejected_rows,
    rejects_path,
    replacement_reasons,
    validate_cells,
)

STREAMED = ("stays", "dining", "partner_activity", "offer_events")  # the files that grow with history
DEFAULT_CHUNK_ROWS = 1_000_000


def load_dataset_chunked(
    data_dir: Path,
    *,
    max_reject_share: float = 0.01,
    rejects_dir: Path | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    streamed: tuple[str, ...] = STREAMED,
) -> LoadResult:
    """``load_dataset`` with the files named in ``streamed`` read ``chunk_rows`` rows at a time and kept
    compact (see the module docstring); same rejects, reports and errors."""
    if chunk_rows < 1:
        raise DataError("chunk_rows must be at least 1")
    data_dir, out_dir = input_folders(data_dir, rejects_dir)
    accepted_keys: dict[str, pd.Series] = {}
    frames: dict[str, pd.DataFrame] = {}
    report: dict[str, FileReport] = {}
    for spec in FILES:
        if spec.name in streamed:
            frames[spec.name], report[spec.name] = _stream_file(
                spec, data_dir, out_dir, accepted_keys, max_reject_share, chunk_rows
            )
        else:
            frames[spec.name], report[spec.name] = load_file(spec, data_dir, out_dir, accepted_keys, max_reject_share)
    return LoadResult(data=LoyaltyData(**frames), report=report)


@dataclass
class _Chunk:
    cells: pd.DataFrame  # every cell as a string, "" where missing
    unreadable: pd.Series  # reason per row of ``cells`` that could not be decoded


def _stream_file(
    spec: FileSpec,
    data_dir: Path,
    out_dir: Path,
    accepted_keys: dict[str, pd.Series],
    max_reject_share: float,
    chunk_rows: int,
) -> tuple[pd.DataFrame, FileReport]:
    path = rejects_path(spec, out_dir)
    path.unlink(missing_ok=True)
    malformed: list[str] = []
    seen = SeenKeys()
    compact = _Compactor(spec, accepted_keys)
    parts: list[pd.DataFrame] = []
    total = n_rejected = 0
    columns: list[str] = []
    for chunk in _chunks(spec, data_dir, chunk_rows, malformed):
        columns = list(chunk.cells.columns)
        typed, reasons = validate_cells(spec, chunk.cells, accepted_keys, chunk.unreadable)
        keep = np.ones(len(typed), dtype=bool)
        keep[reasons.index.to_numpy(dtype=np.int64)] = False
        if spec.key:
            key = typed.loc[:, list(spec.key)]
            again = seen.accept(key, keep)
            if again.any():
                found = problem_rows(again, f"{'+'.join(spec.key)}: duplicate of an earlier row, ", typed[spec.key[0]])
                reasons = merge_reasons([reasons, *found])
                keep &= ~again
        if len(reasons):
            _append_rejects(path, rejected_rows(chunk.cells, reasons))
        total += len(typed)
        n_rejected += len(reasons)
        parts.append(compact(typed.loc[keep]))
        del chunk, typed
    if malformed:
        _append_rejects(
            path, pd.DataFrame({**dict.fromkeys(columns, ""), REASON: malformed}, index=range(len(malformed)))
        )
    total += len(malformed)
    n_rejected += len(malformed)
    if not parts:  # no rows at all: the typed columns of an empty file
        empty = pd.DataFrame({c.name: pd.Series(dtype=str) for c in spec.columns})
        parts.append(compact(validate_cells(spec, empty, accepted_keys, pd.Series(dtype=object))[0]))
    frame = pd.concat(parts, ignore_index=True)
    del parts
    pa.default_memory_pool().release_unused()
    return frame, file_report(spec, total, n_rejected, path, max_reject_share)


def _append_rejects(path: Path, rejects: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = not path.exists()
    rejects.to_csv(path, index=False, mode="w" if header else "a", header=header)


# -- reading in chunks --------------------------------------------------------------------------


def _chunks(spec: FileSpec, data_dir: Path, chunk_rows: int, malformed: list[str]) -> Iterator[_Chunk]:
    csv_path, parquet_path = data_dir / f"{spec.name}.csv", data_dir / f"{spec.name}.parquet"
    if csv_path.exists() and parquet_path.exists():
        raise DataError(f"{spec.name}: both {csv_path.name} and {parquet_path.name} exist; keep one")
    if csv_path.exists():
        return _csv_chunks(spec, csv_path, chunk_rows, malformed)
    if parquet_path.exists():
        return _parquet_chunks(spec, parquet_path, chunk_rows)
    raise DataError(f"{spec.name}: missing input file; expected {csv_path} or {parquet_path}")


def _parquet_chunks(spec: FileSpec, path: Path, chunk_rows: int) -> Iterator[_Chunk]:
    try:
        source = pq.ParquetFile(path)
        check_header(spec, source.schema_arrow.names)
        for batch in source.iter_batches(batch_size=chunk_rows):
            yield _Chunk(parquet_cells(spec, pa.Table.from_batches([batch])), pd.Series(dtype=object))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{spec.name}: {path.name} cannot be read as Parquet: {exc}") from exc


def _csv_chunks(spec: FileSpec, path: Path, chunk_rows: int, malformed: list[str]) -> Iterator[_Chunk]:
    """Blocks of the CSV (about ``chunk_rows`` rows each), cells read as bytes so a block that is not
    UTF-8 is decoded with replacement characters and its bad rows rejected, as ``load_dataset`` does."""
    header = csv_header(spec, path)
    read_options, parse_options, convert_options = csv_options(header, malformed, pa.large_binary())
    read_options.block_size = _block_size(path, chunk_rows)
    try:
        reader = pa_csv.open_csv(
            path, read_options=read_options, parse_options=parse_options, convert_options=convert_options
        )
        for batch in reader:
            yield _decoded(pa.Table.from_batches([batch]))
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{spec.name}: {path.name} cannot be read as CSV: {exc}") from exc


def _block_size(path: Path, chunk_rows: int) -> int:
    """Bytes per CSV block for about ``chunk_rows`` rows, from the length of the first lines."""
    with path.open("rb") as fh:
        sample = fh.read(1 << 16)
    lines = max(sample.count(b"\n"), 1)
    return int(min(max(len(sample) / lines * chunk_rows, 1 << 12), 1 << 30))


def _decoded(table: pa.Table) -> _Chunk:
    try:
        text = pa.table({name: table.column(name).cast(pa.large_string()) for name in table.column_names})
        return _Chunk(text.to_pandas(), pd.Series(dtype=object))
    except pa.ArrowInvalid:  # not UTF-8 somewhere in this block: the slow, forgiving way
        cells = pd.DataFrame(
            {
                name: [value.decode("utf-8", errors="replace") for value in table.column(name).to_pylist()]
                for name in table.column_names
            },
            dtype=object,
        )
        return _Chunk(cells, replacement_reasons(pa.Table.from_pandas(cells, preserve_index=False)))


# -- what is kept of each chunk -----------------------------------------------------------------


class _Compactor:
    """Typed rows of a chunk as a compact frame: references and choices as categoricals, no row key."""

    def __init__(self, spec: FileSpec, accepted_keys: dict[str, pd.Series]) -> None:
        self.spec = spec
        self.categories: dict[str, pd.Index] = {}
        for col in spec.columns:
            if col.references is not None:
                self.categories[col.name] = pd.Index(
                    accepted_keys[col.references].dropna().astype(str).unique()
                ).sort_values()
            elif col.kind == Kind.CHOICE:
                self.categories[col.name] = pd.Index(sorted(col.choices))
        self.value_sets = {name: pa.array(index, type=pa.string()) for name, index in self.categories.items()}
        self.dropped = set(spec.key) if len(spec.key) == 1 else set()

    def __call__(self, typed: pd.DataFrame) -> pd.DataFrame:
        out: dict[str, pd.Series | pd.Categorical] = {}
        for col in self.spec.columns:
            if col.name in self.dropped:
                continue
            values = typed[col.name]
            categories = self.categories.get(col.name)
            if categories is None:
                out[col.name] = values.reset_index(drop=True)
            else:  # Arrow's hash kernel: several times faster than pandas' get_indexer on strings
                found = pc.index_in(pa.array(values, type=pa.string()), value_set=self.value_sets[col.name])
                codes = found.fill_null(-1).to_numpy(zero_copy_only=False)
                out[col.name] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories))
        return pd.DataFrame(out)


class SeenKeys:
    """Keys accepted in earlier chunks. While a file's keys only grow, row after row and chunk after chunk
    (ids exported in order, the usual case), no row can repeat an earlier key: the keys are kept as they
    are (Arrow strings, no hashing, the costliest step of reading otherwise). The first chunk out of that
    order hashes them once, and from then on keys are found by hashes in sorted runs merged as they grow."""

    def __init__(self) -> None:
        self.runs: list[npt.NDArray[np.uint64]] = []
        self.in_order: list[pd.DataFrame] | None = []  # every accepted key, while all came in order
        self.last: str | None = None  # the greatest of them

    def accept(self, key: pd.DataFrame, candidates: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Rows among ``candidates`` whose key was accepted in an earlier chunk; the other candidates'
        keys are remembered as accepted."""
        found = np.zeros(len(key), dtype=bool)
        if not candidates.any():
            return found
        accepted = key.loc[candidates]
        if self.in_order is not None:
            if self._still_in_order(accepted):
                self.in_order.append(accepted)
                self.last = str(accepted.iloc[-1, 0])
                return found
            for earlier in self.in_order:  # out of order at last: what was kept is hashed, once
                self._add(np.sort(_hashes(earlier)))
            self.in_order = None
        raw = _hashes(accepted)
        order = np.argsort(raw)
        hashes, rows = raw[order], np.flatnonzero(candidates)[order]
        hit = np.zeros(len(hashes), dtype=bool)
        for run in self.runs:  # sorted needles: searchsorted walks each run once
            at = np.minimum(np.searchsorted(run, hashes), len(run) - 1)
            hit |= run[at] == hashes
        found[rows[hit]] = True
        self._add(hashes[~hit])
        return found

    def _still_in_order(self, accepted: pd.DataFrame) -> bool:
        if accepted.shape[1] != 1:
            return False
        column = accepted.iloc[:, 0]
        if not is_strictly_increasing(column):
            return False
        return self.last is None or str(column.iloc[0]) > self.last

    def _add(self, hashes: npt.NDArray[np.uint64]) -> None:
        if not len(hashes):
            return
        self.runs.append(hashes)
        while len(self.runs) > 1 and len(self.runs[-2]) <= 2 * len(self.runs[-1]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="stable")


def _hashes(keys: pd.DataFrame) -> npt.NDArray[np.uint64]:
    return np.asarray(pd.util.hash_pandas_object(keys, index=False), dtype=np.uint64)
