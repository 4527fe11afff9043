"""One contract for every model family, on planted data whose right answer is known."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from models.base import Embeddings, Recommender
from models.families import FAMILIES, create, load
from models.implicit_mf import least_squares_fold_in
from recsys.errors import ModelError
from tests.models.planted import GROUPS, Planted, planted

# Small factor counts: the planted structure has rank 3, and ALS over-fits 24 offers with 64 factors.
CONFIGS: dict[str, dict[str, Any]] = {
    "lightfm": {"num_threads": 1},
    "als": {"factors": 8, "regularization": 5.0, "num_threads": 1},
    "bpr": {"factors": 8, "learning_rate": 0.05, "iterations": 100, "num_threads": 1},
    "popularity": {"within_tier": True},
}


@pytest.fixture(scope="module")
def data() -> Planted:
    return planted()


@pytest.fixture(scope="module")
def fitted(data: Planted) -> dict[str, Recommender]:
    return {family: create(family, **params).fit(data.training) for family, params in CONFIGS.items()}


def _warm(data: Planted) -> np.ndarray:
    return np.flatnonzero((data.training.interactions > 0).getnnz(axis=1) > 0)


def _seen(data: Planted) -> sp.csr_matrix:
    return sp.csr_matrix(data.training.interactions != 0, dtype=np.float32)


def _assert_same(a: Embeddings, b: Embeddings) -> None:
    np.testing.assert_array_equal(a.factors, b.factors)
    np.testing.assert_array_equal(a.bias, b.bias)
    np.testing.assert_array_equal(a.informed, b.informed)


def test_every_family_is_under_contract() -> None:
    assert set(CONFIGS) == set(FAMILIES)


@pytest.mark.parametrize("family", CONFIGS)
def test_warm_members_get_their_groups_offers_first(family: str, data: Planted, fitted: dict[str, Recommender]) -> None:
    members = _warm(data)
    ids, scores = fitted[family].recommend(members, k=3, exclude=_seen(data))
    right = data.offer_group[ids] == data.member_group[members][:, None]
    assert right.mean() >= 0.95, f"{family}: only {right.mean():.0%} of the top-3 are the member's group"
    assert np.all(np.diff(scores, axis=1) <= 0), "best first"


@pytest.mark.parametrize("family", CONFIGS)
def test_embeddings_have_the_shared_shape(family: str, data: Planted, fitted: dict[str, Recommender]) -> None:
    members, offers = fitted[family].member_embeddings(), fitted[family].offer_embeddings()
    assert members.factors.shape[0] == data.training.n_members
    assert offers.factors.shape[0] == data.training.n_offers
    assert members.factors.shape[1] == offers.factors.shape[1] > 0
    for emb in (members, offers):
        assert emb.factors.dtype == np.float32 and emb.bias.dtype == np.float32
        assert emb.informed.dtype == np.bool_
        assert np.isfinite(emb.factors).all() and np.isfinite(emb.bias).all()
    assert members.informed[_warm(data)].all()


@pytest.mark.parametrize("family", CONFIGS)
def test_save_and_load_give_the_same_scores(
    family: str, data: Planted, fitted: dict[str, Recommender], tmp_path: Path
) -> None:
    model = fitted[family]
    model.save(tmp_path / family)
    assert not list((tmp_path / family).glob("*.pkl"))
    for loaded in (load(tmp_path / family), type(model).load(tmp_path / family)):
        assert type(loaded) is type(model) and loaded.params == model.params
        _assert_same(loaded.member_embeddings(), model.member_embeddings())
        _assert_same(loaded.offer_embeddings(), model.offer_embeddings())
        members = np.arange(data.training.n_members)
        ids, scores = model.recommend(members, k=5)
        loaded_ids, loaded_scores = loaded.recommend(members, k=5)
        np.testing.assert_array_equal(loaded_scores, scores)
        np.testing.assert_array_equal(loaded_ids, ids)


@pytest.mark.parametrize("family", CONFIGS)
def test_recommend_never_returns_excluded_offers(family: str, data: Planted, fitted: dict[str, Recommender]) -> None:
    rng = np.random.default_rng(3)
    n_members, n_offers = data.training.n_members, data.training.n_offers
    exclude = sp.random(n_members, n_offers, density=0.5, format="csr", random_state=rng, dtype=np.float32)
    exclude.data[:] = 1.0
    members = rng.permutation(n_members)[:50]
    ids, scores = fitted[family].recommend(members, k=10, exclude=exclude, batch_size=7)
    hit = np.asarray(exclude[members[:, None], ids].todense())
    assert not (hit[np.isfinite(scores)] > 0).any()
    all_ids, _ = fitted[family].recommend(members, k=n_offers + 5)
    assert all_ids.shape == (50, n_offers)
    assert all(len(set(row)) == n_offers for row in all_ids)


@pytest.mark.parametrize("family", ["als", "bpr"])
def test_members_without_history_are_not_informed(family: str, data: Planted, fitted: dict[str, Recommender]) -> None:
    emb = fitted[family].member_embeddings()
    cold = np.setdiff1d(np.arange(data.training.n_members), _warm(data))
    assert len(cold) and not emb.informed[cold].any()
    assert not emb.factors[cold].any()
    new = fitted[family].member_embeddings(member_features=data.member_features_of(0))
    assert not new.informed.any() and not new.factors.any()


@pytest.mark.parametrize("family", ["als", "bpr", "lightfm"])
@pytest.mark.parametrize("group", range(GROUPS))
def test_a_new_member_with_history_is_folded_in(
    family: str, group: int, data: Planted, fitted: dict[str, Recommender]
) -> None:
    history = data.history_of(group)
    emb = fitted[family].member_embeddings(interactions=history)
    assert emb.factors.shape == (1, fitted[family].offer_embeddings().factors.shape[1])
    assert emb.informed.all()
    ids, _ = fitted[family].recommend(np.array([0]), k=3, exclude=history, member_emb=emb)
    assert (data.offer_group[ids] == group).all()


def test_als_fold_in_of_a_member_without_positives_is_zero(fitted: dict[str, Recommender], data: Planted) -> None:
    only_dismissed = sp.csr_matrix(([-1.0], ([0], [0])), shape=(2, data.training.n_offers), dtype=np.float32)
    emb = fitted["als"].member_embeddings(interactions=only_dismissed)
    assert not emb.informed.any() and not emb.factors.any()


@pytest.mark.parametrize("group", range(GROUPS))
def test_lightfm_embeds_a_brand_new_member_from_features(
    group: int, data: Planted, fitted: dict[str, Recommender]
) -> None:
    model = fitted["lightfm"]
    emb = model.member_embeddings(member_features=data.member_features_of(group))
    assert emb.informed.all()
    ids, _ = model.recommend(np.array([0]), k=5, member_emb=emb)
    assert (data.offer_group[ids] == group).all()


def test_lightfm_ranks_a_brand_new_offer_for_its_group(data: Planted, fitted: dict[str, Recommender]) -> None:
    model = fitted["lightfm"]
    new = sp.vstack([data.offer_features_of(g) for g in range(GROUPS)]).tocsr()
    offers = model.offer_embeddings(offer_features=new)
    assert offers.informed.all()
    members = model.member_embeddings()
    warm = _warm(data)
    ids, _ = model.recommend(warm, k=1, member_emb=members, offer_emb=offers)
    assert (ids[:, 0] == data.member_group[warm]).mean() >= 0.95


def test_lightfm_embeds_an_offer_no_one_responded_to_as_a_brand_new_offer_like_it(
    data: Planted, fitted: dict[str, Recommender]
) -> None:
    """The cold offer's identity was never trained, so it counts as zero, and its group feature keeps the
    weight it has beside the identity: nothing is scaled up to fill the identity's share."""
    model = fitted["lightfm"]
    cold = np.flatnonzero((data.training.interactions > 0).getnnz(axis=0) == 0)
    assert len(cold) == GROUPS
    trained = model.offer_embeddings()
    new = model.offer_embeddings(offer_features=sp.vstack([data.offer_features_of(g) for g in data.offer_group[cold]]))
    np.testing.assert_allclose(trained.factors[cold], new.factors, rtol=1e-5)
    np.testing.assert_allclose(trained.bias[cold], new.bias, rtol=1e-5)
    scaled_up = model.offer_embeddings(offer_features=data.offer_features_of(int(data.offer_group[cold[0]])) * 2)
    assert not np.allclose(trained.factors[cold[0]], scaled_up.factors[0], rtol=1e-3)


