"""Offline ranking metrics over whole user batches, vectorised with numpy and scipy.

Conventions follow the Microsoft Recommenders python evaluation (``recommenders/evaluation/
python_evaluation.py``) that produced their MovieLens benchmark table, so numbers are comparable:

- precision@k = hits in the top k / k (k, not the list length, even when fewer than k were given);
- recall@k = hits in the top k / number of relevant items;
- nDCG@k = binary gains with a log2(rank + 1) discount over the ideal DCG of min(k, n_relevant) hits
  (Recommenders' default natural-log discount gives the same ratio);
- MAP = their ``map``: the sum of precision at each hit's rank within the top k, divided by the
  user's number of relevant items (not by min(k, n_relevant) as their later ``map_at_k`` does);
  the column their benchmark notebook reports as "MAP".

Every mean is over users with at least one relevant item. ``top_ids`` may be padded with -1 where
fewer than k items could be recommended; relevant columns beyond the recommendable catalogue
(test items never seen in training) count in the denominators and can never be hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.stats import rankdata

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def hit_matrix(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix) -> BoolArray:
    """``hits[u, j]`` is True where the j-th recommendation of user u is relevant to u."""
    top = np.asarray(top_ids, dtype=np.int64)
    if top.ndim != 2 or top.shape[0] != relevant.shape[0]:
        raise ValueError(f"top_ids must be (n_users={relevant.shape[0]}, k), got {top.shape}")
    if top.size == 0:
        return np.zeros(top.shape, dtype=bool)
    valid = top >= 0
    rows = np.broadcast_to(np.arange(top.shape[0])[:, None], top.shape)
    looked_up = np.asarray(relevant[rows[valid], top[valid]]).ravel() != 0
    hits = np.zeros(top.shape, dtype=bool)
    hits[valid] = looked_up
    return hits


def relevant_counts(relevant: sp.csr_matrix) -> IntArray:
    """Number of relevant items per user (explicit zeros do not count)."""
    csr = sp.csr_matrix(relevant)
    csr.eliminate_zeros()
    return np.diff(csr.indptr).astype(np.int64)


@dataclass(frozen=True)
class UserMetrics:
    """Per-user values at one k, so breakdowns (tier, cold/warm) are masked means, not recomputation."""

    k: int
    precision: FloatArray
    recall: FloatArray
    ndcg: FloatArray
    average_precision: FloatArray
    n_relevant: IntArray

    @property
    def evaluable(self) -> BoolArray:
        return self.n_relevant > 0


def _discounts(k: int) -> FloatArray:
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def user_metrics(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int | None = None) -> UserMetrics:
    """Precision, recall, nDCG and average precision of each user's list truncated to k."""
    top = np.asarray(top_ids, dtype=np.int64)
    k = top.shape[1] if k is None else k
    if k <= 0:
        raise ValueError("k must be positive")
    top = top[:, :k]
    hits = hit_matrix(top, relevant)
    n_rel = relevant_counts(relevant)
    width = hits.shape[1]
    n_hits = hits.sum(axis=1)
    safe_rel = np.maximum(n_rel, 1).astype(np.float64)

    precision = n_hits / float(k)
    recall = n_hits / safe_rel
    disc = _discounts(k)
    dcg = (hits * disc[:width]).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    idcg = ideal_cum[np.minimum(n_rel, k)]
    ndcg = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
    ranks = np.arange(1, width + 1, dtype=np.float64)
    precision_at_hit = np.cumsum(hits, axis=1) / ranks * hits
    average_precision = precision_at_hit.sum(axis=1) / safe_rel
    return UserMetrics(k, precision, recall, ndcg, average_precision, n_rel)


def auc_per_user(
    scores: npt.NDArray[np.floating],
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix | None = None,
    *,
    n_negatives: int | None = None,
    seed: int = 0,
) -> FloatArray:
    """Per-user ROC AUC from full score rows: the chance a relevant item outscores a non-relevant one.

    Excluded items (e.g. already seen in training) are neither positives nor negatives; ties count
    half. With ``n_negatives`` only a seeded random sample of that many non-relevant items per user
    is compared (cheaper estimate, same expectation). Users without a positive or a negative get NaN.
    ``relevant`` may have more columns than ``scores`` (unrecommendable items); those are ignored.
    """
    s = np.array(scores, dtype=np.float64)
    n_items = s.shape[1]
    pos = sp.csr_matrix(relevant)[:, :n_items].toarray() != 0
    drop = np.zeros_like(pos) if exclude is None else sp.csr_matrix(exclude)[:, :n_items].toarray() != 0
    pos &= ~drop
    neg = ~pos & ~drop
    if n_negatives is not None:
        keys = np.random.default_rng(seed).random(s.shape)
        keys[~neg] = np.inf
        kth = np.sort(keys, axis=1)[:, min(n_negatives, n_items) - 1 : min(n_negatives, n_items)]
        neg &= keys <= kth
    candidate = pos | neg
    s[~candidate] = -np.inf
    ranks = rankdata(s, method="average", axis=1)
    n_out = (~candidate).sum(axis=1)
    n_pos = pos.sum(axis=1).astype(np.float64)
    n_neg = neg.sum(axis=1).astype(np.float64)
    pos_rank_sum = np.where(pos, ranks, 0.0).sum(axis=1) - n_pos * n_out
    denom = n_pos * n_neg
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_rank_sum - n_pos * (n_pos + 1) / 2.0) / denom
    auc[denom == 0] = np.nan
    return auc


