"""Load the input files of the data contract and check every row, so a bad row is set aside with
its reason instead of breaking a job or silently skewing a model.

``load_dataset`` reads each file of ``recsys.schema.FILES`` (CSV or Parquet), types every cell as
``recsys.dataset`` documents, rejects rows that break ``recsys.schema`` (bad cells, duplicate keys,
unknown references, failed cross-column checks) into ``<rejects dir>/<file>.rejects.csv`` with a
``reason`` column, and stops with ``TooManyRejectsError`` when a file's reject share is too high.
Everything is column-at-a-time pandas/pyarrow work; the happy path has no per-row Python.

Conventions beyond the schema: cells are stripped of surrounding blanks (text cells excepted); an
empty cell in a column with a ``default`` takes the default; an empty ``max_tier`` becomes diamond
(no ceiling) so tiers stay ``int8``; nullable integer columns (``budget``, ``per_member_limit``) are
``float64`` with NaN for "unlimited"; empty nullable ids and text are missing (NaN).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from recsys.dataset import LoyaltyData
from recsys.errors import DataError, TooManyRejectsError
from recsys.schema import FILES, Column, FileSpec, Kind
from recsys.tiers import TIER_LABELS, Tier

REASON = "reason"
MAX_ID_LENGTH = 64
_BOOLS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}
_TIERS = {label: i for i, label in enumerate(TIER_LABELS)}
_SHOWN = 40  # characters of a bad cell quoted in its reason
_EARLIEST, _LATEST = pd.Timestamp.min.ceil("D"), pd.Timestamp.max.floor("D")

Mask = npt.NDArray[np.bool_]
Problem: TypeAlias = pd.Series  # reasons of the rejected rows, indexed by row number


@dataclass(frozen=True)
class FileReport:
    """What loading one file did: rows read, kept and set aside (and where)."""

    file: str
    total: int
    accepted: int
    rejected: int
    rejects_path: Path | None


@dataclass(frozen=True)
class LoadResult:
    data: LoyaltyData
    report: dict[str, FileReport]


@dataclass
class _Raw:
    cells: pd.DataFrame  # every cell as a string, "" where missing
    unreadable: pd.Series  # reason per row of ``cells`` that could not be decoded
    malformed: list[str]  # lines with the wrong number of cells, already described


def load_dataset(data_dir: Path, *, max_reject_share: float = 0.01, rejects_dir: Path | None = None) -> LoadResult:
    """Read, type and validate every file of the data contract found in ``data_dir``.

    Raises ``DataError`` for a missing file or required column and ``TooManyRejectsError`` when a
    file's rejected share exceeds ``max_reject_share`` (its rejects file is written first).
    """
    data_dir, out_dir = input_folders(data_dir, rejects_dir)
    accepted_keys: dict[str, pd.Series] = {}
    frames: dict[str, pd.DataFrame] = {}
    report: dict[str, FileReport] = {}
    for spec in FILES:
        frames[spec.name], report[spec.name] = load_file(spec, data_dir, out_dir, accepted_keys, max_reject_share)
    return LoadResult(data=LoyaltyData(**frames), report=report)


def input_folders(data_dir: Path, rejects_dir: Path | None) -> tuple[Path, Path]:
    """(data folder, rejects folder): the rejects go beside the data unless told otherwise."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    return data_dir, Path(rejects_dir) if rejects_dir is not None else data_dir / "rejects"


def load_file(
    spec: FileSpec, data_dir: Path, out_dir: Path, accepted_keys: dict[str, pd.Series], max_reject_share: float
) -> tuple[pd.DataFrame, FileReport]:
    """One file read whole, typed and validated; its accepted ids join ``accepted_keys`` for later files."""
    raw = _read(spec, data_dir)
    typed, reasons = validate_cells(spec, raw.cells, accepted_keys, raw.unreadable)
    if reasons.empty:
        frame = typed
    else:
        keep = np.ones(len(typed), dtype=bool)
        keep[reasons.index.to_numpy(dtype=np.int64)] = False
        frame = typed.loc[keep].reset_index(drop=True)
    remember_keys(spec, frame, accepted_keys)
    total = len(raw.cells) + len(raw.malformed)
    n_rejected = len(reasons) + len(raw.malformed)
    path = rejects_path(spec, out_dir)
    if n_rejected:
        _write_rejects(path, raw, reasons)
    elif path.exists():
        path.unlink()
    del raw, typed
    pa.default_memory_pool().release_unused()  # hand the reading buffers back before the next file
    return frame, file_report(spec, total, n_rejected, path, max_reject_share)