def test_lightfm_rejects_features_of_another_space(fitted: dict[str, Recommender]) -> None:
    with pytest.raises(ModelError, match="columns"):
        fitted["lightfm"].offer_embeddings(offer_features=sp.csr_matrix((1, 3), dtype=np.float32))


def test_lightfm_without_side_features_marks_cold_rows_uninformed() -> None:
    plain = planted(dismissals=False)
    bare = plain.training
    identity_only = type(bare)(
        interactions=bare.interactions,
        member_ids=bare.member_ids,
        offer_ids=bare.offer_ids,
        member_tiers=bare.member_tiers,
    )
    model = create("lightfm", num_threads=1, epochs=5).fit(identity_only)
    warm = _warm(plain)
    informed = model.member_embeddings().informed
    assert informed[warm].all() and not np.delete(informed, warm).any()
    cold_offers = np.flatnonzero((bare.interactions > 0).getnnz(axis=0) == 0)
    assert len(cold_offers) and not model.offer_embeddings().informed[cold_offers].any()


def test_bpr_export_reproduces_implicits_own_ranking(data: Planted) -> None:
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    params = {"factors": 8, "learning_rate": 0.05, "regularization": 0.01, "iterations": 30, "random_state": 5}
    ours = create("bpr", num_threads=1, **params).fit(data.training)
    positive = sp.csr_matrix(data.training.interactions > 0, dtype=np.float32)
    with threadpool_limits(1, "blas"):
        theirs = BayesianPersonalizedRanking(num_threads=1, **params)
        theirs.fit(positive, show_progress=False)
    warm = _warm(data)
    their_ids, their_scores = theirs.recommend(warm, positive[warm], N=10, filter_already_liked_items=False)
    our_ids, our_scores = ours.recommend(warm, k=10)
    np.testing.assert_allclose(our_scores, their_scores, rtol=1e-4, atol=1e-5)
    # Offers never responded to all score exactly their (zero) bias; the two sorts break that tie apart.
    untied = np.array([[np.sum(row == value) == 1 for value in row] for row in their_scores])
    assert untied.mean() > 0.5
    np.testing.assert_array_equal(our_ids[untied], their_ids[untied])
    assert ours.offer_embeddings().bias.any(), "the item bias column became Embeddings.bias"


