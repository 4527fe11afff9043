"""The family registry: names, defaults, parameter checks, search spaces, loading by family."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from models.families import FAMILIES, create, default_params, load, recorded_params, search_space, suggest_params
from recsys.errors import ModelError
from tests.models.planted import planted


def test_the_four_families_are_registered() -> None:
    assert set(FAMILIES) == {"lightfm", "als", "bpr", "popularity"}
    assert all(cls.family == name for name, cls in FAMILIES.items())


@pytest.mark.parametrize("call", [lambda: create("xgboost"), lambda: default_params("xgboost")])
def test_an_unknown_family_is_a_model_error(call: object) -> None:
    with pytest.raises(ModelError, match="unknown model family 'xgboost'"):
        call()  # type: ignore[operator]


def test_an_unknown_parameter_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="no parameter factorz"):
        create("als", factorz=3)


def test_an_unknown_lightfm_loss_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="loss 'logistic'"):
        create("lightfm", loss="logistic")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_defaults_fill_in_what_is_not_given(family: str) -> None:
    model = create(family)
    assert model.params == default_params(family)
    assert default_params(family) is not default_params(family)


def test_a_model_registered_before_a_parameter_existed_is_refitted_with_it_off() -> None:
    older = {"loss": "warp", "match_city": 30.0}  # recorded before the response rates and price levels
    assert recorded_params("lightfm", older) == {**older, "response_category": 0.0, "level_fit": 0.0}
    newer = {**older, "response_category": 8.0, "level_fit": 3.0}
    assert recorded_params("lightfm", newer) == newer
    assert recorded_params("als", {"factors": 64}) == {"factors": 64}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_parameters_added_later_are_parameters_of_the_family(family: str) -> None:
    assert set(FAMILIES[family].introduced) <= set(default_params(family))


@pytest.mark.parametrize("family", ["lightfm", "bpr"])
def test_lock_free_sgd_families_default_to_one_thread_so_that_runs_repeat(family: str) -> None:
    assert default_params(family)["num_threads"] == 1


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_search_space_tunes_known_parameters_with_sane_ranges(family: str) -> None:
    space = search_space(family)
    assert space and set(space) <= set(default_params(family))
    for spec in space.values():
        if spec.kind == "categorical":
            assert spec.choices
        else:
            assert spec.low < spec.high and (not spec.log or spec.low > 0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_optuna_trial_draws_parameters_a_family_accepts(family: str) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    params = suggest_params(study.ask(), family)
    assert set(params) == set(default_params(family))
    for name, spec in search_space(family).items():
        if spec.kind == "categorical":
            assert params[name] in spec.choices
        else:
            assert spec.low <= params[name] <= spec.high
    assert create(family, **params).params == params


def test_loading_checks_the_family(tmp_path: Path) -> None:
    model = create("popularity").fit(planted().training)
    model.save(tmp_path)
    assert type(load(tmp_path)).family == "popularity"
    with pytest.raises(ModelError, match="holds a popularity model, not als"):
        FAMILIES["als"].load(tmp_path)


def test_loading_nothing_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no saved model"):
        load(tmp_path)
    (tmp_path / "params.json").write_text('{"family": "als", "params": {}}')
    with pytest.raises(ModelError, match="cannot load the model state"):
        load(tmp_path)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_an_unfitted_model_has_no_embeddings(family: str) -> None:
    with pytest.raises(ModelError, match="not been fitted"):
        create(family).member_embeddings()
