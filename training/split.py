"""Train/test splits and the index maps that turn interaction frames into aligned sparse matrices.

``msr_split`` reproduces the split of the Microsoft Recommenders MovieLens benchmark
(``python_stratified_split(df, ratio=0.75, min_rating=1, filter_by="item", seed=42)`` in
``recommenders/datasets/python_splitters.py``, release 1.2.1) row for row:

- ``np.random.seed(seed)`` then one ``np.random.rand`` draw per row, in the frame's row order;
- rows sorted by (item, draw); within each item, ``position`` counts from 1;
- train = the rows with ``position <= round(ratio x count)``, rounded half to even as pandas rounds,
  test = the rest. So an item with one or two interactions is train-only, and one with three puts
  one in test (the releases before 1.2 shuffled each item on its own with the same seed, and cut at
  the same rounded count);
- ``min_rating=1`` means no minimum-count filter; ratings are not thresholded; duplicate
  (user, item) rows are kept as they are. Both frames come back in (item, draw) order with the
  original index, without the helper columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from recsys.errors import DataError


def msr_split(
    df: pd.DataFrame,
    *,
    ratio: float = 0.75,
    seed: int = 42,
    col_user: str = "user",
    col_item: str = "item",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per item, a seeded random ``ratio`` of its interactions to train and the rest to test."""
    return item_folds(df, n=1, ratio=ratio, seed=seed, col_user=col_user, col_item=col_item)[0]