@pytest.mark.parametrize("family", ["lightfm", "als", "bpr"])
def test_one_thread_and_a_fixed_seed_repeat_exactly(family: str, data: Planted) -> None:
    first = create(family, **CONFIGS[family]).fit(data.training)
    second = create(family, **CONFIGS[family]).fit(data.training)
    _assert_same(first.member_embeddings(), second.member_embeddings())
    _assert_same(first.offer_embeddings(), second.offer_embeddings())


def test_als_tolerates_dismissals_only_members(data: Planted) -> None:
    matrix = data.training.interactions.tolil()
    matrix[0, :] = 0
    matrix[0, 5] = -3.0
    training = type(data.training)(
        interactions=sp.csr_matrix(matrix, dtype=np.float32),
        member_ids=data.training.member_ids,
        offer_ids=data.training.offer_ids,
        member_tiers=data.training.member_tiers,
    )
    model = create("als", **CONFIGS["als"]).fit(training)
    emb = model.member_embeddings()
    assert np.isfinite(emb.factors).all()
    assert not emb.informed[0] and not emb.factors[0].any()


def test_lightfm_shows_progress_per_epoch(data: Planted, capsys: pytest.CaptureFixture[str]) -> None:
    create("lightfm", num_threads=1, epochs=3).fit(data.training, show_progress=True)
    assert "3/3" in capsys.readouterr().err


def test_the_numpy_fold_in_matches_implicits_recalculate_user(data: Planted, fitted: dict[str, Recommender]) -> None:
    als = fitted["als"]
    history = sp.csr_matrix(data.training.interactions[:20])  # positives and dismissals
    by_implicit = als.member_embeddings(interactions=history).factors
    offers = als.offer_embeddings().factors
    ours = least_squares_fold_in(offers, history, float(als.params["regularization"]), float(als.params["alpha"]))
    np.testing.assert_allclose(ours, by_implicit, rtol=1e-3, atol=1e-5)
    assert np.abs(ours).sum() > 0
