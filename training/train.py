"""The training job: validated history in, an evaluated model logged and registered in MLflow out.

Evaluation is a time-based holdout: fit on offer responses before a cut date, score the
clicks and redemptions after it, among offers the member could have been shown then (tier and
validity window), beside a popularity-within-tier baseline and, on synthetic data, the oracle that
ranks by the hidden tastes and the same oracle told only the favourite cities the history names; the
held-out responses are also broken down by kind (``training.breakdowns``) to show where a model
trails. The served model is then refit on the whole history and registered
with its serving bundle.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from models.base import Recommender, TrainingSet
from models.devices import GPU_FAMILIES, resolve_device
from models.families import create, default_params
from recsys.dataset import LoyaltyData
from recsys.features import FeatureSpace
from recsys.interactions import InteractionWeights, build_training_set, holdout_positives
from recsys.profiles import member_profiles, offer_feature_table
from recsys.settings import Settings
from recsys.streaming import load_dataset_chunked
from recsys.validation import load_dataset
from training import tracking
from training.breakdowns import history_cities, response_kinds
from training.bundle import ServingBundle
from training.evaluate import EvaluationReport, evaluate
from training.plots import write_plots
from training.tuning import TrialResult, Validation, describe_choice, describe_params, tune

BASELINE = "popularity"
# On synthetic data, the oracle told only the favourite cities each member's history names: how well the
# evidence allows a model to rank, beside the oracle that knows cities no history shows.
HISTORY_ORACLE = "history_oracle"


@dataclass
class TrainResult:
    family: str
    run_id: str
    model_version: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    oracle_metrics: dict[str, float] = field(default_factory=dict)
    plots: list[Path] = field(default_factory=list)
    champion: bool = False


def fingerprint(data_dir: Path) -> str:
    """SHA-256 over the contract's input files, so a version names the exact data it learned from."""
    digest = hashlib.sha256()
    for path in sorted(p for p in data_dir.iterdir() if p.is_file() and p.suffix in {".csv", ".parquet"}):
        digest.update(path.name.encode())
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def holdout_cut(data: LoyaltyData, holdout_days: int) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(cut, end): the holdout is the last ``holdout_days`` of offer responses."""
    end = pd.Timestamp(data.offer_events["timestamp"].max())
    return end - pd.Timedelta(days=holdout_days), end


def ineligible(data: LoyaltyData, ts: TrainingSet, start: pd.Timestamp, end: pd.Timestamp) -> sp.csr_matrix:
    """Member x offer mask of offers the member could not be shown during [start, end]: below the
    offer's minimum tier (or above its maximum), restricted to regions that exclude the member's home
    country, or not valid at any time then. Channels are not masked: a member is reachable on some
    channel every offer uses (as ``recsys.rules.eligible`` with no channel)."""
    offers = data.offers.set_index("offer_id").loc[list(ts.offer_ids)]
    tiers = np.arange(5)[:, None]
    min_tier = offers["min_tier"].to_numpy()[None, :]
    max_tier = offers["max_tier"].fillna(4).to_numpy()[None, :] if "max_tier" in offers else 4
    valid_from = offers["valid_from"].to_numpy()
    valid_to = offers["valid_to"].to_numpy()
    start_day, end_day = start.tz_localize(None).normalize(), end.tz_localize(None).normalize()
    live = (valid_from <= np.datetime64(end_day)) & (valid_to >= np.datetime64(start_day))
    blocked = (tiers < min_tier) | (tiers > max_tier) | ~live[None, :]  # (tiers, offers)
    countries = data.members.set_index("member_id")["home_country"].reindex(list(ts.member_ids))
    country_codes, country_names = pd.factorize(countries.fillna("").astype(str))
    regions = offers["regions"] if "regions" in offers else pd.Series([()] * len(offers))
    restricted = np.array([bool(r) for r in regions], dtype=bool)
    allowed = np.array([[str(c) in set(r) for r in regions] for c in country_names], dtype=bool)
    allowed = allowed.reshape(len(country_names), len(offers))
    region_blocked = restricted[None, :] & ~allowed  # (countries, offers)
    # One row per (tier, country) pair; members index into it.
    per_pair = (blocked[:, None, :] | region_blocked[None, :, :]).reshape(-1, len(offers))
    pair = ts.member_tiers.astype(np.int64) * len(country_names) + country_codes
    return sp.csr_matrix(per_pair.astype(np.float32))[pair].tocsr()


def ground_truth(data_dir: Path) -> pd.DataFrame | None:
    """The generator's hidden tastes, when the data is synthetic."""
    if not (data_dir / "ground_truth").is_dir():
        return None
    from training.generate import load_tastes

    return load_tastes(data_dir)


