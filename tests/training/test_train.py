"""The training job end to end on a small synthetic programme, against a real MLflow store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from models.families import default_params
from recsys.settings import Settings
from training import tracking
from training.train import run_training


def test_train_logs_run_registers_version_and_beats_popularity(sample: Path, settings: Settings) -> None:
    lines: list[str] = []
    result = run_training(sample, settings, show_progress=False, echo=lines.append)

    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.metrics["ndcg_at_10"] == pytest.approx(result.metrics["ndcg_at_10"])
    assert run.data.metrics["baseline_ndcg_at_10"] == pytest.approx(result.baseline_metrics["ndcg_at_10"])
    assert {"precision_at_10", "recall_at_10", "coverage"} <= set(run.data.metrics)
    version = client.get_model_version(settings.model_name, result.model_version)
    assert version.tags["data_fingerprint"] and version.tags["git_commit"]
    assert str(tracking.champion(client, settings.model_name).version) == str(version.version)  # type: ignore[union-attr]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts and all(path.endswith(".png") for path in artifacts)
    assert "plots/top_k_by_kind.png" in artifacts
    assert any("popularity" in line for line in lines)
    # where the model trails the oracle: every held-out response counted once per breakdown
    for breakdown in ("category", "offer evidence", "city"):
        assert any(line.startswith(f"Share of the relevant responses in the top 10, by {breakdown}") for line in lines)
        assert any(key.startswith(f"top_10/{breakdown}/") for key in run.data.metrics)  # logged in MLflow
    relevant = {
        breakdown: sum(
            v
            for key, v in result.metrics.items()
            if key.startswith(f"top_10/{breakdown}/") and key.endswith("/relevant")
        )
        for breakdown in ("category", "offer evidence", "city")
    }
    assert relevant["category"] == relevant["offer evidence"] == relevant["city"] > 0
    named = result.metrics["top_10/city/favourite city the history names/model"]
    unnamed = result.metrics["top_10/city/favourite city the history does not name/model"]
    assert named > unnamed  # the model finds the favourite cities the history shows it
    assert result.metrics["ndcg_at_10"] >= 1.2 * result.baseline_metrics["ndcg_at_10"]
    # the oracle told only the cities the history names: it loses the favourites no history shows
    bound = run.data.metrics["history_oracle_ndcg_to_oracle"]
    assert result.metrics["ndcg_to_oracle"] < bound < 1.0
    assert any(line.startswith("history_oracle is the oracle told only") for line in lines)
    bound_unnamed = next(line for line in lines if line.lstrip().startswith("favourite city the history does not"))
    *_, bound_share, oracle_share = bound_unnamed.split()  # the last two columns
    assert float(bound_share) < float(oracle_share)


def test_the_same_seed_and_data_give_the_same_metrics(sample: Path, settings: Settings) -> None:
    first = run_training(sample, settings, show_progress=False, echo=lambda _: None)
    second = run_training(sample, settings, show_progress=False, echo=lambda _: None)
    assert first.run_id != second.run_id
    assert second.metrics == first.metrics and second.baseline_metrics == first.baseline_metrics


def test_second_training_does_not_steal_the_champion(sample: Path, settings: Settings) -> None:
    first = run_training(sample, settings, family="popularity", show_progress=False, echo=lambda _: None)
    second = run_training(sample, settings, family="als", show_progress=False, echo=lambda _: None)
    client = MlflowClient(settings.tracking_uri)
    assert first.champion and not second.champion
    assert str(tracking.champion(client, settings.model_name).version) == first.model_version  # type: ignore[union-attr]


def test_tuning_validates_on_the_weeks_before_the_test_split(sample: Path) -> None:
    from recsys.interactions import InteractionWeights
    from recsys.validation import load_dataset
    from training.train import holdout_cut, time_validation

    data = load_dataset(sample).data
    cut, _ = holdout_cut(data, 28)
    validation = time_validation(data, InteractionWeights(), cut, 28)
    start = cut - pd.Timedelta(days=28)
    events = data.offer_events
    stamps = events["timestamp"]
    inside = events[(stamps >= start) & (stamps < cut) & events["event"].isin(["click", "redeem"])]
    # Relevant: exactly the responses of the four weeks before the test split, nothing from the test split.
    assert validation.relevant.nnz == len(inside.drop_duplicates(["member_id", "offer_id"]))
    # Fitted on the history before those weeks only.
    before = events[(stamps < start) & (events["event"] != "impression")]
    assert validation.fit.interactions.nnz <= len(before.drop_duplicates(["member_id", "offer_id"]))
    assert validation.exclude is not None and validation.exclude.shape == validation.relevant.shape


def test_tuning_confirms_the_leading_trials_one_window_earlier(sample: Path, settings: Settings) -> None:
    lines: list[str] = []
    result = run_training(sample, settings, family="bpr", tune_trials=4, show_progress=False, echo=lines.append)
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    trials = client.search_runs([run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(trials) == 4
    validation = {int(t.info.run_name.split("-")[1]): t.data.metrics["validation_ndcg_at_10"] for t in trials}
    assert max(validation, key=lambda n: (validation[n], -n)) != 0, "no trial led the defaults: nothing to confirm"
    confirmed = {m.step: m.value for m in client.get_metric_history(result.run_id, "confirmation_ndcg_at_10")}
    assert 0 in confirmed and len(confirmed) == 4  # the defaults and the three leading trials
    assert run.data.tags["tuning_judged_on"] == "confirmation"
    assert any(line.strip().startswith("confirmation nDCG@10: defaults") for line in lines)
    tuned = {key.removeprefix("tuned_"): value for key, value in run.data.params.items() if key.startswith("tuned_")}
    if run.data.tags["tuning"] == "kept defaults":
        assert all(tuned[name] == str(value) for name, value in default_params("bpr").items())
    else:
        taken = max((n for n in confirmed if n != 0), key=lambda n: (validation[n] + confirmed[n], -n))
        assert confirmed[taken] > confirmed[0]
        chosen = next(t for t in trials if t.info.run_name == f"trial-{taken}")
        assert all(tuned[name] == value for name, value in chosen.data.params.items())