def remember_keys(spec: FileSpec, frame: pd.DataFrame, accepted_keys: dict[str, pd.Series]) -> None:
    """The accepted ids of ``frame``, which later files may refer to."""
    for col in spec.columns:
        if col.kind == Kind.ID and col.name in frame.columns:
            accepted_keys[f"{spec.name}.{col.name}"] = frame[col.name]


def rejects_path(spec: FileSpec, out_dir: Path) -> Path:
    return out_dir / f"{spec.name}.rejects.csv"


def file_report(spec: FileSpec, total: int, n_rejected: int, path: Path, max_reject_share: float) -> FileReport:
    """The file's counts; ``TooManyRejectsError`` when its rejected share is above the threshold."""
    if total and n_rejected / total > max_reject_share:
        raise TooManyRejectsError(spec.name, n_rejected, total, max_reject_share, str(path))
    return FileReport(spec.name, total, total - n_rejected, n_rejected, path if n_rejected else None)


def write_report(report: dict[str, FileReport]) -> str:
    """A small fixed-width table of rows read, accepted and rejected per file, for the CLI."""
    lines = [f"{'file':<18}{'read':>12}{'accepted':>12}{'rejected':>10}  rejects file"]
    for rep in report.values():
        where = str(rep.rejects_path) if rep.rejects_path else "-"
        lines.append(f"{rep.file:<18}{rep.total:>12,}{rep.accepted:>12,}{rep.rejected:>10,}  {where}")
    return "\n".join(lines)


def _write_rejects(path: Path, raw: _Raw, reasons: pd.Series) -> None:
    rejects = rejected_rows(raw.cells, reasons)
    if raw.malformed:
        lines = pd.DataFrame({REASON: raw.malformed})
        rejects = pd.concat([rejects, lines], ignore_index=True).fillna("")
    path.parent.mkdir(parents=True, exist_ok=True)
    rejects.to_csv(path, index=False)


def rejected_rows(cells: pd.DataFrame, reasons: pd.Series) -> pd.DataFrame:
    """The rejected rows as read, each with its reason."""
    rejects = cells.loc[reasons.index].copy()
    rejects[REASON] = reasons.to_numpy(dtype=object)
    return rejects


# -- reading ------------------------------------------------------------------------------------


def _read(spec: FileSpec, data_dir: Path) -> _Raw:
    csv_path, parquet_path = data_dir / f"{spec.name}.csv", data_dir / f"{spec.name}.parquet"
    if csv_path.exists() and parquet_path.exists():
        raise DataError(f"{spec.name}: both {csv_path.name} and {parquet_path.name} exist; keep one")
    if csv_path.exists():
        return _read_csv(spec, csv_path)
    if parquet_path.exists():
        return _Raw(_read_parquet(spec, parquet_path), pd.Series(dtype=object), [])
    raise DataError(f"{spec.name}: missing input file; expected {csv_path} or {parquet_path}")


def csv_header(spec: FileSpec, path: Path) -> list[str]:
    """The checked column names of a CSV file's first line."""
    with path.open("rb") as fh:
        first = fh.readline()
    header_text = first.decode("utf-8-sig", errors="replace")
    if not header_text.strip():
        raise DataError(f"{spec.name}: {path.name} is empty; its first line must name the columns")
    header = [name.strip() for name in next(csv.reader([header_text]))]
    check_header(spec, header)
    return header


