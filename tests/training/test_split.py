from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.errors import DataError
from training.split import holdout_folds, holdout_per_user, index_interactions, item_folds, msr_split


def _reference_stratified_split(data: pd.DataFrame, ratio: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Microsoft Recommenders 1.2.1's _do_stratification(filter_by="item", min_rating=1, is_random=True)."""
    data = data.copy()
    np.random.seed(seed)
    data["random"] = np.random.rand(data.shape[0])
    data = data.sort_values(["item", "random"])
    groups = data.groupby("item")
    data["count"] = groups["item"].transform("count")
    data["rank"] = groups.cumcount() + 1
    data = data.drop("random", axis=1)
    splits, prev = [], None
    for threshold in np.cumsum([ratio, 1 - ratio]):
        cond = data["rank"] <= round(threshold * data["count"])
        if prev is not None:
            cond &= data["rank"] > round(prev * data["count"])
        splits.append(data[cond].drop(["rank", "count"], axis=1))
        prev = threshold
    return splits[0], splits[1]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    items = (rng.pareto(1.2, n) * 3).astype(int) % 200
    return pd.DataFrame({"user": rng.integers(0, 300, n), "item": items, "rating": rng.integers(1, 6, n)})


@pytest.mark.parametrize("seed", [42, 7])
def test_msr_split_matches_recommenders_row_for_row(seed: int) -> None:
    df = _frame(5000, seed)
    train, test = msr_split(df, seed=seed)
    ref_train, ref_test = _reference_stratified_split(df, 0.75, seed)
    assert train.index.tolist() == ref_train.index.tolist()
    assert test.index.tolist() == ref_test.index.tolist()
    assert list(train.columns) == list(df.columns)


def test_msr_split_is_per_item_and_rounds_each_items_share_half_to_even() -> None:
    sizes = {"a": 4, "b": 1, "c": 2, "d": 3, "e": 5, "f": 10}  # 0.75 x size: 3, 0.75, 1.5, 2.25, 3.75, 7.5
    df = pd.DataFrame({"item": [item for item, n in sizes.items() for _ in range(n)]})
    df["user"] = range(len(df))
    train, test = msr_split(df)
    assert train["item"].value_counts().to_dict() == {"a": 3, "b": 1, "c": 2, "d": 2, "e": 4, "f": 8}
    assert test["item"].value_counts().to_dict() == {"a": 1, "d": 1, "e": 1, "f": 2}


def test_msr_split_needs_the_columns() -> None:
    with pytest.raises(DataError):
        msr_split(pd.DataFrame({"user": [1]}))


def test_index_interactions_aligns_train_and_test() -> None:
    train = pd.DataFrame({"user": ["u1", "u1", "u2", "u2"], "item": ["i1", "i2", "i2", "i2"]})
    test = pd.DataFrame({"user": ["u1", "u2", "u3", "u1"], "item": ["i2", "i9", "i1", "i1"]})
    ix = index_interactions(train, test)
    assert ix.user_ids.tolist() == ["u1", "u2"]
    assert ix.item_ids.tolist() == ["i1", "i2"]
    assert ix.train.toarray().tolist() == [[1, 1], [0, 2]]
    assert ix.unseen_item_ids.tolist() == ["i9"]
    assert ix.relevant.toarray().tolist() == [[1, 1, 0], [0, 0, 1]]
    assert (ix.dropped_test_users, ix.dropped_test_rows) == (1, 1)


def test_holdout_per_user_is_seeded_and_partitions_each_row() -> None:
    rng = np.random.default_rng(0)
    m = sp.random(200, 80, density=0.1, format="csr", random_state=1, dtype=np.float32)
    m.data[:] = rng.integers(1, 4, m.nnz)
    fit, val = holdout_per_user(m, fraction=0.2, seed=5)
    fit2, val2 = holdout_per_user(m, fraction=0.2, seed=5)
    assert (fit != fit2).nnz == 0 and (val != val2).nnz == 0
    assert ((fit + val.multiply(m)) != m).nnz == 0  # nothing lost, weights kept in fit
    assert fit.multiply(val).nnz == 0
    n = np.diff(m.indptr)
    held = np.diff(val.indptr)
    assert (held == np.minimum(np.floor(0.2 * n + 0.5), np.maximum(n - 1, 0))).all()
    assert (np.diff(fit.indptr)[n > 0] >= 1).all()
    other_fit, _ = holdout_per_user(m, fraction=0.2, seed=6)
    assert (fit != other_fit).nnz > 0


def test_folds_of_one_seed_hold_out_disjoint_interactions() -> None:
    m = sp.random(300, 60, density=0.2, format="csr", random_state=2, dtype=np.float32)
    m.data[:] = 1.0
    _, first = holdout_per_user(m, fraction=0.2, seed=4, fold=0)
    fit, second = holdout_per_user(m, fraction=0.2, seed=4, fold=1)
    assert first.multiply(second).nnz == 0 and second.nnz == pytest.approx(first.nnz, rel=0.1)
    assert ((fit + second) != m).nnz == 0
    assert (np.diff(fit.indptr)[np.diff(m.indptr) > 0] >= 1).all()  # everyone keeps something to learn from
    with pytest.raises(ValueError, match="fold"):
        holdout_per_user(m, fold=-1)


def test_holdout_folds_of_one_draw_are_the_folds_drawn_one_by_one() -> None:
    m = sp.random(120, 50, density=0.2, format="csr", random_state=7, dtype=np.float32)
    both = holdout_folds(m, folds=(0, 1), fraction=0.25, seed=2)
    for fold, (fit, held) in enumerate(both):
        one_fit, one_held = holdout_per_user(m, fraction=0.25, seed=2, fold=fold)
        assert (fit != one_fit).nnz == 0 and (held != one_held).nnz == 0
    assert both[0][1].multiply(both[1][1]).nnz == 0


def test_item_folds_repeat_the_msr_draws_and_are_disjoint() -> None:
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"user": rng.integers(0, 80, 2000), "item": rng.integers(0, 40, 2000)})
    train, test = msr_split(df, seed=9)
    (rest0, fold0), (rest1, fold1) = item_folds(df, n=2, seed=9)
    assert fold0.index.equals(test.index) and rest0.index.equals(train.index)  # fold 0 is msr_split's test
    assert fold1.index.intersection(fold0.index).empty
    assert len(rest1) + len(fold1) == len(df) and len(fold1) == pytest.approx(0.25 * len(df), rel=0.1)
    for item, rows in df.groupby("item"):  # a quarter of each item's rows, cut where msr_split cuts
        n = len(rows)
        assert (fold1["item"] == item).sum() == round(0.75 * n) - round(0.5 * n)
    with pytest.raises(ValueError, match="n must be between 1 and 4"):
        item_folds(df, n=5)
