"""Promotion and rollback through MLflow's registry, judged on one holdout."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from recsys.errors import ModelError
from recsys.interactions import InteractionWeights, build_training_set
from recsys.settings import Settings
from training import tracking
from training.promote import holdouts, promote, rollback_champion, score_version
from training.train import Holdout, load_history, run_training


def _champion(settings: Settings) -> str:
    found = tracking.champion(MlflowClient(settings.tracking_uri), settings.model_name)
    assert found is not None
    return str(found.version)


def _train(sample: Path, settings: Settings, family: str) -> str:
    return run_training(sample, settings, family=family, show_progress=False, echo=lambda _: None).model_version


def test_promote_accepts_a_better_challenger_refuses_a_worse_one_and_rollback_restores(
    sample: Path, settings: Settings
) -> None:
    baseline = _train(sample, settings, "popularity")
    assert _champion(settings) == baseline

    hybrid = _train(sample, settings, "lightfm")
    accepted = promote(settings, sample, challenger=hybrid, margin=0.05, echo=lambda _: None)
    assert accepted.promoted and accepted.champion_score is not None
    assert accepted.challenger_score > accepted.champion_score * 1.05
    assert _champion(settings) == hybrid

    worse = _train(sample, settings, "popularity")
    refused = promote(settings, sample, challenger=worse, echo=lambda _: None)
    assert not refused.promoted and refused.champion_score is not None
    assert refused.challenger_score < refused.champion_score
    assert _champion(settings) == hybrid

    forced = promote(settings, sample, challenger=worse, force=True, echo=lambda _: None)
    assert forced.promoted and _champion(settings) == worse

    assert rollback_champion(settings, echo=lambda _: None) == hybrid
    assert _champion(settings) == hybrid
    assert rollback_champion(settings, echo=lambda _: None) == baseline
    with pytest.raises(ModelError, match="no earlier champion"):
        rollback_champion(settings, echo=lambda _: None)


def test_promote_refits_each_version_on_features_built_as_it_was_trained(sample: Path, settings: Settings) -> None:
    weights = InteractionWeights(top_cities=1, city_half_life_days=365.0)
    version = run_training(sample, settings, weights=weights, show_progress=False, echo=lambda _: None).model_version
    client = MlflowClient(settings.tracking_uri)
    data = load_history(sample, settings, lambda _: None)
    asked: list[InteractionWeights] = []
    built = holdouts(sample, data, 28)

    def holdout_for(wanted: InteractionWeights) -> Holdout:
        asked.append(wanted)
        return built(wanted)

    assert score_version(client, settings.model_name, version, holdout_for, 10) > 0
    assert asked == [weights]

    # A version registered before weights were recorded was trained on the defaults of its day.
    client.delete_model_version_tag(settings.model_name, version, tracking.WEIGHTS_TAG)
    score_version(client, settings.model_name, version, holdout_for, 10)
    assert asked[-1] == InteractionWeights(stay_weighting="nights", city_half_life_days=90.0)


def test_holdouts_share_the_cut_responses_and_mask_and_build_a_training_side_per_weights(
    sample: Path, settings: Settings
) -> None:
    data = load_history(sample, settings, lambda _: None)
    holdout_for = holdouts(sample, data, 28)
    now, before = holdout_for(InteractionWeights()), holdout_for(InteractionWeights.as_recorded(None))
    assert holdout_for(InteractionWeights()) is now  # built once per weights
    assert before.cut == now.cut and before.relevant is now.relevant and before.ineligible is now.ineligible
    alone, _ = build_training_set(data, until=now.cut, weights=InteractionWeights.as_recorded(None))
    assert before.train.member_feature_names == alone.member_feature_names
    assert before.train.member_features is not None and alone.member_features is not None
    assert abs(before.train.member_features - alone.member_features).max() == 0
    assert now.train.member_features is not None
    assert now.train.member_features.shape != alone.member_features.shape or (
        abs(now.train.member_features - alone.member_features).max() > 0
    )  # stays by visits on the city clock, against nights on the 90-day one