def csv_options(
    header: list[str], malformed: list[str], cell_type: pa.DataType = pa.large_string()
) -> tuple[pa_csv.ReadOptions, pa_csv.ParseOptions, pa_csv.ConvertOptions]:
    """How every CSV of the contract is parsed: each cell as text (``cell_type``); lines with the wrong
    number of cells are skipped and described in ``malformed``."""

    def skip(row: pa_csv.InvalidRow) -> str:
        malformed.append(f"line has {row.actual_columns} cells, expected {row.expected_columns}: {row.text[:80]!r}")
        return "skip"

    return (
        pa_csv.ReadOptions(column_names=header, skip_rows=1),
        pa_csv.ParseOptions(invalid_row_handler=skip),
        pa_csv.ConvertOptions(
            column_types=dict.fromkeys(header, cell_type),  # large_string is what pandas holds: no copy
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )


def _read_csv(spec: FileSpec, path: Path) -> _Raw:
    header = csv_header(spec, path)
    malformed: list[str] = []
    read_options, parse_options, convert_options = csv_options(header, malformed)

    def parse(source: Path | io.BytesIO) -> pa.Table:
        return pa_csv.read_csv(
            source,
            read_options=read_options,
            parse_options=parse_options,
            convert_options=convert_options,
            memory_pool=pa.system_memory_pool(),  # returns large buffers to the OS once a file is done
        )

    unreadable = pd.Series(dtype=object)
    try:
        table = parse(path)
    except (OSError, pa.ArrowException) as exc:
        if not isinstance(exc, pa.ArrowInvalid) or "UTF8" not in str(exc).upper():
            raise DataError(f"{spec.name}: {path.name} cannot be read as CSV: {exc}") from exc
        # Not UTF-8: decode with replacement characters, then reject the rows that hold one.
        malformed.clear()
        table = parse(io.BytesIO(path.read_bytes().decode("utf-8", errors="replace").encode("utf-8")))
        unreadable = replacement_reasons(table)
    return _Raw(table.to_pandas(), unreadable, malformed)


def replacement_reasons(table: pa.Table) -> pd.Series:
    parts = []
    for name in table.column_names:
        hit = table.column(name).to_pandas().str.contains("\ufffd", regex=False).to_numpy(dtype=bool)
        if hit.any():
            parts.append(pd.Series(f"{name}: not valid UTF-8 text", index=np.flatnonzero(hit), dtype=object))
    return merge_reasons(parts)


def _read_parquet(spec: FileSpec, path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{spec.name}: {path.name} cannot be read as Parquet: {exc}") from exc
    check_header(spec, table.column_names)
    return parquet_cells(spec, table)


def parquet_cells(spec: FileSpec, table: pa.Table) -> pd.DataFrame:
    """Every cell of a Parquet table as the text a CSV would hold."""
    kinds = {c.name: c.kind for c in spec.columns}
    return pd.DataFrame({name: _as_text(table.column(name), kinds.get(name)) for name in table.column_names})


def _as_text(column: pa.ChunkedArray, kind: Kind | None) -> pd.Series:
    """A Parquet column as the strings a CSV would hold, so both formats share one validation."""
    arrow_type = column.type
    if pa.types.is_timestamp(arrow_type):
        values = column.to_pandas()
        if values.dt.tz is not None:
            values = values.dt.tz_convert("UTC").dt.tz_localize(None)
        stamps = values.to_numpy(dtype="datetime64[us]")
        whole = stamps.astype("datetime64[s]") == stamps
        text = np.datetime_as_string(stamps, unit="s" if whole.all() else "us")
        if kind == Kind.DATE:
            days = stamps.astype("datetime64[D]")
            text = np.where(stamps == days, np.datetime_as_string(days), text)
        else:
            text = (pd.Series(text, dtype=str) + "Z").to_numpy(dtype=object)
        return pd.Series(np.where(values.isna().to_numpy(), "", text), dtype=str)
    if pa.types.is_boolean(arrow_type):
        return column.to_pandas().map({True: "true", False: "false"}).fillna("").astype(str)
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return column.to_pandas().map(lambda v: "" if v is None else "|".join(map(str, v))).astype(str)
    if pa.types.is_floating(arrow_type):
        values = column.to_pandas()
        return values.map(repr).where(values.notna(), "").astype(str)
    return column.cast(pa.string()).to_pandas().fillna("").astype(str)


def check_header(spec: FileSpec, header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{spec.name}: column {name!r} appears twice in the header")
        seen.add(name)
    for name in spec.required_columns:
        if name not in seen:
            raise DataError(f"{spec.name}: required column {name!r} is missing (found: {', '.join(header)})")


# -- validation ---------------------------------------------------------------------------------


def merge_reasons(parts: list[pd.Series]) -> pd.Series:
    """One '; '-joined reason per rejected row, indexed by row number in ascending order."""
    if not parts:
        return pd.Series(dtype=object)
    return pd.concat(parts).groupby(level=0, sort=True).agg("; ".join)


def validate_cells(
    spec: FileSpec, raw: pd.DataFrame, keys: dict[str, pd.Series], unreadable: pd.Series
) -> tuple[pd.DataFrame, pd.Series]:
    """Typed columns of the file plus a reason per rejected row (index = row number)."""
    n = len(raw)
    problems: list[Problem] = []
    typed: dict[str, pd.Series] = {}
    bad_cells: dict[str, Mask] = {}
    for col in spec.columns:
        cells = raw[col.name] if col.name in raw.columns else pd.Series([col.default or ""] * n, dtype=str)
        typed[col.name], bad_cells[col.name], found = _parse_column(col, cells.reset_index(drop=True))
        problems.extend(found)
    for col in spec.columns:
        if col.references is None:
            continue
        known = keys.get(col.references)
        if known is None:
            raise DataError(f"{spec.name}.{col.name} refers to {col.references}, which is not loaded before it")
        values = typed[col.name]
        unknown = ~_isin(values, known) & values.notna().to_numpy() & ~bad_cells[col.name]
        problems += problem_rows(unknown, f"{col.name}: unknown {col.references.split('.')[0]}, ", values)
    for check in spec.checks:
        problems += _CHECKS[check](typed, bad_cells)
    rejected = np.zeros(n, dtype=bool)
    for part in [unreadable, *problems]:
        rejected[part.index.to_numpy(dtype=np.int64)] = True
    if spec.key:
        dup = np.zeros(n, dtype=bool)
        kept = [typed[name][~rejected] if rejected.any() else typed[name] for name in spec.key]
        dup[~rejected] = _repeated(kept)
        problems += problem_rows(dup, f"{'+'.join(spec.key)}: duplicate of an earlier row, ", typed[spec.key[0]])
    return pd.DataFrame(typed), merge_reasons([unreadable, *problems] if len(unreadable) else problems)


def is_strictly_increasing(column: pd.Series) -> bool:
    """Whether every value is greater than the one before (byte order of the UTF-8 text), with none missing."""
    values = pa.array(column, type=pa.string())
    if len(values) < 2 or values.null_count:
        return len(values) < 2
    later = pc.greater(values.slice(1), values.slice(0, len(values) - 1))
    return bool(pc.all(later).as_py())


def problem_rows(mask: Mask, reason: str, shown: pd.Series | None = None, quote: bool = True) -> list[Problem]:
    """The reason for each row in ``mask``, followed by its offending value when ``shown`` is given;
    built for the bad rows only."""
    if not mask.any():
        return []
    rows = np.flatnonzero(mask)
    if shown is None:
        return [pd.Series(reason, index=rows, dtype=object)]
    got = shown.iloc[rows].astype(str).str.slice(0, _SHOWN)
    text = reason + ("got '" + got + "'" if quote else "got " + got)
    return [pd.Series(text.to_numpy(dtype=object), index=rows, dtype=object)]


def _repeated(columns: list[pd.Series]) -> Mask:
    """True where the combined value appeared in an earlier row (Arrow dictionary codes, no Python)."""
    if len(columns) == 1 and is_strictly_increasing(columns[0]):
        return np.zeros(len(columns[0]), dtype=bool)  # ids exported in order: unique, shown in O(n)
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        values = pa.array(column, type=pa.string())
        encoded = pc.dictionary_encode(values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values)
        codes = codes * (len(encoded.dictionary) + 1) + encoded.indices.fill_null(-1).to_numpy().astype(np.int64) + 1
    repeated = np.ones(len(codes), dtype=bool)
    repeated[np.unique(codes, return_index=True)[1]] = False
    return repeated


def _isin(values: pd.Series, known: pd.Series) -> Mask:
    """``values.isin(known)`` for strings by Arrow's hash kernel (pandas goes through Python objects)."""
    found = pc.is_in(pa.array(values, type=pa.string()), value_set=pa.array(known, type=pa.string()))
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _control_characters(text: pd.Series) -> Mask:
    """Cells holding a control character (U+0000 to U+001F, U+007F), found in the UTF-8 bytes of the whole
    column at once: those bytes never occur inside a multi-byte character (ten times a regex's speed)."""
    arrow = pa.array(text, type=pa.large_string())
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    found = np.zeros(len(arrow), dtype=bool)
    _, offsets_buffer, data = arrow.buffers()
    if data is None or not len(arrow):
        return found
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[arrow.offset : arrow.offset + len(arrow) + 1]
    raw = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
    at = np.flatnonzero((raw < 0x20) | (raw == 0x7F)) + offsets[0]
    found[np.searchsorted(offsets, at, side="right") - 1] = True
    return found


def _parse_column(col: Column, cells: pd.Series) -> tuple[pd.Series, Mask, list[Problem]]:
    """Typed values, the mask of bad cells and the problems found (mask, reason) for one column."""
    arrow = pa.array(cells, type=pa.string())
    padded = pc.any(pc.not_equal(pc.utf8_length(pc.utf8_trim_whitespace(arrow)), pc.utf8_length(arrow))).as_py()
    stripped = cells.str.strip() if padded else cells  # nothing to strip: no copy of a large column
    text = cells if col.kind == Kind.TEXT else stripped
    empty = (stripped == "").to_numpy(dtype=bool)
    if col.default is not None and empty.any():
        text = text.where(~empty, col.default)
        empty = (text.str.strip() == "").to_numpy(dtype=bool)
    values, invalid, why = _PARSERS[col.kind](col, text, empty)
    invalid = invalid & ~empty
    problems = problem_rows(invalid, f"{col.name}: {why}, ", text)
    bad = invalid.copy()
    if not col.nullable:
        problems += problem_rows(empty, f"{col.name}: must not be empty")
        bad |= empty
    if col.minimum is not None and col.kind in (Kind.INT, Kind.FLOAT):
        below = (values < col.minimum).to_numpy(dtype=bool) & ~bad
        problems += problem_rows(below, f"{col.name}: must be >= {col.minimum:g}, ", text, quote=False)
        bad |= below
    return values, bad, problems


Parsed = tuple[pd.Series, Mask, str]


def _parse_id(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    control = _control_characters(text)
    long = (text.str.len() > MAX_ID_LENGTH).to_numpy(dtype=bool)
    values = text.where(~empty) if col.nullable else text
    return values, control | long, f"must be at most {MAX_ID_LENGTH} characters without control characters"


def _parse_text(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    values = text.where(~empty) if col.nullable else text
    return values, np.zeros(len(text), dtype=bool), ""


def _parse_int(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    whole = text.str.fullmatch(r"[+-]?\d{1,18}(?:\.0*)?").to_numpy(dtype=bool)
    numbers = pd.to_numeric(text.where(whole), errors="coerce").astype("float64")
    values = numbers if col.nullable else numbers.fillna(0).astype("int64")
    return values, ~whole, "not a whole number"


def _parse_float(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    numbers = _floats(text.where(~empty))
    finite = np.isfinite(numbers.to_numpy())
    return numbers.where(finite), ~finite, "not a finite number"


def _floats(text: pd.Series) -> pd.Series:
    """Numbers of ``text``, NaN where missing or not a number: Arrow's parser when every cell is a number
    (the usual case, several times faster), pandas' cell by cell otherwise."""
    try:
        parsed = pc.cast(pa.array(text, type=pa.string()), pa.float64())
    except pa.ArrowInvalid:
        return pd.to_numeric(text, errors="coerce").astype("float64")
    return pd.Series(parsed.to_numpy(zero_copy_only=False), index=text.index, dtype="float64")


def _parse_bool(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    mapped = text.str.lower().map(_BOOLS)
    return mapped.fillna(False).astype(bool), mapped.isna().to_numpy(dtype=bool), "not true/false, 1/0 or yes/no"


def _in_range(values: pd.Series) -> Mask:
    return ((values >= _EARLIEST) & (values <= _LATEST)).to_numpy(dtype=bool)


def _strptime(text: pd.Series, form: str) -> pd.Series:
    """Naive timestamps (seconds) where ``text`` matches ``form``, NaT elsewhere; done by Arrow, fast."""
    stamps = pc.strptime(pa.array(text, type=pa.string()), format=form, unit="s", error_is_null=True)
    return pd.Series(stamps.to_numpy(zero_copy_only=False), index=text.index)


def _parse_date(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    values = _strptime(text, "%Y-%m-%d")
    ok = _in_range(values)
    return values.where(ok).astype("datetime64[ns]"), ~ok, "not an ISO date (YYYY-MM-DD)"


def _parse_datetime(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    values = _strptime(text, "%Y-%m-%dT%H:%M:%SZ").astype("datetime64[us]")
    other = values.isna().to_numpy() & ~empty
    if other.any():  # other ISO 8601 spellings (offsets, fractions of a second, no zone) the slow way
        parsed = pd.to_datetime(text[other], format="ISO8601", utc=True, errors="coerce")
        values[other] = parsed.dt.tz_localize(None).astype("datetime64[us]")
    ok = _in_range(values)
    return values.where(ok).astype("datetime64[ns]").dt.tz_localize("UTC"), ~ok, "not an ISO 8601 timestamp"


def _parse_tier(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    mapped = text.str.lower().map(_TIERS)
    ceiling = int(Tier.DIAMOND) if col.nullable else 0  # an empty ceiling means none: diamond
    return (
        mapped.fillna(ceiling).astype("int8"),
        mapped.isna().to_numpy(dtype=bool),
        "expected one of " + ", ".join(TIER_LABELS),
    )


def _parse_choice(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    unusual = ~text.isin(col.choices).to_numpy(dtype=bool)
    lowered = text.str.lower() if unusual.any() else text  # already canonical: keep one copy
    values = lowered.where(~empty) if col.nullable else lowered
    return values, ~lowered.isin(col.choices).to_numpy(dtype=bool), "expected one of " + ", ".join(col.choices)


def _parse_list(col: Column, text: pd.Series, empty: Mask) -> Parsed:
    """'|'-separated values as tuples, worked out once per distinct cell (few, even in large files)."""
    as_tuple = {u: tuple(p.strip() for p in str(u).split("|") if p.strip()) for u in pd.unique(text)}
    allowed = set(col.choices)
    wrong = [u for u, parts in as_tuple.items() if allowed and not allowed.issuperset(parts)]
    values = text.map(as_tuple).astype(object)
    return values, text.isin(wrong).to_numpy(dtype=bool), "values must be among " + ", ".join(col.choices)


_PARSERS: dict[Kind, Callable[[Column, pd.Series, Mask], Parsed]] = {
    Kind.ID: _parse_id,
    Kind.TEXT: _parse_text,
    Kind.INT: _parse_int,
    Kind.FLOAT: _parse_float,
    Kind.BOOL: _parse_bool,
    Kind.DATE: _parse_date,
    Kind.DATETIME: _parse_datetime,
    Kind.TIER: _parse_tier,
    Kind.CHOICE: _parse_choice,
    Kind.LIST: _parse_list,
}


def _valid_from_before_valid_to(typed: dict[str, pd.Series], bad: dict[str, Mask]) -> list[Problem]:
    start, end = typed["valid_from"], typed["valid_to"]
    rows = np.flatnonzero((end < start).to_numpy(dtype=bool) & ~bad["valid_from"] & ~bad["valid_to"])
    if not len(rows):
        return []
    first, last = start.iloc[rows].dt.strftime("%Y-%m-%d"), end.iloc[rows].dt.strftime("%Y-%m-%d")
    text = "valid_to: must be on or after valid_from (" + first + "), got " + last
    return [pd.Series(text.to_numpy(dtype=object), index=rows, dtype=object)]


def _min_tier_not_above_max_tier(typed: dict[str, pd.Series], bad: dict[str, Mask]) -> list[Problem]:
    low, high = typed["min_tier"], typed["max_tier"]
    rows = np.flatnonzero((low > high).to_numpy(dtype=bool) & ~bad["min_tier"] & ~bad["max_tier"])
    if not len(rows):
        return []
    labels = np.array(TIER_LABELS, dtype=object)
    floor, ceiling = labels[low.iloc[rows].to_numpy(dtype=np.int64)], labels[high.iloc[rows].to_numpy(dtype=np.int64)]
    text = "max_tier: must not be below min_tier (" + floor + "), got " + ceiling
    return [pd.Series(text, index=rows, dtype=object)]


_CHECKS: dict[str, Callable[[dict[str, pd.Series], dict[str, Mask]], list[Problem]]] = {
    "valid_from_before_valid_to": _valid_from_before_valid_to,
    "min_tier_not_above_max_tier": _min_tier_not_above_max_tier,
}
