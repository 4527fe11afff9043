from __future__ import annotations

import math
from statistics import mean

import numpy as np
import pytest
import scipy.sparse as sp

from training.metrics import (
    RankingMetrics,
    auc_per_user,
    catalogue_coverage,
    hit_matrix,
    item_self_information,
    mean_average_precision,
    ndcg_at_k,
    precision_at_k,
    ranking_metrics,
    ratio_of_means,
    recall_at_k,
)


def _relevant(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    r = [u for u, items in enumerate(rows) for _ in items]
    c = [i for items in rows for i in items]
    return sp.csr_matrix((np.ones(len(c)), (r, c)), shape=(len(rows), n_items))


def _reference(top: np.ndarray, rows: list[list[int]], k: int) -> dict[str, float]:
    """Per-user loops written straight from the Microsoft Recommenders formulas."""
    prec, rec, ndcg, ap = [], [], [], []
    for u, items in enumerate(rows):
        if not items:
            continue
        rel = set(items)
        hits = [int(i) in rel for i in top[u, :k] if i >= 0]
        prec.append(sum(hits) / k)
        rec.append(sum(hits) / len(rel))
        dcg = sum(h / math.log(1 + r) for r, h in enumerate(hits, start=1))
        idcg = sum(1 / math.log(1 + r) for r in range(1, min(k, len(rel)) + 1))
        ndcg.append(dcg / idcg)
        found, total = 0, 0.0
        for r, h in enumerate(hits, start=1):
            if h:
                found += 1
                total += found / r
        ap.append(total / len(rel))
    return {"precision": mean(prec), "recall": mean(rec), "ndcg": mean(ndcg), "map": mean(ap)}


def test_hand_computed_example() -> None:
    # user 0: relevant {1, 3}; list [1, 2, 3] -> hits at ranks 1 and 3
    # user 1: relevant {0}; list [2, 0, 1] -> hit at rank 2
    # user 2: nothing relevant -> ignored by every mean
    top = np.array([[1, 2, 3], [2, 0, 1], [0, 1, 2]])
    relevant = _relevant([[1, 3], [0], []], 4)
    m = ranking_metrics(top, relevant, k=3)
    assert m.n_users == 2
    assert m.precision == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m.recall == pytest.approx((1.0 + 1.0) / 2)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1.0
    assert m.ndcg == pytest.approx((ndcg0 + ndcg1) / 2)
    ap0 = (1 / 1 + 2 / 3) / 2
    ap1 = (1 / 2) / 1
    assert m.map == pytest.approx((ap0 + ap1) / 2)
    assert m.coverage == pytest.approx(1.0)  # items 0..3 all appear in the evaluated lists


def test_map_divides_by_all_relevant_items_not_k() -> None:
    # 15 relevant items, perfect top-10: the Recommenders "map" is 10/15, map_at_k would be 1.
    top = np.arange(10)[None, :]
    relevant = _relevant([list(range(15))], 20)
    assert mean_average_precision(top, relevant, 10) == pytest.approx(10 / 15)
    assert ndcg_at_k(top, relevant, 10) == pytest.approx(1.0)
    assert precision_at_k(top, relevant, 10) == pytest.approx(1.0)
    assert recall_at_k(top, relevant, 10) == pytest.approx(10 / 15)


def test_short_lists_are_padded_and_precision_divides_by_k() -> None:
    top = np.array([[2, -1, -1]])
    relevant = _relevant([[2]], 3)
    m = ranking_metrics(top, relevant, k=3)
    assert m.precision == pytest.approx(1 / 3)
    assert m.ndcg == pytest.approx(1.0)
    assert m.coverage == pytest.approx(1 / 3)


def test_unrecommendable_relevant_columns_count_in_denominators() -> None:
    top = np.array([[0, 1]])
    relevant = _relevant([[0, 5]], 6)  # item 5 is a test-only item the model cannot rank
    m = ranking_metrics(top, relevant, k=2, n_catalogue=4)
    assert m.recall == pytest.approx(0.5)
    assert m.map == pytest.approx(0.5)
    assert m.coverage == pytest.approx(2 / 4)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_matches_per_user_reference_on_random_lists(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 40
    rows = [sorted(rng.choice(n_items, size=rng.integers(0, 12), replace=False).tolist()) for _ in range(n_users)]
    top = np.stack([rng.permutation(n_items)[:10] for _ in range(n_users)])
    m = ranking_metrics(top, _relevant(rows, n_items), k=k)
    ref = _reference(top, rows, k)
    assert m.precision == pytest.approx(ref["precision"])
    assert m.recall == pytest.approx(ref["recall"])
    assert m.ndcg == pytest.approx(ref["ndcg"])
    assert m.map == pytest.approx(ref["map"])


def test_hit_matrix_rejects_misaligned_inputs() -> None:
    with pytest.raises(ValueError):
        hit_matrix(np.zeros((3, 2), dtype=int), _relevant([[0]], 2))


def test_auc_counts_pairs_and_ignores_excluded_items() -> None:
    scores = np.array([[0.9, 0.8, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4], [1.0, 1.0, 1.0, 1.0]])
    relevant = _relevant([[0, 2], [3], [1]], 4)
    exclude = _relevant([[1], [], []], 4)
    auc = auc_per_user(scores, relevant, exclude)
    # user 0: positives 0.9, 0.1 vs negative 0.5 (0.8 excluded) -> 1 of 2 pairs
    assert auc[0] == pytest.approx(0.5)
    assert auc[1] == pytest.approx(1.0)
    assert auc[2] == pytest.approx(0.5)  # all tied


def test_auc_is_nan_without_positives_and_sampled_auc_is_close() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(50, 300))
    truth = scores > 1.2
    truth[0] = False
    relevant = sp.csr_matrix(truth.astype(np.float64))
    scores = scores + rng.normal(scale=1.0, size=scores.shape)
    full = auc_per_user(scores, relevant)
    sampled = auc_per_user(scores, relevant, n_negatives=100, seed=1)
    assert math.isnan(full[0])
    assert np.nanmean(full) == pytest.approx(np.nanmean(sampled), abs=0.03)
    assert 0.7 < np.nanmean(full) < 0.95


def test_coverage_and_novelty() -> None:
    assert catalogue_coverage(np.array([[0, 1], [1, -1]]), 4) == pytest.approx(0.5)
    info = item_self_information(np.array([10, 5, 0]), 10)
    assert info.tolist() == pytest.approx([0.0, 1.0, math.log2(10)])
    top = np.array([[0, 1], [1, 2]])
    m = ranking_metrics(top, _relevant([[0], [2]], 3), k=2, item_user_counts=np.array([10, 5, 0]), n_train_users=10)
    assert m.novelty == pytest.approx(((0 + 1) / 2 + (1 + math.log2(10)) / 2) / 2)


def test_as_dict_keys_follow_k() -> None:
    m = RankingMetrics(5, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 7.0, 3)
    assert list(m.as_dict()) == ["map", "ndcg_at_5", "precision_at_5", "recall_at_5", "auc", "coverage", "novelty"]


def test_no_evaluable_users_gives_nan() -> None:
    m = ranking_metrics(np.array([[0, 1]]), _relevant([[]], 2), k=2)
    assert m.n_users == 0
    assert math.isnan(m.ndcg)


def test_ratio_of_means_error_agrees_with_a_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    oracle = rng.random(800)
    model = np.clip(0.8 * oracle + 0.2 * rng.standard_normal(800), 0.0, None)
    ratio, se = ratio_of_means(model, oracle)
    assert ratio == pytest.approx(model.mean() / oracle.mean())
    draws = rng.integers(0, 800, (2000, 800))
    boot = model[draws].mean(axis=1) / oracle[draws].mean(axis=1)
    assert se == pytest.approx(boot.std(), rel=0.1)
    # the same ranking as the oracle's: no uncertainty in the ratio
    assert ratio_of_means(oracle, oracle) == (pytest.approx(1.0), pytest.approx(0.0))


def test_ratio_of_means_edge_cases() -> None:
    assert all(math.isnan(v) for v in ratio_of_means(np.ones(3), np.zeros(3)))
    assert ratio_of_means(np.array([0.5]), np.array([1.0])) == (0.5, math.inf)
    with pytest.raises(ValueError, match="pair the same users"):
        ratio_of_means(np.ones(3), np.ones(4))