def oracle_scores(
    tastes: pd.DataFrame, data: LoyaltyData, ts: TrainingSet, *, history_bound: bool = False
) -> npt.NDArray[np.float32]:
    """True affinities of the training set's members and offers, from the hidden tastes; with
    ``history_bound``, as if each member's favourite cities were those their history names."""
    from training.generate import true_affinity

    members = tastes.set_index("member_id").loc[list(ts.member_ids)].reset_index()
    offers = data.offers.set_index("offer_id").loc[list(ts.offer_ids)].reset_index()
    favourites = history_cities(ts) if history_bound else None
    return np.asarray(true_affinity(members, offers, favourites=favourites), dtype=np.float32)


@dataclass(frozen=True)
class Holdout:
    """The time-based split every model of one dataset is judged on."""

    cut: pd.Timestamp
    end: pd.Timestamp
    train: TrainingSet
    relevant: sp.csr_matrix
    ineligible: sp.csr_matrix
    # the generator's hidden tastes, on synthetic data: the oracle and the city breakdown come from
    # them and ``train`` (which promote rebuilds per set of interaction weights)
    tastes: pd.DataFrame | None = None


def load_history(data_dir: Path, settings: Settings, echo: Callable[[str], None]) -> LoyaltyData:
    """Validated history, reporting rejects, without members erased on request."""
    if settings.read_chunk_rows:
        loaded = load_dataset_chunked(
            data_dir, max_reject_share=settings.max_reject_share, chunk_rows=settings.read_chunk_rows
        )
    else:
        loaded = load_dataset(data_dir, max_reject_share=settings.max_reject_share)
    for name, rep in loaded.report.items():
        if rep.rejected:
            echo(f"{name}: rejected {rep.rejected} of {rep.total} rows (see {rep.rejects_path})")
    erased = erased_members(settings)
    if not erased:
        return loaded.data
    echo(f"Leaving out {len(erased)} members erased on request.")
    frames = {
        name: frame[~frame["member_id"].isin(erased)] if "member_id" in frame else frame
        for name, frame in loaded.data.frames().items()
    }
    return LoyaltyData(**frames)


def erased_members(settings: Settings) -> set[str]:
    """Ids erased through the API (recorded in Redis); training must never see them again."""
    from recsys.cache import Keys
    from recsys.erasure import erased_ids
    from recsys.store import open_redis

    endpoint = open_redis(settings)
    try:
        return set(erased_ids(endpoint.client(), Keys(settings.key_prefix)))
    finally:
        endpoint.close()


def build_holdout(data_dir: Path, data: LoyaltyData, weights: InteractionWeights, holdout_days: int) -> Holdout:
    cut, end = holdout_cut(data, holdout_days)
    train_ts, _ = build_training_set(data, until=cut, weights=weights)
    return Holdout(
        cut=cut,
        end=end,
        train=train_ts,
        relevant=holdout_positives(data, since=cut, until=None),
        ineligible=ineligible(data, train_ts, cut, end),
        tastes=ground_truth(data_dir),
    )


def _fit(family: str, params: dict[str, Any], ts: TrainingSet, show_progress: bool) -> Recommender:
    return create(family, **params).fit(ts, show_progress=show_progress)


def popular_by_tier(ts: TrainingSet) -> npt.NDArray[np.float32]:
    """Positive evidence per offer within each tier (5 x offers), for cold members and fallbacks."""
    positive = ts.interactions.maximum(0).tocsr()
    out = np.zeros((5, ts.n_offers), dtype=np.float32)
    for tier in range(5):
        rows = np.flatnonzero(ts.member_tiers == tier)
        if len(rows):
            out[tier] = np.asarray(positive[rows].sum(axis=0)).ravel()
    return out


