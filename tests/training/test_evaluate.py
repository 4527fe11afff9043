from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pytest
import scipy.sparse as sp
from matplotlib.image import imread

from models.base import Embeddings, Recommender, TrainingSet
from training.evaluate import CURVE_MAX_K, evaluate
from training.metrics import ranking_metrics, ratio_of_means, user_metrics
from training.plots import write_plots


class FixedModel(Recommender):
    """Scores given up front: what the evaluation sees is exactly what we planted."""

    family = "fixed"

    def __init__(self, member: np.ndarray | None = None, offer: np.ndarray | None = None, **params: Any) -> None:
        super().__init__(**params)
        self.member, self.offer = member, offer

    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self:
        return self

    def member_embeddings(
        self, member_features: sp.csr_matrix | None = None, interactions: sp.csr_matrix | None = None
    ) -> Embeddings:
        assert self.member is not None
        n = self.member.shape[0]
        return Embeddings(self.member.astype(np.float32), np.zeros(n, np.float32), np.ones(n, bool))

    def offer_embeddings(self, offer_features: sp.csr_matrix | None = None) -> Embeddings:
        assert self.offer is not None
        n = self.offer.shape[0]
        return Embeddings(self.offer.astype(np.float32), np.zeros(n, np.float32), np.ones(n, bool))

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _restore(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        pass


def _world(seed: int = 0, n_members: int = 300, n_offers: int = 60) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n_members, 4))
    v = rng.normal(size=(n_offers, 4))
    truth = u @ v.T
    # the top affinities are what members respond to; 1/3 in training, the rest held out
    cut = np.quantile(truth, 0.9, axis=1, keepdims=True)
    positive = truth >= cut
    in_train = positive & (rng.random(truth.shape) < 0.35)
    in_train[:40] = False  # 40 cold members
    in_train[:, :5] = False  # 5 cold offers
    held = positive & ~in_train
    train = TrainingSet(
        interactions=sp.csr_matrix(in_train.astype(np.float32)),
        member_ids=np.array([f"m{i}" for i in range(n_members)]),
        offer_ids=np.array([f"o{i}" for i in range(n_offers)]),
        member_tiers=(np.arange(n_members) % 5).astype(np.int8),
    )
    noisy = u + rng.normal(scale=1.0, size=u.shape)
    return {
        "train": train,
        "relevant": sp.csr_matrix(held.astype(np.float32)),
        "truth": truth,
        "good": FixedModel(noisy, v),
        "random": FixedModel(rng.normal(size=u.shape), rng.normal(size=v.shape)),
        "exclude": sp.csr_matrix(in_train.astype(np.float32)),
    }


def test_overall_metrics_match_the_models_own_recommendations() -> None:
    w = _world()
    report = evaluate(w["good"], w["train"], w["relevant"], k=10, exclude=w["exclude"])
    members = np.flatnonzero(np.diff(w["relevant"].indptr) > 0)
    ids, _ = w["good"].recommend(members, k=10, exclude=w["exclude"])
    direct = ranking_metrics(ids, w["relevant"][members], k=10, n_catalogue=w["train"].n_offers)
    assert report.overall.ndcg == pytest.approx(direct.ndcg)
    assert report.overall.map == pytest.approx(direct.map)
    assert report.overall.coverage == pytest.approx(direct.coverage)
    assert report.n_evaluated == len(members)
    assert report.curve["ndcg"].shape == (CURVE_MAX_K,)
    assert report.curve["ndcg"][9] == pytest.approx(report.overall.ndcg)