def catalogue_coverage(top_ids: npt.NDArray[np.integer], n_catalogue: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    ids = np.asarray(top_ids).ravel()
    ids = ids[ids >= 0]
    return float(np.unique(ids).size / n_catalogue) if n_catalogue else 0.0


def item_self_information(item_user_counts: npt.NDArray[np.integer], n_users: int) -> FloatArray:
    """-log2 p(i), p(i) = share of training users who interacted with item i (counts floored at 1)."""
    counts = np.maximum(np.asarray(item_user_counts, dtype=np.float64), 1.0)
    return -np.log2(counts / max(n_users, 1))


def novelty_per_user(top_ids: npt.NDArray[np.integer], self_information: FloatArray) -> FloatArray:
    """Mean self-information of each user's recommended items (NaN for an empty list)."""
    top = np.asarray(top_ids, dtype=np.int64)
    valid = top >= 0
    info = np.where(valid, self_information[np.where(valid, top, 0)], 0.0)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, info.sum(axis=1) / n, np.nan)


@dataclass(frozen=True)
class RankingMetrics:
    """The headline numbers of one ranking; ``as_dict`` names them for MLflow and JSON."""

    k: int
    map: float
    ndcg: float
    precision: float
    recall: float
    auc: float
    coverage: float
    novelty: float
    n_users: int

    def as_dict(self) -> dict[str, float]:
        return {
            "map": self.map,
            f"ndcg_at_{self.k}": self.ndcg,
            f"precision_at_{self.k}": self.precision,
            f"recall_at_{self.k}": self.recall,
            "auc": self.auc,
            "coverage": self.coverage,
            "novelty": self.novelty,
        }


def _mean(values: FloatArray | None, mask: BoolArray) -> float:
    if values is None or not mask.any():
        return math.nan
    chosen = values[mask]
    chosen = chosen[~np.isnan(chosen)]
    return float(chosen.mean()) if chosen.size else math.nan


def summarise(
    per_user: UserMetrics,
    top_ids: npt.NDArray[np.integer],
    *,
    n_catalogue: int,
    mask: BoolArray | None = None,
    auc: FloatArray | None = None,
    novelty: FloatArray | None = None,
) -> RankingMetrics:
    """Average per-user values over users with a relevant item (and within ``mask`` when given)."""
    users = per_user.evaluable if mask is None else per_user.evaluable & mask
    top = np.asarray(top_ids)[:, : per_user.k]
    return RankingMetrics(
        k=per_user.k,
        map=_mean(per_user.average_precision, users),
        ndcg=_mean(per_user.ndcg, users),
        precision=_mean(per_user.precision, users),
        recall=_mean(per_user.recall, users),
        auc=_mean(auc, users),
        coverage=catalogue_coverage(top[users], n_catalogue) if users.any() else math.nan,
        novelty=_mean(novelty, users),
        n_users=int(users.sum()),
    )


def ranking_metrics(
    top_ids: npt.NDArray[np.integer],
    relevant: sp.csr_matrix,
    *,
    k: int | None = None,
    n_catalogue: int | None = None,
    item_user_counts: npt.NDArray[np.integer] | None = None,
    n_train_users: int | None = None,
    auc: FloatArray | None = None,
    mask: BoolArray | None = None,
) -> RankingMetrics:
    """All headline metrics of one batch of top-k lists in one call.

    ``n_catalogue`` defaults to the number of relevance columns; novelty needs the training
    popularity (``item_user_counts`` per item and ``n_train_users``) and is NaN without it; ``auc``
    takes per-user values from :func:`auc_per_user`.
    """
    per_user = user_metrics(top_ids, relevant, k)
    nov = None
    if item_user_counts is not None:
        info = item_self_information(item_user_counts, n_train_users or relevant.shape[0])
        nov = novelty_per_user(np.asarray(top_ids)[:, : per_user.k], info)
    return summarise(
        per_user,
        top_ids,
        n_catalogue=n_catalogue if n_catalogue is not None else relevant.shape[1],
        mask=mask,
        auc=auc,
        novelty=nov,
    )


def ratio_of_means(numerator: FloatArray, denominator: FloatArray) -> tuple[float, float]:
    """``mean(numerator) / mean(denominator)`` over the same users (paired) and its standard error by the
    delta method: ``std(numerator - ratio * denominator) / (sqrt(n) * mean(denominator))``. NaN where the
    denominator's mean is not positive; an infinite error with fewer than two users."""
    a, b = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"numerator {a.shape} and denominator {b.shape} must pair the same users")
    if not len(b) or not b.mean() > 0:
        return math.nan, math.nan
    ratio = float(a.mean() / b.mean())
    if len(b) < 2:
        return ratio, math.inf
    return ratio, float((a - ratio * b).std(ddof=1) / (math.sqrt(len(b)) * b.mean()))


def precision_at_k(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int) -> float:
    return ranking_metrics(top_ids, relevant, k=k).precision


def recall_at_k(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int) -> float:
    return ranking_metrics(top_ids, relevant, k=k).recall


def ndcg_at_k(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int) -> float:
    return ranking_metrics(top_ids, relevant, k=k).ndcg


def mean_average_precision(top_ids: npt.NDArray[np.integer], relevant: sp.csr_matrix, k: int) -> float:
    return ranking_metrics(top_ids, relevant, k=k).map
