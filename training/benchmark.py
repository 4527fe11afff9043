"""The public benchmark behind ``offers benchmark``: any user-item-rating file, every family tuned on
training data only, scored under the Microsoft Recommenders MovieLens protocol.

Protocol (see ``training.split`` and ``training.metrics`` for what is matched exactly): a per-item
75/25 random split with seed 42 unless train and test files are given; ratings ignored (every row is
one implicit interaction); for each family, Optuna tuning on a holdout carved from train, a refit on
all of train with the best parameters (timed as ``train_s``), top-k over items seen in training,
excluding each user's training items, scored against the test rows of users seen in training.
"""

from __future__ import annotations

import codecs
import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.base import TrainingSet
from models.families import create, default_params
from recsys.errors import DataError
from training.metrics import summarise, user_metrics
from training.split import IndexedInteractions, index_interactions, item_folds
from training.tuning import TrialResult, Validation, describe_choice, describe_params, tune

BENCHMARK_FAMILIES: tuple[str, ...] = ("lightfm", "als", "bpr", "popularity")
_NUMERIC = ("rating", "timestamp")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists of one algorithm in original ids: ``items[u, r]`` is the (r+1)-th pick for ``users[u]``."""

    users: npt.NDArray[np.str_]
    items: npt.NDArray[np.object_]  # (n_users, k); None where fewer than k items could be recommended


@dataclass(frozen=True)
class BenchmarkRow:
    algo: str
    train_s: float
    k: int
    map: float
    ndcg: float
    precision: float
    recall: float
    ndcg_se: float = math.nan  # standard error of the mean nDCG@k over the test users (not published)
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    recs: Recommendations | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """The published row: exactly algo, train_s, map, ndcg_at_k, precision_at_k, recall_at_k."""
        return {
            "algo": self.algo,
            "train_s": round(self.train_s, 4),
            "map": self.map,
            f"ndcg_at_{self.k}": self.ndcg,
            f"precision_at_{self.k}": self.precision,
            f"recall_at_{self.k}": self.recall,
        }


# -- reading ---------------------------------------------------------------------------------------------


def parse_separator(sep: str) -> str:
    """The separator as typed on a command line: ``\\t`` (backslash-t), ``tab``, ``::``, ``,``..."""
    if sep.lower() in ("tab", "\\t"):
        return "\t"
    if "\\" in sep:
        sep = codecs.decode(sep, "unicode_escape")
    if not sep:
        raise DataError("the separator is empty")
    return sep


@dataclass(frozen=True)
class RejectedRow:
    line: int  # 1-based line number in the file
    text: str
    reason: str


def read_interactions(
    path: Path,
    sep: str,
    columns: Sequence[str],
    *,
    on_reject: Callable[[RejectedRow], None] | None = None,
) -> pd.DataFrame:
    """Read ``columns`` (which must name ``user`` and ``item``) from the leading fields of each line.

    Fields after the named ones are ignored; a header line that repeats the column names (or has a
    non-numeric rating/timestamp) is skipped; blank lines are skipped. A row with too few fields, an
    empty user or item, or a non-numeric rating/timestamp is rejected: reported to ``on_reject`` and
    counted in ``frame.attrs["rejected"]``, never fatal. Ids stay strings (surrounding spaces trimmed).
    """
    names = [c.strip() for c in columns]
    for required in ("user", "item"):
        if required not in names:
            raise DataError(f"--columns must name {required!r}; got {','.join(names)}")
    if len(set(names)) != len(names):
        raise DataError(f"--columns repeats a name: {','.join(names)}")
    separator = parse_separator(sep)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc

    lines = pd.Series(text.splitlines(), dtype=object)
    line_no = np.arange(1, len(lines) + 1)
    nonblank = lines.str.strip() != ""
    lines, line_no = lines[nonblank].reset_index(drop=True), line_no[nonblank.to_numpy()]
    parts = lines.str.split(separator, n=len(names), regex=False, expand=True)
    for i in range(len(names)):
        if i not in parts.columns:
            parts[i] = None
    frame = pd.DataFrame({name: parts[i].str.strip() for i, name in enumerate(names)})

    reasons = pd.Series("", index=frame.index, dtype=object)
    missing = frame[names].isna().any(axis=1)
    reasons[missing] = f"fewer than {len(names)} fields"
    for required in ("user", "item"):
        empty = ~missing & (frame[required] == "")
        reasons[empty & (reasons == "")] = f"empty {required}"
    numbers: dict[str, pd.Series] = {}
    for name in _NUMERIC:
        if name in frame:
            numbers[name] = pd.to_numeric(frame[name], errors="coerce")
            bad = ~missing & numbers[name].isna()
            reasons[bad & (reasons == "")] = f"{name} is not a number"

    if len(frame) and _looks_like_header(frame.iloc[0], names):
        reasons.iloc[0] = "header"
    header = reasons == "header"
    rejected = (reasons != "") & ~header
    if on_reject is not None:
        for idx in np.flatnonzero(rejected.to_numpy()):
            on_reject(RejectedRow(int(line_no[idx]), str(lines.iloc[idx]), str(reasons.iloc[idx])))
    keep = (reasons == "").to_numpy()
    out = frame[keep].reset_index(drop=True)
    for name, values in numbers.items():
        out[name] = values[keep].to_numpy()
    out.attrs["rejected"] = int(rejected.sum())
    out.attrs["header"] = bool(header.any())
    return out


def _looks_like_header(row: pd.Series, names: Sequence[str]) -> bool:
    """A first line that repeats a column name, or has words where numbers belong, is a header."""
    if row.isna().any():
        return False
    if {str(v).lower() for v in row.to_numpy()} & {n.lower() for n in names}:
        return True
    return any(name in row.index and not _is_number(row[name]) for name in _NUMERIC)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


# -- running ---------------------------------------------------------------------------------------------


def _training_set(ix: IndexedInteractions) -> TrainingSet:
    return TrainingSet(
        interactions=ix.train,
        member_ids=ix.user_ids,
        offer_ids=ix.item_ids,
        member_tiers=np.zeros(ix.n_users, dtype=np.int8),
    )


def protocol_validations(train_df: pd.DataFrame, *, seed: int) -> tuple[Validation, Validation]:
    """The benchmark's own protocol one step back, inside the training rows: per item, two disjoint
    folds of one fresh seeded draw held out (``item_folds``; the first to search on, the second to
    confirm on), top-k lists that exclude what the fit saw, every held-out row relevant. Tuning
    scores what the test scores."""
    search, confirm = (_validation(*fold) for fold in item_folds(train_df, n=2, seed=seed))
    return search, confirm


def _validation(fit_df: pd.DataFrame, held_df: pd.DataFrame) -> Validation:
    ix = index_interactions(fit_df, held_df)
    return Validation(fit=_training_set(ix), relevant=ix.relevant)


def run_benchmark(
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    *,
    k: int = 10,
    families: Sequence[str] = BENCHMARK_FAMILIES,
    trials: int = 20,
    seed: int = 42,
    tune_timeout_s: float | None = None,
    progress: Progress = _quiet,
    on_trial: Callable[[str, TrialResult], None] | None = None,
) -> list[BenchmarkRow]:
    """Tune, refit, time and score each family; frames need ``user`` and ``item`` columns."""
    ix = index_interactions(train_df, test_df)
    if ix.n_users == 0 or ix.n_items == 0:
        raise DataError("the training split holds no interactions")
    if ix.relevant.nnz == 0:
        raise DataError("no test interaction belongs to a user seen in training")
    progress(
        f"{ix.n_users} users x {ix.n_items} items, {ix.train.nnz} training pairs, {ix.relevant.nnz} test pairs"
        f" ({len(ix.unseen_item_ids)} test-only items counted as relevant but unrankable;"
        f" {ix.dropped_test_rows} test rows of {ix.dropped_test_users} users unseen in training left out)"
    )
    train = _training_set(ix)
    users = np.arange(ix.n_users, dtype=np.int64)
    validation, confirmation = protocol_validations(train_df, seed=seed + 1) if trials > 0 else (None, None)
    rows: list[BenchmarkRow] = []
    for family in families:
        params = dict(default_params(family))
        if trials > 0:
            started = time.perf_counter()

            def report(trial: TrialResult, family: str = family) -> None:
                if on_trial is not None:
                    on_trial(family, trial)

            tuned = tune(
                family,
                train,
                n_trials=trials,
                seed=seed,
                k=k,
                timeout_s=tune_timeout_s,
                on_trial=report,
                validation=validation,
                confirmation=confirmation,
            )
            params = tuned.best_params
            if tuned.trials:
                progress(
                    f"{family}: {len(tuned.trials)} trials in {time.perf_counter() - started:.1f}s,"
                    f" validation nDCG@{k} {tuned.best_score:.4f} with {describe_params(params)}"
                )
                for line in describe_choice(tuned, k):
                    progress(f"  {line}")
        model = create(family, **params)
        started = time.perf_counter()
        model.fit(train)
        train_s = time.perf_counter() - started
        top, _ = model.recommend(users, k=k, exclude=ix.train)
        per_user = user_metrics(top, ix.relevant, k)
        metrics = summarise(per_user, top, n_catalogue=ix.n_items)
        scored = per_user.ndcg[per_user.evaluable]
        ndcg_se = float(scored.std(ddof=1) / math.sqrt(len(scored))) if len(scored) > 1 else math.nan
        item_ids = np.asarray(ix.item_ids, dtype=object)
        picks = item_ids[np.maximum(top, 0)]
        picks[top < 0] = None
        row = BenchmarkRow(
            algo=family,
            train_s=train_s,
            k=k,
            map=metrics.map,
            ndcg=metrics.ndcg,
            precision=metrics.precision,
            recall=metrics.recall,
            ndcg_se=ndcg_se,
            params=params,
            recs=Recommendations(ix.user_ids, picks),
        )
        progress(
            f"{family}: fit {train_s:.2f}s, nDCG@{k} {row.ndcg:.4f} ± {ndcg_se:.4f}"
            f" (standard error over {len(scored)} test users), MAP {row.map:.4f}"
        )
        rows.append(row)
    return rows


# -- writing ---------------------------------------------------------------------------------------------


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_json(rows: Iterable[BenchmarkRow], path: Path) -> None:
    """A JSON list with one object per algorithm: algo, train_s, map, ndcg_at_k, precision_at_k, recall_at_k."""
    payload = [{key: _finite_or_none(value) for key, value in row.as_dict().items()} for row in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")


def write_recs(recs: Iterable[BenchmarkRow], path: Path) -> int:
    """CSV ``algo,user,item,rank`` (rank from 1, original ids) for every row that carries its lists;
    returns the number of lines written."""
    frames = []
    for row in recs:
        if row.recs is None:
            continue
        users, items = row.recs.users, row.recs.items
        n_users, width = items.shape
        frame = pd.DataFrame(
            {
                "algo": row.algo,
                "user": np.repeat(users, width),
                "item": items.ravel(),
                "rank": np.tile(np.arange(1, width + 1), n_users),
            }
        )
        frames.append(frame[frame["item"].notna()])
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["algo", "user", "item", "rank"])
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return len(out)


def format_table(rows: Sequence[BenchmarkRow]) -> str:
    """A plain-text table in the layout of the Microsoft Recommenders benchmark."""
    if not rows:
        return "(no results)"
    k = rows[0].k
    header = ["algo", "train_s", "MAP", f"nDCG@{k}", f"Precision@{k}", f"Recall@{k}"]
    body = [
        [r.algo, f"{r.train_s:.2f}", f"{r.map:.4f}", f"{r.ndcg:.4f}", f"{r.precision:.4f}", f"{r.recall:.4f}"]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    lines = [line(header), "  ".join("-" * w for w in widths), *(line(cells) for cells in body)]
    return "\n".join(lines)