def test_oracle_ranks_best_and_the_ratio_is_reported() -> None:
    w = _world()
    good = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"])
    bad = evaluate(w["random"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"])
    assert good.oracle is not None and bad.oracle is not None
    assert good.oracle.ndcg == pytest.approx(bad.oracle.ndcg)
    assert good.oracle.ndcg > good.overall.ndcg > bad.overall.ndcg
    assert 0.0 < bad.ndcg_to_oracle < good.ndcg_to_oracle < 1.0
    assert good.overall.auc > 0.8 > 0.6 > bad.overall.auc
    oracle_itself = FixedModel(w["truth"], np.eye(w["train"].n_offers))
    best = evaluate(oracle_itself, w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"])
    assert best.ndcg_to_oracle == pytest.approx(1.0)
    assert best.ndcg_to_oracle_se == pytest.approx(0.0)
    # the error is the delta-method one over the members evaluated, paired with the oracle's ranking
    assert 0.0 < good.ndcg_to_oracle_se < 0.2
    members = np.flatnonzero(np.diff(w["relevant"].indptr) > 0)
    ids, _ = w["good"].recommend(members, k=10, exclude=w["exclude"])
    truth = np.where(w["exclude"].toarray().astype(bool), -np.inf, w["truth"])[members]
    oracle_ids = np.argsort(-truth, axis=1, kind="stable")[:, :10]
    rel = w["relevant"][members]
    expected = ratio_of_means(user_metrics(ids, rel, 10).ndcg, user_metrics(oracle_ids, rel, 10).ndcg)
    assert (good.ndcg_to_oracle, good.ndcg_to_oracle_se) == pytest.approx(expected)


def test_a_score_matrix_is_ranked_as_a_model_with_those_scores() -> None:
    w = _world()
    scores = w["good"].member @ w["good"].offer.T  # what the model scores, given as a plain matrix
    as_model = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"])
    as_matrix = evaluate(scores, w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"])
    assert as_matrix.as_flat_dict() == pytest.approx(as_model.as_flat_dict())
    with pytest.raises(ValueError, match="scores are"):
        evaluate(scores[:, :-1], w["train"], w["relevant"])


def test_breakdowns_are_means_over_their_segments() -> None:
    w = _world()
    report = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"])
    members = np.flatnonzero(np.diff(w["relevant"].indptr) > 0)
    ids, _ = w["good"].recommend(members, k=10, exclude=w["exclude"])
    tiers = w["train"].member_tiers[members]
    gold = ranking_metrics(ids[tiers == 2], w["relevant"][members[tiers == 2]], k=10)
    assert report.by_tier["gold"].ndcg == pytest.approx(gold.ndcg)
    assert set(report.by_tier) == {"classic", "silver", "gold", "platinum", "diamond"}
    no_history = np.diff(w["train"].interactions.indptr)[members] == 0
    assert report.cold_members.n_users == no_history.sum() >= 40
    cold = ranking_metrics(ids[no_history], w["relevant"][members[no_history]], k=10)
    assert report.cold_members.ndcg == pytest.approx(cold.ndcg)
    assert report.cold_members.n_users + report.warm_members.n_users == report.overall.n_users
    cold_offer = report.cold_offers
    never_taken = np.diff(w["train"].interactions.tocsc().indptr) == 0
    assert cold_offer is not None and cold_offer.n_offers == never_taken.sum() >= 5
    # the good model ranks cold offers by true affinity, so it finds them; recall is restricted to them
    assert cold_offer.recall > 0.3
    assert 0.0 < cold_offer.share_of_recommendations < 1.0
    flags = np.zeros(w["train"].n_offers, dtype=bool)
    flags[:5] = True
    given = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], cold_offers=flags).cold_offers
    assert given is not None and given.n_offers == 5


def _parity(members: np.ndarray, cols: np.ndarray) -> list[str]:
    """A breakdown of the relevant pairs by whether the offer's index is even."""
    return ["even" if c % 2 == 0 else "odd" for c in cols]


def test_kinds_of_response_count_each_pair_once_and_match_the_top_lists() -> None:
    w = _world()
    n_offers = w["train"].n_offers
    parity = {"category": _parity}
    report = evaluate(
        w["good"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"], breakdowns=parity
    )
    kinds = report.breakdowns["category"]
    assert set(kinds) == {"even", "odd"}
    assert sum(hits.relevant for hits in kinds.values()) == w["relevant"].nnz
    members = np.flatnonzero(np.diff(w["relevant"].indptr) > 0)
    ids, _ = w["good"].recommend(members, k=10, exclude=w["exclude"])
    truth = np.where(w["exclude"].toarray().astype(bool), -np.inf, w["truth"])[members]
    oracle_ids = np.argsort(-truth, axis=1, kind="stable")[:, :10]
    rel = w["relevant"][members].toarray() != 0
    for name, top in (("model", ids), ("oracle", oracle_ids)):
        in_top = np.zeros_like(rel)
        np.put_along_axis(in_top, top, True, axis=1)
        for kind, columns in (("even", np.arange(0, n_offers, 2)), ("odd", np.arange(1, n_offers, 2))):
            pairs = rel[:, columns]
            expected = (in_top[:, columns] & pairs).sum() / pairs.sum()
            assert getattr(kinds[kind], name) == pytest.approx(expected)
    flat = report.as_flat_dict()
    assert flat["top_10/category/even/relevant"] == kinds["even"].relevant
    assert flat["top_10/category/odd/model"] == pytest.approx(kinds["odd"].model)
    # the oracle ranked as a model finds what the oracle finds; without an oracle there is no share
    itself = FixedModel(w["truth"], np.eye(n_offers))
    same = evaluate(
        itself, w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"], breakdowns=parity
    )
    assert all(hits.model == pytest.approx(hits.oracle) for hits in same.breakdowns["category"].values())
    alone = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], breakdowns=parity)
    assert all(math.isnan(hits.oracle) for hits in alone.breakdowns["category"].values())
    with pytest.raises(ValueError, match="labelled"):
        evaluate(w["good"], w["train"], w["relevant"], breakdowns={"bad": lambda members, cols: ["one"]})


def test_flat_dict_names_and_determinism() -> None:
    w = _world()
    a = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"]).as_flat_dict()
    b = evaluate(w["good"], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"]).as_flat_dict()
    assert a == b
    for key in (
        "ndcg_at_10",
        "map",
        "tier_gold_ndcg_at_10",
        "cold_members_ndcg_at_10",
        "warm_members_ndcg_at_10",
        "cold_offers_recall_at_10",
        "oracle_ndcg_at_10",
        "ndcg_to_oracle",
        "ndcg_to_oracle_se",
        "score_relevant_mean",
    ):
        assert key in a
    assert all(isinstance(v, float) and not math.isnan(v) for v in a.values())


def test_excluded_offers_are_never_recommended() -> None:
    w = _world(n_offers=12)
    exclude = sp.csr_matrix(np.ones((300, 12), dtype=np.float32))
    exclude[:, :3] = 0
    exclude.eliminate_zeros()
    report = evaluate(w["good"], w["train"], w["relevant"], k=10, exclude=exclude)
    assert report.overall.coverage <= 3 / 12


def test_rejects_misaligned_inputs() -> None:
    w = _world()
    with pytest.raises(ValueError):
        evaluate(w["good"], w["train"], w["relevant"][:10])
    with pytest.raises(ValueError):
        evaluate(w["good"], w["train"], w["relevant"], oracle_scores=np.zeros((3, 3)))


def test_write_plots_writes_readable_pngs(tmp_path: Path) -> None:
    w = _world()
    parity = {"offer parity": _parity}
    reports = {
        name: evaluate(
            w[name], w["train"], w["relevant"], exclude=w["exclude"], oracle_scores=w["truth"], breakdowns=parity
        )
        for name in ("good", "random")
    }
    paths = write_plots({"model": reports["good"], "popularity": reports["random"]}, tmp_path / "plots")
    assert [p.name for p in paths] == [
        "metric_by_k.png",
        "ndcg_by_tier.png",
        "cold_vs_warm.png",
        "score_distributions.png",
        "top_k_by_kind.png",
    ]
    for path in paths:
        image = imread(path)
        assert image.shape[0] > 300 and image.shape[1] > 600
        assert image.std() > 0.01  # not blank