def redeemed_counts(data: LoyaltyData, offer_ids: npt.NDArray[np.str_]) -> npt.NDArray[np.int64]:
    redeems = data.offer_events.loc[data.offer_events["event"] == "redeem", "offer_id"].value_counts()
    counts: npt.NDArray[np.int64] = redeems.reindex(list(offer_ids), fill_value=0).to_numpy(dtype=np.int64)
    return counts


def serving_bundle(
    data: LoyaltyData, training: TrainingSet, space: FeatureSpace, model: Recommender, meta: dict[str, str]
) -> ServingBundle:
    """What publish needs of a model fitted on ``training``: embeddings, catalogue, partners, popular
    offers per tier, redemptions so far, the feature space, offer features and member profiles."""
    space_json = space.to_json(member_ids=False)
    return ServingBundle(
        member_ids=training.member_ids,
        member=model.member_embeddings(),
        offer_ids=training.offer_ids,
        offer=model.offer_embeddings(),
        members=data.members,
        offers=data.offers,
        partners=data.partners,
        popular_by_tier=popular_by_tier(training),
        redeemed=redeemed_counts(data, training.offer_ids),
        meta=meta,
        feature_space_json=space_json,
        offer_features=offer_feature_table(model, space_json),
        profiles=member_profiles(data, training.member_ids),
    )


def run_training(
    data_dir: Path,
    settings: Settings,
    *,
    family: str = "lightfm",
    params: dict[str, Any] | None = None,
    weights: InteractionWeights | None = None,
    holdout_days: int = 28,
    k: int = 10,
    tune_trials: int = 0,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
    device: str = "auto",
) -> TrainResult:
    """Load, (tune,) evaluate on the time holdout, refit on everything, log and register in MLflow.

    With ``tune_trials`` > 0 the family's hyperparameters are searched first on a validation split
    carved from the training side of the holdout only (``time_validation``: the same time protocol,
    one holdout earlier) and the leaders confirmed one holdout earlier still; each trial is a nested
    MLflow run. ``device``
    (auto, cpu or cuda) is where ALS and BPR fit (``models.devices``); other families run on the CPU.
    """
    client = tracking.configure(settings)
    weights = weights or InteractionWeights()
    params = {**default_params(family), **(params or {})}
    on = resolve_device(device, family)
    if family in GPU_FAMILIES:
        params["device"] = on
    data = load_history(data_dir, settings, echo)
    holdout = build_holdout(data_dir, data, weights, holdout_days)
    cut, end = holdout.cut, holdout.end
    echo(f"Holdout: offer responses from {cut:%Y-%m-%d} to {end:%Y-%m-%d}; training on history before.")

    with mlflow.start_run(run_name=f"train-{family}") as run:
        mlflow.log_params({"family": family, "holdout_days": holdout_days, "k": k, **params})
        mlflow.log_params({f"weight_{key}": value for key, value in weights.model_dump().items()})
        if tune_trials > 0:
            validation = time_validation(data, weights, cut, holdout_days)
            confirmation = time_validation(data, weights, cut - pd.Timedelta(days=holdout_days), holdout_days)
            params = _tune(family, params, holdout.train, tune_trials, k, echo, validation, confirmation)
            mlflow.log_params({f"tuned_{key}": value for key, value in params.items()})
        reports, fit_s = holdout_reports(family, params, holdout, data, k, show_progress)
        if HISTORY_ORACLE in reports:
            mlflow.log_metric(f"{HISTORY_ORACLE}_ndcg_to_oracle", reports[HISTORY_ORACLE].ndcg_to_oracle)
        metrics = reports[family].as_flat_dict()
        base_metrics = reports[BASELINE].as_flat_dict()
        mlflow.log_metrics({**metrics, "fit_seconds": fit_s})
        mlflow.log_metrics({f"baseline_{key}": value for key, value in base_metrics.items()})
        ndcg_key = f"ndcg_at_{k}"
        lift = metrics[ndcg_key] / base_metrics[ndcg_key] - 1 if base_metrics[ndcg_key] else float("inf")
        mlflow.log_metric("ndcg_lift_over_baseline", lift)

        with tempfile.TemporaryDirectory() as tmp:
            plot_dir = settings.var_dir / "plots" / run.info.run_id
            plots = write_plots(reports, plot_dir)
            mlflow.log_artifacts(str(plot_dir), artifact_path="plots")

            echo("Refitting on the whole history for serving...")
            full_ts, full_space = build_training_set(data, until=None, weights=weights)
            served = _fit(family, params, full_ts, show_progress)
            meta = {
                "model_name": settings.model_name,
                "family": family,
                "run_id": run.info.run_id,
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "metrics": json.dumps({key: round(value, 6) for key, value in metrics.items()}),
            }
            bundle = serving_bundle(data, full_ts, full_space, served, meta)
            bundle_dir = Path(tmp) / tracking.BUNDLE_PATH
            bundle.save(bundle_dir)
            mlflow.log_artifacts(str(bundle_dir), artifact_path=tracking.BUNDLE_PATH)
        tags = {
            "family": family,
            "data_fingerprint": fingerprint(data_dir),
            "git_commit": tracking.git_commit(),
            "params": json.dumps(params, sort_keys=True, default=str),
            tracking.WEIGHTS_TAG: weights.model_dump_json(),
            **{f"metric.{key}": f"{value:.6f}" for key, value in metrics.items()},
        }
        mlflow.set_tags({"data_fingerprint": tags["data_fingerprint"], "git_commit": tags["git_commit"]})
        version = tracking.register(
            client, settings.model_name, run.info.run_id, f"{run.info.artifact_uri}/{tracking.BUNDLE_PATH}", tags
        )
    became_champion = tracking.champion(client, settings.model_name) is None
    if became_champion:
        tracking.set_champion(client, settings.model_name, version.version)
    _echo_table(echo, family, reports, k)
    _echo_breakdowns(echo, reports, k)
    echo(f"nDCG@{k} lift over the popularity baseline: {lift:+.1%}")
    echo(
        f"Registered {settings.model_name} version {version.version} (run {run.info.run_id})"
        + (" as champion" if became_champion else "")
    )
    oracle_report = reports[family].oracle
    oracle_metrics = oracle_report.as_dict() if oracle_report is not None else {}
    return TrainResult(
        family=family,
        run_id=run.info.run_id,
        model_version=str(version.version),
        metrics=metrics,
        baseline_metrics=base_metrics,
        oracle_metrics=oracle_metrics,
        plots=plots,
        champion=became_champion,
    )