def item_folds(
    df: pd.DataFrame,
    *,
    n: int,
    ratio: float = 0.75,
    seed: int = 42,
    col_user: str = "user",
    col_item: str = "item",
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """``msr_split``'s draws and positions, drawn once, as ``n`` disjoint (rest, held-out) pairs: with
    ``cut(t) = round(t x count)`` per item (half to even), fold ``f`` holds out the rows whose position
    falls in ``(cut(ratio - f x (1 - ratio)), cut(ratio - (f - 1) x (1 - ratio))]``, so fold 0 is
    ``msr_split``'s test and a search can score fold 0 of the training rows and confirm its choice on
    fold 1, both under the benchmark's own protocol."""
    if not 0.0 < ratio < 1.0:
        raise ValueError("ratio must be strictly between 0 and 1")
    width = 1.0 - ratio
    most = int(np.ceil(1.0 / width - 1e-9))
    if not 1 <= n <= most:
        raise ValueError(f"n must be between 1 and {most} folds for ratio {ratio}")
    for col in (col_user, col_item):
        if col not in df.columns:
            raise DataError(f"interactions have no {col!r} column")
    draws = np.random.RandomState(seed).random_sample(len(df))  # the legacy stream np.random.rand uses
    item_codes, _ = pd.factorize(df[col_item], sort=True)
    order = np.lexsort((draws, item_codes))
    codes_sorted = item_codes[order]
    counts = np.bincount(codes_sorted)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position = np.arange(len(order)) - starts[codes_sorted] + 1
    count = counts[codes_sorted].astype(np.float64)

    def cut(threshold: float) -> npt.NDArray[np.float64]:
        return np.round(threshold * count)  # half to even, as pandas rounds a Series

    ordered = df.iloc[order]
    folds = []
    for fold in range(n):
        held = position > cut(ratio - fold * width)
        if fold:  # fold 0 runs to the item's last row
            held &= position <= cut(ratio - (fold - 1) * width)
        folds.append((ordered[~held], ordered[held]))
    return folds


@dataclass(frozen=True)
class IndexedInteractions:
    """Train and test interactions as matrices in one index space.

    Rows are the users seen in training (``user_ids``); the first ``len(item_ids)`` columns are the
    items seen in training. Test rows of users never seen in training are dropped (no model can rank
    for them from history; the Microsoft evaluation also scores only users it has predictions for)
    and counted in ``dropped_test_rows``/``dropped_test_users``. Test items never seen in training
    are kept as extra relevance columns after the training items (``unseen_item_ids``): they count
    in each user's number of relevant items, as in the Microsoft evaluation, and can never be hit.
    """

    train: sp.csr_matrix  # users x items, float32 weights
    relevant: sp.csr_matrix  # users x (items + unseen items), 1.0 where relevant
    user_ids: npt.NDArray[np.str_]
    item_ids: npt.NDArray[np.str_]
    unseen_item_ids: npt.NDArray[np.str_]
    dropped_test_users: int
    dropped_test_rows: int

    @property
    def n_users(self) -> int:
        return int(self.train.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.train.shape[1])


def _as_str(values: pd.Series) -> npt.NDArray[np.str_]:
    return values.astype(str).to_numpy().astype(np.str_)


def index_interactions(
    train_df: pd.DataFrame,
    test_df: pd.DataFrame,
    *,
    col_user: str = "user",
    col_item: str = "item",
    col_weight: str | None = None,
) -> IndexedInteractions:
    """Index maps from the training frame, then the train matrix and the test relevance matrix.

    Ids are compared as strings and sorted, so the result does not depend on row order. Repeated
    (user, item) rows are summed in ``train`` (weight 1 each without ``col_weight``) and count once
    in ``relevant``.
    """
    train_users = _as_str(train_df[col_user])
    train_items = _as_str(train_df[col_item])
    user_ids = np.unique(train_users)
    item_ids = np.unique(train_items)
    rows = np.searchsorted(user_ids, train_users)
    cols = np.searchsorted(item_ids, train_items)
    if col_weight is None:
        weights = np.ones(len(train_df), dtype=np.float32)
    else:
        weights = pd.to_numeric(train_df[col_weight], errors="coerce").fillna(0.0).to_numpy(np.float32)
    train = sp.csr_matrix((weights, (rows, cols)), shape=(len(user_ids), len(item_ids)), dtype=np.float32)
    train.sum_duplicates()

    test_users = _as_str(test_df[col_user])
    test_items = _as_str(test_df[col_item])
    known_user = np.isin(test_users, user_ids)
    kept_users, kept_items = test_users[known_user], test_items[known_user]
    known_item = np.isin(kept_items, item_ids)
    unseen_item_ids = np.unique(kept_items[~known_item])
    test_rows = np.searchsorted(user_ids, kept_users)
    test_cols = np.where(
        known_item,
        np.searchsorted(item_ids, kept_items),
        len(item_ids) + np.searchsorted(unseen_item_ids, kept_items),
    )
    shape = (len(user_ids), len(item_ids) + len(unseen_item_ids))
    relevant = sp.csr_matrix((np.ones(len(test_rows), dtype=np.float32), (test_rows, test_cols)), shape=shape)
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    return IndexedInteractions(
        train=train,
        relevant=relevant,
        user_ids=user_ids,
        item_ids=item_ids,
        unseen_item_ids=unseen_item_ids,
        dropped_test_users=int(np.unique(test_users[~known_user]).size),
        dropped_test_rows=int((~known_user).sum()),
    )


def holdout_per_user(
    interactions: sp.csr_matrix, *, fraction: float = 0.2, seed: int = 0, fold: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split each user's stored interactions into (fit, validation) for tuning, never touching test.

    Per user, round(fraction x n) random interactions (at most n - 1, so everyone keeps one to learn
    from) move to validation; the validation matrix is binary. Seeded and independent of threads.
    Folds of one seed hold out disjoint interactions: fold ``f`` takes the next round(fraction x n) of
    the user's shuffled interactions after those of folds 0 to f - 1 (fewer, or none, when they run out).
    """
    return holdout_folds(interactions, folds=(fold,), fraction=fraction, seed=seed)[0]


def holdout_folds(
    interactions: sp.csr_matrix, *, folds: Sequence[int], fraction: float = 0.2, seed: int = 0
) -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
    """``holdout_per_user`` for each of ``folds``, from one shuffle of each user's interactions."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be strictly between 0 and 1")
    if any(fold < 0 for fold in folds):
        raise ValueError("fold must be 0 or more")
    csr = sp.csr_matrix(interactions, dtype=np.float32, copy=True)
    csr.sum_duplicates()
    csr.eliminate_zeros()
    n_per_row = np.diff(csr.indptr)
    row_of = np.repeat(np.arange(csr.shape[0]), n_per_row)
    keys = np.random.default_rng(seed).random(csr.nnz)
    order = np.lexsort((keys, row_of))
    position = np.empty(csr.nnz, dtype=np.int64)
    position[order] = np.arange(csr.nnz) - csr.indptr[row_of[order]]
    n_hold = np.minimum(np.floor(fraction * n_per_row + 0.5), np.maximum(n_per_row - 1, 0)).astype(np.int64)
    per_entry = n_hold[row_of]
    coo = csr.tocoo()
    out = []
    for fold in folds:
        held = (position >= fold * per_entry) & (position < (fold + 1) * per_entry)
        fit = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=csr.shape)
        validation = sp.csr_matrix(
            (np.ones(int(held.sum()), dtype=np.float32), (coo.row[held], coo.col[held])), shape=csr.shape
        )
        out.append((fit, validation))
    return out
