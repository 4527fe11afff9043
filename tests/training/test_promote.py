"""Promotion and rollback through MLflow's registry, judged on one holdout."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from recsys.errors import ModelError
from recsys.settings import Settings
from training import tracking
from training.promote import promote, rollback_champion
from training.train import run_training


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