def holdout_reports(
    family: str, params: dict[str, Any], holdout: Holdout, data: LoyaltyData, k: int, show_progress: bool
) -> tuple[dict[str, EvaluationReport], float]:
    """``family`` fitted on the holdout's training side, the popularity baseline and, on synthetic data,
    ``history_oracle``, each evaluated on the held-out responses beside the oracle; and the model's fit
    seconds."""
    train = holdout.train
    oracle = oracle_scores(holdout.tastes, data, train) if holdout.tastes is not None else None
    kinds = response_kinds(data.offers, train, holdout.tastes)

    def judged(ranking: Recommender | npt.NDArray[np.float32]) -> EvaluationReport:
        return evaluate(
            ranking, train, holdout.relevant, k=k, exclude=holdout.ineligible, oracle_scores=oracle, breakdowns=kinds
        )

    started = time.perf_counter()
    model = _fit(family, params, train, show_progress)
    fit_s = time.perf_counter() - started
    reports = {family: judged(model)}
    del model
    reports[BASELINE] = judged(_fit(BASELINE, {**default_params(BASELINE), "within_tier": True}, train, False))
    if holdout.tastes is not None:
        reports[HISTORY_ORACLE] = judged(oracle_scores(holdout.tastes, data, train, history_bound=True))
    return reports, fit_s


def time_validation(data: LoyaltyData, weights: InteractionWeights, cut: pd.Timestamp, days: int) -> Validation:
    """The test protocol one step earlier, inside the training history: fit on what came before
    ``cut - days``, score on the responses in ``[cut - days, cut)``, masking what was ineligible then.
    Tuning on it never touches the test split, and optimises what the test measures."""
    start = cut - pd.Timedelta(days=days)
    fit, _ = build_training_set(data, until=start, weights=weights)
    relevant = holdout_positives(data, since=start, until=cut)
    return Validation(fit=fit, relevant=relevant, exclude=ineligible(data, fit, start, cut))


