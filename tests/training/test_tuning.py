from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from models.base import TrainingSet
from models.families import ParamRange, default_params, search_space
from training.tuning import TrialResult, Validation, _gain, score_params, space_of, tune, validation_split


def _clustered(seed: int = 0, n_members: int = 160, n_offers: int = 90, clusters: int = 6) -> TrainingSet:
    """Members of a cluster mostly take offers of the same cluster: a structure worth learning."""
    rng = np.random.default_rng(seed)
    member_cluster = rng.integers(0, clusters, n_members)
    offer_cluster = np.arange(n_offers) % clusters
    affinity = np.where(member_cluster[:, None] == offer_cluster[None, :], 0.25, 0.01)
    taken = rng.random((n_members, n_offers)) < affinity
    taken[np.arange(n_members), rng.integers(0, n_offers, n_members)] = True  # nobody is empty
    return TrainingSet(
        interactions=sp.csr_matrix(taken.astype(np.float32)),
        member_ids=np.array([f"m{i}" for i in range(n_members)]),
        offer_ids=np.array([f"o{i}" for i in range(n_offers)]),
        member_tiers=np.zeros(n_members, dtype=np.int8),
    )


def test_validation_split_holds_out_training_rows_only() -> None:
    train = _clustered()
    v = validation_split(train, fraction=0.2, seed=3)
    original = train.interactions
    assert v.fit.interactions.multiply(v.relevant).nnz == 0
    assert ((v.fit.interactions + v.relevant) != original).nnz == 0
    assert v.relevant.nnz == pytest.approx(0.2 * original.nnz, rel=0.15)
    assert v.fit.member_ids is train.member_ids and v.fit.n_offers == train.n_offers


def test_validation_split_leaves_negative_evidence_in_fit() -> None:
    dense = np.array([[1.0, -1.0, 2.0, 1.0, 1.0], [0.0, 3.0, 0.0, -2.0, 1.0]], dtype=np.float32)
    train = TrainingSet(sp.csr_matrix(dense), np.array(["a", "b"]), np.array(list("vwxyz")), np.zeros(2, np.int8))
    v = validation_split(train, fraction=0.5, seed=0)
    assert (v.relevant.toarray()[dense < 0] == 0).all()
    fit = v.fit.interactions.toarray()
    assert (fit[dense < 0] == dense[dense < 0]).all()
    assert ((fit != 0) | (v.relevant.toarray() != 0) == (dense != 0)).all()


def test_a_held_out_response_leaves_the_exposure_too() -> None:
    train = _clustered()
    taken = (train.interactions != 0).astype(np.float32)
    shown = sp.csr_matrix(taken + sp.csr_matrix(np.eye(160, 90, k=1, dtype=np.float32))).astype(bool).astype(np.float32)
    exposed = dataclasses.replace(train, shown=shown, responded=sp.csr_matrix(taken))
    v = validation_split(exposed, fraction=0.2, seed=3)
    assert v.fit.shown is not None and v.fit.responded is not None
    assert v.fit.responded.multiply(v.relevant).nnz == 0 and v.fit.shown.multiply(v.relevant).nnz == 0
    assert ((v.fit.responded + v.relevant) != taken).nnz == 0  # nothing else left the exposure
    assert v.fit.shown.nnz == shown.nnz - v.relevant.nnz


@pytest.mark.parametrize("family", ["lightfm", "als", "bpr", "popularity"])
def test_space_covers_the_families_ranges(family: str) -> None:
    space = space_of(family)
    assert set(space) == set(search_space(family))


@pytest.mark.parametrize("family", ["als", "popularity"])
def test_tune_tries_defaults_first_and_returns_the_best(family: str) -> None:
    train = _clustered()
    seen: list[TrialResult] = []
    result = tune(family, train, n_trials=4, seed=7, on_trial=seen.append, min_gain_se=0.0)
    assert seen == result.trials and len(seen) == 4
    defaults = default_params(family)
    assert seen[0].params == {name: defaults[name] for name in search_space(family)}
    complete = [t for t in seen if t.state == "complete"]
    assert result.best_score == max(t.score for t in complete)
    assert set(result.best_params) == set(defaults)
    best = max(complete, key=lambda t: t.score)
    assert all(result.best_params[key] == value for key, value in best.params.items())


def test_learned_family_beats_popularity_on_validation() -> None:
    train = _clustered()
    v = validation_split(train, seed=1)
    als, _ = score_params("als", {**default_params("als"), "factors": 16}, v)
    popular, _ = score_params("popularity", default_params("popularity"), v)
    assert als > popular + 0.05


def test_tune_is_deterministic_for_a_seed() -> None:
    train = _clustered()
    a = tune("popularity", train, n_trials=5, seed=11)
    b = tune("popularity", train, n_trials=5, seed=11)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best_params == b.best_params


def test_timeout_stops_new_trials_and_zero_trials_means_defaults() -> None:
    train = _clustered()
    assert len(tune("als", train, n_trials=10, seed=0, timeout_s=0.0).trials) == 1
    untuned = tune("bpr", train, n_trials=0, seed=0)
    assert untuned.trials == [] and untuned.best_params == default_params("bpr")


def test_a_given_space_replaces_the_familys_ranges() -> None:
    result = tune("als", _clustered(), n_trials=3, seed=0, space={"factors": ParamRange("int", 8, 24, step=8)})
    assert all(set(t.params) == {"factors"} and t.params["factors"] in (8, 16, 24) for t in result.trials)
    assert result.best_params["factors"] in (8, 16, 24)


