"""Promotion and rollback of the ``champion`` alias, judged on one holdout for both models.

Each registered version carries its family, parameters and interaction weights as tags; promotion refits
the challenger and the champion with those on the training side of the same time holdout of the given
data (the same cut and responses, each side's features built with its own weights) and
moves the alias only when the challenger's nDCG@k beats the champion's by the margin. The alias
history is kept as a tag on the registered model so rollback can walk back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mlflow import MlflowClient

from models.families import create, recorded_params
from recsys.dataset import LoyaltyData
from recsys.errors import ModelError
from recsys.interactions import InteractionWeights, build_training_set
from recsys.settings import Settings
from training import tracking
from training.evaluate import evaluate
from training.train import Holdout, build_holdout, load_history

HISTORY_TAG = "champion_history"


@dataclass(frozen=True)
class PromoteResult:
    challenger: str
    champion: str | None
    challenger_score: float
    champion_score: float | None
    promoted: bool
    reason: str


def score_version(
    client: MlflowClient, name: str, version: str, holdout_for: Callable[[InteractionWeights], Holdout], k: int
) -> float:
    """nDCG@k of a registered version's family and parameters, refit on the training side of the holdout
    built with the interaction weights it was trained with (``holdout_for``)."""
    found = client.get_model_version(name, version)
    family = found.tags.get("family")
    if not family:
        raise ModelError(f"version {version} of {name} has no family tag; it was not registered by `offers train`")
    params = recorded_params(family, json.loads(found.tags.get("params", "{}")))
    recorded = found.tags.get(tracking.WEIGHTS_TAG)
    holdout = holdout_for(InteractionWeights.as_recorded(json.loads(recorded) if recorded else None))
    model = create(family, **params).fit(holdout.train)
    report = evaluate(model, holdout.train, holdout.relevant, k=k, exclude=holdout.ineligible)
    return report.overall.ndcg


def holdouts(data_dir: Path, data: LoyaltyData, holdout_days: int) -> Callable[[InteractionWeights], Holdout]:
    """The holdout with its training side built for given interaction weights. The cut, the responses
    scored and the mask are the same for all (they do not depend on the weights), so they are built once,
    with the first weights asked for; each further set of weights builds only its training side."""
    built: dict[InteractionWeights, Holdout] = {}

    def holdout_for(weights: InteractionWeights) -> Holdout:
        if weights in built:
            return built[weights]
        if built:
            first = next(iter(built.values()))
            train, _ = build_training_set(data, until=first.cut, weights=weights)
            holdout = replace(first, train=train)
        else:
            holdout = build_holdout(data_dir, data, weights, holdout_days)
        built[weights] = holdout
        return holdout

    return holdout_for


def _history(client: MlflowClient, name: str) -> list[str]:
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG, "[]")
    return [str(v) for v in json.loads(raw)]


def _move_champion(client: MlflowClient, name: str, version: str, history: list[str]) -> None:
    tracking.set_champion(client, name, version)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))


def promote(
    settings: Settings,
    data_dir: Path,
    *,
    challenger: str | None = None,
    margin: float = 0.02,
    force: bool = False,
    holdout_days: int = 28,
    k: int = 10,
    echo: Callable[[str], None] = print,
) -> PromoteResult:
    """Make ``challenger`` (default: the newest version) champion if it is better by ``margin``
    (relative, 0.02 = 2%) on the holdout, or unconditionally with ``force``."""
    client = tracking.configure(settings)
    name = settings.model_name
    if challenger is None:
        newest = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
        if not newest:
            raise ModelError(f"no version of model {name!r} is registered yet; run `offers train` first")
        challenger = str(newest[0].version)
    current = tracking.champion(client, name)
    current_version = str(current.version) if current is not None else None
    if current_version == challenger:
        return PromoteResult(challenger, current_version, float("nan"), None, False, "already the champion")

    holdout_for = holdouts(data_dir, load_history(data_dir, settings, echo), holdout_days)
    challenger_score = score_version(client, name, challenger, holdout_for, k)
    champion_score = score_version(client, name, current_version, holdout_for, k) if current_version else None
    echo(f"challenger version {challenger}: nDCG@{k} {challenger_score:.4f}")
    if champion_score is not None:
        echo(f"champion   version {current_version}: nDCG@{k} {champion_score:.4f}")

    better = champion_score is None or challenger_score >= champion_score * (1 + margin)
    if not (better or force):
        reason = f"not better than the champion by the margin of {margin:.1%}"
        echo(f"Kept version {current_version} as champion: challenger {reason}.")
        return PromoteResult(challenger, current_version, challenger_score, champion_score, False, reason)
    history = _history(client, name)
    if current_version is not None:
        history.append(current_version)
    _move_champion(client, name, challenger, history)
    reason = "forced" if force and not better else "better on the holdout"
    echo(f"Version {challenger} is now champion ({reason}).")
    return PromoteResult(challenger, current_version, challenger_score, champion_score, True, reason)


def rollback_champion(settings: Settings, echo: Callable[[str], None] = print) -> str:
    """Move ``champion`` back to the version that held it before the last promotion."""
    client = tracking.configure(settings)
    name = settings.model_name
    history = _history(client, name)
    if not history:
        raise ModelError(f"model {name!r} has no earlier champion to roll back to")
    previous = history.pop()
    _move_champion(client, name, previous, history)
    echo(f"Version {previous} is champion again.")
    return previous