def _tune(
    family: str,
    params: dict[str, Any],
    train_ts: TrainingSet,
    trials: int,
    k: int,
    echo: Callable[[str], None],
    validation: Validation | None = None,
    confirmation: Validation | None = None,
) -> dict[str, Any]:
    """Search ``family``'s hyperparameters on the training side only; each trial a nested run."""

    def log_trial(trial: TrialResult) -> None:
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
            mlflow.log_params(trial.params)
            if trial.state == "complete":
                mlflow.log_metrics({f"validation_ndcg_at_{k}": trial.score, "fit_seconds": trial.fit_s})
            mlflow.set_tag("state", trial.state)

    result = tune(
        family, train_ts, n_trials=trials, k=k, on_trial=log_trial, validation=validation, confirmation=confirmation
    )
    echo(f"Tuned {family} over {len(result.trials)} trials: validation nDCG@{k} {result.best_score:.4f}")
    for line in describe_choice(result, k):
        echo(f"  {line}")
    echo(f"  fitting with {describe_params(result.best_params)}")
    for number, score in result.confirmation_scores.items():  # step: the trial (0 is the defaults)
        mlflow.log_metric(f"confirmation_ndcg_at_{k}", score, step=number)
    if not math.isnan(result.gain):
        mlflow.log_metrics({"tuning_gain": result.gain, "tuning_gain_se": result.gain_se})
        mlflow.set_tag("tuning", "kept defaults" if result.kept_defaults else "best trial")
        mlflow.set_tag("tuning_judged_on", result.judged_on)
    return {**params, **result.best_params}


def _echo_table(echo: Callable[[str], None], family: str, reports: dict[str, EvaluationReport], k: int) -> None:
    keys = [f"precision_at_{k}", f"recall_at_{k}", f"ndcg_at_{k}", "map", "coverage"]
    echo(f"{'model':<14}" + "".join(f"{key:>16}" for key in keys))
    rows: list[tuple[str, dict[str, float]]] = [(name, rep.as_flat_dict()) for name, rep in reports.items()]
    oracle = reports[family].oracle
    if oracle is not None:
        rows.append(("oracle", oracle.as_dict()))
    for name, values in rows:
        echo(f"{name:<14}" + "".join(f"{values.get(key, float('nan')):>16.4f}" for key in keys))
    if oracle is not None:
        for name, report in reports.items():
            echo(
                f"{name} reaches {report.ndcg_to_oracle:.3f} of the oracle's nDCG@{k}"
                f" (± {report.ndcg_to_oracle_se:.3f} standard error over {report.n_evaluated} members)"
            )
    bound = reports.get(HISTORY_ORACLE)
    if bound is not None and bound.overall.ndcg > 0:
        echo(
            f"{HISTORY_ORACLE} is the oracle told only the favourite cities each member's history names;"
            f" {family} reaches {reports[family].overall.ndcg / bound.overall.ndcg:.3f} of its nDCG@{k}"
        )


def _echo_breakdowns(echo: Callable[[str], None], reports: dict[str, EvaluationReport], k: int) -> None:
    """Per kind of relevant response, the share each model (and the oracle) ranked in the top k."""
    first = next(iter(reports.values()))
    has_oracle = first.oracle is not None
    names = list(reports) + (["oracle"] if has_oracle else [])
    columns = [max(12, len(name) + 2) for name in names]
    for breakdown, kinds in first.breakdowns.items():
        width = max(len(kind) for kind in kinds) if kinds else 0
        echo(f"Share of the relevant responses in the top {k}, by {breakdown}:")
        echo(f"  {'':<{width}}{'relevant':>10}" + "".join(f"{n:>{c}}" for n, c in zip(names, columns, strict=True)))
        for kind, hits in kinds.items():
            shares = [report.breakdowns[breakdown][kind].model for report in reports.values()]
            shares += [hits.oracle] if has_oracle else []
            cells = "".join(f"{share:>{c}.3f}" for share, c in zip(shares, columns, strict=True))
            echo(f"  {kind:<{width}}{hits.relevant:>10}" + cells)