def test_parameters_that_cannot_act_on_the_data_are_not_searched() -> None:
    seen: list[TrialResult] = []
    tune("lightfm", _clustered(), n_trials=2, seed=0, on_trial=seen.append, min_gain_se=0.0)
    # a bare interactions file has no side features, exposure or price levels
    plain = set(search_space("lightfm")) - {"match_city", "match_partner", "response_category", "level_fit"}
    assert [set(t.params) for t in seen] == [plain, plain]


BPR_RATE = {"learning_rate": ParamRange("float", 0.01, 0.3, log=True)}


def test_a_best_trial_within_the_noise_leaves_the_defaults() -> None:
    train = _clustered()
    v = validation_split(train, seed=0)  # no confirmation split: the gain is judged on validation
    taken = tune("bpr", train, n_trials=5, seed=0, space=BPR_RATE, min_gain_se=0.0, validation=v)
    assert taken.trials[0].params == {"learning_rate": 0.01}  # the defaults came first
    assert taken.best_score > taken.trials[0].score and not taken.kept_defaults  # another trial did better
    assert taken.best_params["learning_rate"] != 0.01 and 0 < taken.gain < taken.gain_se  # by less than its noise
    assert taken.judged_on == "validation" and taken.confirmation_scores == {}
    kept = tune("bpr", train, n_trials=5, seed=0, space=BPR_RATE, validation=v)  # the default rule: one SE
    assert kept.kept_defaults and kept.best_params == default_params("bpr")
    assert kept.best_score == kept.trials[0].score and kept.gain == taken.gain


def _tiers_case(wanted: str) -> tuple[TrainingSet, Validation]:
    """Forty members in tier 0 took offers 0-4, thirty in tier 1 two of offers 5-9 each. Tier 1 members
    then want the offers popular overall (``wanted="overall"``) or the rest of their tier's (``"tier"``)."""
    tier0, tier1 = 40, 30
    n = tier0 + tier1
    fit = np.zeros((n, 10), dtype=np.float32)
    relevant = np.zeros_like(fit)
    fit[:tier0, :5] = 1.0
    for i, member in enumerate(range(tier0, n)):
        fit[member, [5 + i % 5, 5 + (i + 1) % 5]] = 1.0
        if wanted == "overall":
            relevant[member, :5] = 1.0
        else:
            relevant[member, [5 + (i + 2) % 5, 5 + (i + 3) % 5]] = 1.0
    train = TrainingSet(
        sp.csr_matrix(fit),
        np.array([f"m{i}" for i in range(n)]),
        np.array([f"o{i}" for i in range(10)]),
        np.array([0] * tier0 + [1] * tier1, dtype=np.int8),
    )
    return train, Validation(fit=train, relevant=sp.csr_matrix(relevant))


TIER_SWITCH = {"within_tier": ParamRange("categorical", choices=(True, False))}


def test_a_trial_that_wins_on_validation_but_not_on_confirmation_leaves_the_defaults() -> None:
    train, overall = _tiers_case("overall")
    _, tier = _tiers_case("tier")
    searched = dict(n_trials=6, seed=3, space=TIER_SWITCH, min_gain_se=0.0)
    alone = tune("popularity", train, validation=overall, **searched)  # type: ignore[arg-type]
    assert alone.best_params["within_tier"] is False and not alone.kept_defaults  # the defaults (True) lost
    assert alone.judged_on == "validation" and alone.gain > 0
    confirmed = tune("popularity", train, validation=overall, confirmation=tier, **searched)  # type: ignore[arg-type]
    assert confirmed.kept_defaults and confirmed.best_params == default_params("popularity")
    assert confirmed.judged_on == "confirmation" and confirmed.gain < 0
    winner = next(t.number for t in confirmed.trials if t.params == {"within_tier": False})
    assert confirmed.confirmation_scores[winner] < confirmed.confirmation_scores[0]
    agreeing = tune("popularity", train, validation=overall, confirmation=overall, **searched)  # type: ignore[arg-type]
    assert agreeing.best_params["within_tier"] is False and agreeing.judged_on == "confirmation"


def test_without_a_given_validation_the_search_confirms_on_a_second_fold() -> None:
    train = _clustered()
    result = tune("bpr", train, n_trials=5, seed=0, space=BPR_RATE, min_gain_se=-1e9)  # take the confirmed leader
    assert result.judged_on == "confirmation" and not result.kept_defaults
    second_fold = validation_split(train, seed=0, fold=1)
    chosen = next(t.number for t in result.trials if t.params["learning_rate"] == result.best_params["learning_rate"])
    again, _ = score_params("bpr", result.best_params, second_fold)
    defaults, _ = score_params("bpr", default_params("bpr"), second_fold)
    assert again == pytest.approx(result.confirmation_scores[chosen])
    assert defaults == pytest.approx(result.confirmation_scores[0])
    assert result.gain == pytest.approx(again - defaults, abs=1e-9)


def test_the_gain_is_paired_per_member() -> None:
    base = np.array([0.0, 0.5, 1.0, 0.2])
    gain, se = _gain(base + 0.1, base)
    assert gain == pytest.approx(0.1) and se == pytest.approx(0.0, abs=1e-12)
    gain, se = _gain(np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.0, 1.0, 0.0, 1.0]))
    assert gain == 0.0 and se == pytest.approx(np.sqrt(4 / 3) / 2)  # differences +1, -1, +1, -1
