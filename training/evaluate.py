"""One honest offline evaluation of a fitted model (or of a score matrix, such as a reference ranking):
headline metrics plus the breakdowns that matter here (tier, cold vs warm members, cold offers, and
what kinds of relevant responses reach the top k), score distributions, and the gap to an oracle with
its standard error.

Scores are computed from the exported embeddings exactly as ``Recommender.recommend`` and serving
do (``member @ offer + biases``), in batches, so what is measured is what would be served. Only
members with at least one relevant offer are ranked (no one else counts in any mean). Deterministic:
samples for the score distributions use a fixed seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.base import Recommender, TrainingSet, score_rows, top_k
from recsys.tiers import Tier
from training.metrics import (
    BoolArray,
    FloatArray,
    RankingMetrics,
    UserMetrics,
    auc_per_user,
    hit_matrix,
    item_self_information,
    novelty_per_user,
    ratio_of_means,
    summarise,
    user_metrics,
)

CURVE_MAX_K = 20
CURVE_METRICS = ("precision", "recall", "ndcg", "map")
_SAMPLE = 20_000


@dataclass(frozen=True)
class ScoreSample:
    """Seeded samples of model scores: of the recommended lists, of relevant pairs, of other pairs."""

    recommended: FloatArray
    relevant: FloatArray
    irrelevant: FloatArray

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for name in ("recommended", "relevant", "irrelevant"):
            values: FloatArray = getattr(self, name)
            if values.size:
                out[f"score_{name}_mean"] = float(values.mean())
                out[f"score_{name}_std"] = float(values.std())
        return out


@dataclass(frozen=True)
class ColdOfferMetrics:
    """How offers without training interactions fare: recall restricted to them, and exposure."""

    k: int
    recall: float  # over members with a relevant cold offer: cold hits / relevant cold offers
    share_of_recommendations: float  # share of all recommended slots that hold a cold offer
    n_offers: int
    n_members: int

    def as_dict(self) -> dict[str, float]:
        return {
            f"recall_at_{self.k}": self.recall,
            "share_of_recommendations": self.share_of_recommendations,
            "n_offers": float(self.n_offers),
            "n_members": float(self.n_members),
        }


@dataclass(frozen=True)
class KindHits:
    """Relevant test responses of one kind (``relevant`` of them) and the share of them that the model,
    and the oracle where there is one, ranked in the top k. Pooled over members, so a kind that few
    members have still counts each of its responses once."""

    relevant: int
    model: float
    oracle: float = math.nan


# Labels each relevant (member, offer) pair, given as indices into the training set's members and
# offers, with the kind of response it is (an offer category, say).
PairLabeller = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], Sequence[str]]


@dataclass(frozen=True)
class EvaluationReport:
    k: int
    overall: RankingMetrics
    by_tier: dict[str, RankingMetrics]
    cold_members: RankingMetrics
    warm_members: RankingMetrics
    cold_offers: ColdOfferMetrics | None
    curve: dict[str, FloatArray]  # metric -> mean at k = 1 .. CURVE_MAX_K
    scores: ScoreSample
    n_members: int
    n_evaluated: int
    oracle: RankingMetrics | None = None
    oracle_curve: dict[str, FloatArray] | None = field(default=None)
    # standard error of ndcg_to_oracle over the evaluated members: with a thousand of them it is a few
    # hundredths, so a ratio is only known to about twice that either way
    ndcg_to_oracle_se: float = math.nan
    # breakdown name -> kind -> hits, one entry per labeller given to ``evaluate``
    breakdowns: dict[str, dict[str, KindHits]] = field(default_factory=dict)

    @property
    def ndcg_to_oracle(self) -> float:
        if self.oracle is None or not self.oracle.ndcg > 0:
            return math.nan
        return self.overall.ndcg / self.oracle.ndcg

    def as_flat_dict(self) -> dict[str, float]:
        """Flat ``name -> value`` for MLflow ``log_metrics``; NaN (undefined) values are left out."""
        out: dict[str, float] = dict(self.overall.as_dict())
        for tier, metrics in self.by_tier.items():
            out |= {f"tier_{tier}_{key}": value for key, value in metrics.as_dict().items()}
            out[f"tier_{tier}_n_members"] = float(metrics.n_users)
        for name, metrics in (("cold_members", self.cold_members), ("warm_members", self.warm_members)):
            out |= {f"{name}_{key}": value for key, value in metrics.as_dict().items()}
            out[f"{name}_n"] = float(metrics.n_users)
        if self.cold_offers is not None:
            out |= {f"cold_offers_{key}": value for key, value in self.cold_offers.as_dict().items()}
        if self.oracle is not None:
            out |= {f"oracle_{key}": value for key, value in self.oracle.as_dict().items()}
            out["ndcg_to_oracle"] = self.ndcg_to_oracle
            out["ndcg_to_oracle_se"] = self.ndcg_to_oracle_se
        for breakdown, kinds in self.breakdowns.items():
            for kind, hits in kinds.items():
                name = f"top_{self.k}/{breakdown}/{kind}"
                out[f"{name}/relevant"] = float(hits.relevant)
                out[f"{name}/model"] = hits.model
                out[f"{name}/oracle"] = hits.oracle
        out |= self.scores.summary()
        out["n_members"] = float(self.n_members)
        out["n_evaluated"] = float(self.n_evaluated)
        return {key: float(value) for key, value in out.items() if not math.isnan(value)}


@dataclass(frozen=True)
class _Ranking:
    top_ids: npt.NDArray[np.int64]  # (n_evaluated, k_max), -1 where nothing could be ranked
    auc: FloatArray
    samples: ScoreSample


ScoreRows = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating]]


def _rank(
    score_rows: ScoreRows,
    members: npt.NDArray[np.int64],
    relevant: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    k_max: int,
    n_offers: int,
    batch_size: int,
    seed: int,
) -> _Ranking:
    rng = np.random.default_rng(seed)
    width = min(k_max, n_offers)
    top_ids = np.full((len(members), width), -1, dtype=np.int64)
    auc = np.full(len(members), np.nan)
    rec_s: list[FloatArray] = []
    rel_s: list[FloatArray] = []
    irr_s: list[FloatArray] = []
    per_batch = max(1, _SAMPLE * batch_size // max(len(members), 1))
    for start in range(0, len(members), batch_size):
        rows = members[start : start + batch_size]
        scores = np.asarray(score_rows(rows), dtype=np.float64)
        rel = relevant[rows][:, :n_offers]
        exc = exclude[rows] if exclude is not None else None
        auc[start : start + len(rows)] = auc_per_user(scores, rel, exc)
        pos = rel.toarray() != 0
        masked = scores.copy()
        if exc is not None:
            drop = exc.toarray() != 0
            masked[drop] = -np.inf
            pos &= ~drop
        else:
            drop = np.zeros_like(pos)
        ids, top_scores = top_k(masked.astype(np.float32), width)
        ids[~np.isfinite(top_scores)] = -1
        top_ids[start : start + len(rows)] = ids
        finite = top_scores[np.isfinite(top_scores)]
        rec_s.append(rng.choice(finite, size=min(per_batch, finite.size), replace=False))
        rel_vals = scores[pos]
        rel_s.append(rng.choice(rel_vals, size=min(per_batch, rel_vals.size), replace=False))
        irr_vals = scores[~pos & ~drop]
        irr_s.append(rng.choice(irr_vals, size=min(per_batch, irr_vals.size), replace=False))
    empty = np.empty(0)
    samples = ScoreSample(
        recommended=np.concatenate(rec_s) if rec_s else empty,
        relevant=np.concatenate(rel_s) if rel_s else empty,
        irrelevant=np.concatenate(irr_s) if irr_s else empty,
    )
    return _Ranking(top_ids, auc, samples)


def _curve(top_ids: npt.NDArray[np.int64], relevant: sp.csr_matrix) -> dict[str, FloatArray]:
    values: dict[str, list[float]] = {name: [] for name in CURVE_METRICS}
    for k in range(1, CURVE_MAX_K + 1):
        per_user = user_metrics(top_ids, relevant, k)
        mask = per_user.evaluable
        values["precision"].append(float(per_user.precision[mask].mean()) if mask.any() else math.nan)
        values["recall"].append(float(per_user.recall[mask].mean()) if mask.any() else math.nan)
        values["ndcg"].append(float(per_user.ndcg[mask].mean()) if mask.any() else math.nan)
        values["map"].append(float(per_user.average_precision[mask].mean()) if mask.any() else math.nan)
    return {name: np.asarray(v) for name, v in values.items()}


def _cold_offer_metrics(
    top_ids: npt.NDArray[np.int64], relevant: sp.csr_matrix, cold: BoolArray, k: int
) -> ColdOfferMetrics | None:
    if not cold.any():
        return None
    top = top_ids[:, :k]
    padded = np.zeros(relevant.shape[1], dtype=bool)
    padded[: cold.size] = cold
    cold_relevant = sp.csr_matrix(relevant @ sp.diags(padded.astype(np.float32)))
    cold_relevant.eliminate_zeros()
    n_cold_rel = np.diff(cold_relevant.indptr)
    users = n_cold_rel > 0
    hits = hit_matrix(top, cold_relevant).sum(axis=1)
    recall = float((hits[users] / n_cold_rel[users]).mean()) if users.any() else math.nan
    valid = top >= 0
    share = float(cold[top[valid]].mean()) if valid.any() else math.nan
    return ColdOfferMetrics(k, recall, share, int(cold.sum()), int(users.sum()))


def evaluate(
    model: Recommender | npt.NDArray[np.floating],
    train: TrainingSet,
    relevant: sp.csr_matrix,
    *,
    k: int = 10,
    exclude: sp.csr_matrix | None = None,
    oracle_scores: npt.NDArray[np.floating] | None = None,
    cold_offers: BoolArray | None = None,
    breakdowns: Mapping[str, PairLabeller] | None = None,
    batch_size: int = 2048,
    seed: int = 0,
) -> EvaluationReport:
    """Rank every member with a relevant offer and report metrics overall and by segment.

    ``model`` is a fitted model, scored from its exported embeddings, or a members x offers score
    matrix: a reference ranking such as an oracle that is told less than the whole truth.
    ``relevant`` is members x offers in the training index space (extra trailing columns for items
    that cannot be recommended are allowed); ``exclude`` masks offers a member may not be shown
    (typically the training interactions). ``cold_offers`` defaults to offers without training
    interactions. ``oracle_scores`` (members x offers true affinity) is ranked with the same
    exclusions to show how far the model is from the best achievable ranking. Each of ``breakdowns``
    labels the relevant pairs with their kind; the report then gives, per kind, the share of its pairs
    that the model and the oracle ranked in the top k, which shows where a model trails the oracle.
    """
    n_members, n_offers = train.n_members, train.n_offers
    if relevant.shape[0] != n_members or relevant.shape[1] < n_offers:
        raise ValueError(f"relevant is {relevant.shape}, expected ({n_members}, >= {n_offers})")
    if oracle_scores is not None and oracle_scores.shape != (n_members, n_offers):
        raise ValueError(f"oracle_scores is {oracle_scores.shape}, expected {(n_members, n_offers)}")
    relevant = sp.csr_matrix(relevant)
    relevant.eliminate_zeros()
    members = np.flatnonzero(np.diff(relevant.indptr) > 0).astype(np.int64)
    rel_eval = relevant[members]
    exc_eval = sp.csr_matrix(exclude)[members] if exclude is not None else None
    k_max = max(k, CURVE_MAX_K)

    model_rows = _scorer(model, members, n_members, n_offers)
    local = np.arange(len(members), dtype=np.int64)
    ranking = _rank(model_rows, local, rel_eval, exc_eval, k_max, n_offers, batch_size, seed)

    train_counts = np.diff(sp.csc_matrix(train.interactions).indptr)
    info = item_self_information(train_counts, n_members)
    warm_member = np.diff(sp.csr_matrix(train.interactions).indptr)[members] > 0
    tiers = np.asarray(train.member_tiers)[members]

    def report_of(rk: _Ranking) -> tuple[UserMetrics, RankingMetrics, npt.NDArray[np.float64]]:
        per_user = user_metrics(rk.top_ids, rel_eval, k)
        novelty = novelty_per_user(rk.top_ids[:, :k], info)
        return per_user, summarise(per_user, rk.top_ids, n_catalogue=n_offers, auc=rk.auc, novelty=novelty), novelty

    per_user, overall, novelty = report_of(ranking)

    def segment(mask: BoolArray) -> RankingMetrics:
        return summarise(per_user, ranking.top_ids, n_catalogue=n_offers, mask=mask, auc=ranking.auc, novelty=novelty)

    by_tier = {Tier(int(t)).label: segment(tiers == t) for t in np.unique(tiers)}
    cold = cold_offers if cold_offers is not None else train_counts == 0
    if cold.shape != (n_offers,):
        raise ValueError(f"cold_offers must have one flag per offer ({n_offers}), got {cold.shape}")

    oracle = oracle_curve = None
    oracle_ranking: _Ranking | None = None
    oracle_se = math.nan
    if oracle_scores is not None:
        truth = np.asarray(oracle_scores, dtype=np.float64)

        def oracle_rows(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.floating]:
            return truth[members[rows]]

        oracle_ranking = _rank(oracle_rows, local, rel_eval, exc_eval, k_max, n_offers, batch_size, seed)
        oracle_per_user, oracle, _ = report_of(oracle_ranking)
        oracle_curve = _curve(oracle_ranking.top_ids, rel_eval)
        evaluable = per_user.evaluable
        oracle_se = ratio_of_means(per_user.ndcg[evaluable], oracle_per_user.ndcg[evaluable])[1]

    return EvaluationReport(
        k=k,
        overall=overall,
        by_tier=by_tier,
        cold_members=segment(~warm_member),
        warm_members=segment(warm_member),
        cold_offers=_cold_offer_metrics(ranking.top_ids, rel_eval, np.asarray(cold, dtype=bool), k),
        curve=_curve(ranking.top_ids, rel_eval),
        scores=ranking.samples,
        n_members=n_members,
        n_evaluated=len(members),
        oracle=oracle,
        oracle_curve=oracle_curve,
        ndcg_to_oracle_se=oracle_se,
        breakdowns=_breakdowns(breakdowns or {}, members, rel_eval, n_offers, ranking, oracle_ranking, k),
    )


def _scorer(
    model: Recommender | npt.NDArray[np.floating], members: npt.NDArray[np.int64], n_members: int, n_offers: int
) -> Callable[[npt.NDArray[np.int64]], npt.NDArray[np.floating]]:
    """Scores of a batch of the evaluated ``members`` (positions into it) against every offer."""
    if not isinstance(model, Recommender):
        scores = np.asarray(model)
        if scores.shape != (n_members, n_offers):
            raise ValueError(f"scores are {scores.shape}, expected {(n_members, n_offers)}")
        return lambda rows: scores[members[rows]]
    member_emb, offer_emb = model.member_embeddings(), model.offer_embeddings()
    return lambda rows: score_rows(member_emb, offer_emb, members[rows])


def _breakdowns(
    labellers: Mapping[str, PairLabeller],
    members: npt.NDArray[np.int64],
    relevant: sp.csr_matrix,
    n_offers: int,
    ranking: _Ranking,
    oracle_ranking: _Ranking | None,
    k: int,
) -> dict[str, dict[str, KindHits]]:
    """Per breakdown, per kind of relevant pair: how many there are and the share in each ranking's top
    k. Pairs beyond ``n_offers`` (offers that cannot be recommended) have no kind and are left out."""
    if not labellers:
        return {}
    pairs = sp.coo_matrix(relevant[:, :n_offers])
    rows, cols = pairs.row.astype(np.int64), pairs.col.astype(np.int64)
    # whether each pair's offer is in its member's top k, once per ranking for every breakdown
    model_hit = (ranking.top_ids[rows, :k] == cols[:, None]).any(axis=1)
    oracle_hit = None
    if oracle_ranking is not None:
        oracle_hit = (oracle_ranking.top_ids[rows, :k] == cols[:, None]).any(axis=1)

    out: dict[str, dict[str, KindHits]] = {}
    for name, label in labellers.items():
        kinds = np.asarray(label(members[rows], cols), dtype=object)
        if kinds.shape != rows.shape:
            raise ValueError(f"a breakdown labelled {kinds.shape} pairs, expected {rows.shape}")
        out[name] = {}
        for kind in sorted(set(kinds.tolist())):
            mine = kinds == kind
            oracle = float(oracle_hit[mine].mean()) if oracle_hit is not None else math.nan
            out[name][str(kind)] = KindHits(int(mine.sum()), model=float(model_hit[mine].mean()), oracle=oracle)
    return out
