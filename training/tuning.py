"""Hyperparameter search that never sees the test split.

Each trial fits on the training interactions minus a seeded per-member holdout (``holdout_per_user``,
20% by default) and is scored by nDCG@k on that holdout, training items excluded; or, given a
``Validation`` built by the caller (the training job carves a time split from the training history, the
same protocol as its test), on that. The caller refits the best parameters on all training data.

The family's defaults are always the first trial. The best of many trials on one validation split is
flattered by that split's noise (the winner's curse), so the leading trials and the defaults are fitted
and scored again on a second split the search never saw (``confirmation``: a disjoint per-member holdout,
or the caller's earlier time window), and a trial replaces the defaults only if its gain there is larger
than its noise. MLflow stays out of this module: the caller logs trials through ``on_trial``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import optuna
import scipy.sparse as sp
from optuna.distributions import BaseDistribution

from models.base import TrainingSet
from models.families import ParamRange, create, default_params, family_class, search_space
from recsys.errors import ModelError
from training.metrics import ranking_metrics, user_metrics
from training.split import holdout_folds


@dataclass(frozen=True)
class Validation:
    """What every trial fits on (``fit``) and is scored against (``relevant``), built once."""

    fit: TrainingSet
    relevant: sp.csr_matrix
    exclude: sp.csr_matrix | None = None  # what a trial may not recommend; None: the fit interactions

    @property
    def members(self) -> np.ndarray:
        return np.flatnonzero(np.diff(self.relevant.indptr) > 0).astype(np.int64)


def validation_split(train: TrainingSet, *, fraction: float = 0.2, seed: int = 0, fold: int = 0) -> Validation:
    """Hold out ``fraction`` of each member's positive training interactions for scoring trials; the
    folds of one seed hold out disjoint interactions (fold 1 confirms what fold 0 chose)."""
    return validation_splits(train, folds=(fold,), fraction=fraction, seed=seed)[0]


def validation_splits(
    train: TrainingSet, *, folds: Sequence[int], fraction: float = 0.2, seed: int = 0
) -> list[Validation]:
    """``validation_split`` for each of ``folds``, from one draw (``holdout_folds``)."""
    positive = sp.csr_matrix(train.interactions).maximum(0).tocsr()
    out = []
    for _, held in holdout_folds(positive, folds=folds, fraction=fraction, seed=seed):
        fit = dataclasses.replace(
            train,
            interactions=_without(train.interactions, held).astype(np.float32),
            # a held-out response must not show through the exposure either
            shown=None if train.shown is None else _without(train.shown, held),
            responded=None if train.responded is None else _without(train.responded, held),
        )
        out.append(Validation(fit, held))
    return out


def _without(matrix: sp.csr_matrix, held: sp.csr_matrix) -> sp.csr_matrix:
    """``matrix`` with the held-out pairs removed."""
    kept = sp.csr_matrix(matrix - matrix.multiply(held.astype(bool)))
    kept.eliminate_zeros()
    return kept


# What a fit with unlucky parameters raises (divergence, singular systems); anything else is a bug.
_TRIAL_FAILURES = (ModelError, ValueError, ArithmeticError, np.linalg.LinAlgError)


@dataclass(frozen=True)
class TrialResult:
    number: int
    params: dict[str, Any]  # the searched parameters only
    score: float  # nDCG@k on the validation holdout; NaN when the trial failed
    fit_s: float
    state: str  # "complete" or "failed"
    error: str = ""


@dataclass(frozen=True)
class TuneResult:
    family: str
    best_params: dict[str, Any]  # defaults overlaid with the best trial's parameters
    best_score: float
    trials: list[TrialResult]
    metric: str = "ndcg_at_10"
    kept_defaults: bool = False  # the best trial's gain over the defaults was within the noise
    gain: float = math.nan  # the chosen trial's mean per-member gain over the defaults on ``judged_on``
    gain_se: float = math.nan  # its standard error
    judged_on: str = "validation"  # the split the gain was measured on: "validation" or "confirmation"
    confirmation_scores: dict[int, float] = dataclasses.field(default_factory=dict)  # trial -> nDCG there


def _distribution(name: str, spec: ParamRange) -> BaseDistribution:
    if spec.kind == "categorical":
        return optuna.distributions.CategoricalDistribution(list(spec.choices))
    if spec.kind == "int":
        step = 1 if spec.log else spec.step  # Optuna allows no step on a log scale
        return optuna.distributions.IntDistribution(int(spec.low), int(spec.high), log=spec.log, step=step)
    if spec.kind == "float":
        return optuna.distributions.FloatDistribution(float(spec.low), float(spec.high), log=spec.log)
    raise ModelError(f"search space entry {name!r} has an unknown kind {spec.kind!r}")


def space_of(family: str) -> dict[str, BaseDistribution]:
    """The family's tunable ranges as Optuna distributions."""
    return {name: _distribution(name, spec) for name, spec in search_space(family).items()}


def _defaults_in(space: Mapping[str, BaseDistribution], defaults: Mapping[str, Any]) -> dict[str, Any]:
    chosen: dict[str, Any] = {}
    for name, dist in space.items():
        if name not in defaults:
            continue
        value = defaults[name]
        try:
            inside = dist._contains(dist.to_internal_repr(value))
        except (ValueError, TypeError):
            inside = False
        if inside:
            chosen[name] = value
    return chosen


def score_params(family: str, params: Mapping[str, Any], validation: Validation, *, k: int = 10) -> tuple[float, float]:
    """Fit ``family`` with ``params`` on the validation fit set; return (nDCG@k, fit seconds)."""
    score, _, fit_s = _score(family, params, validation, k)
    return score, fit_s


def _score(
    family: str, params: Mapping[str, Any], validation: Validation, k: int
) -> tuple[float, npt.NDArray[np.float64], float]:
    """(nDCG@k, each validation member's nDCG@k, fit seconds)."""
    model = create(family, **params)
    started = time.perf_counter()
    model.fit(validation.fit)
    fit_s = time.perf_counter() - started
    members = validation.members
    if len(members) == 0:
        raise ModelError("the validation holdout is empty: every member has a single interaction")
    exclude = validation.exclude if validation.exclude is not None else validation.fit.interactions
    top, _ = model.recommend(members, k=k, exclude=exclude)
    relevant = validation.relevant[members]
    return ranking_metrics(top, relevant, k=k).ndcg, user_metrics(top, relevant, k).ndcg, fit_s


def _gain(best: npt.NDArray[np.float64], base: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Mean per-member gain of ``best`` over ``base`` and its standard error (paired, same members)."""
    diff = best - base
    if len(diff) < 2:
        return float(diff.mean()) if len(diff) else 0.0, math.inf
    return float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(len(diff)))


def tune(
    family: str,
    train: TrainingSet,
    *,
    n_trials: int,
    seed: int = 42,
    k: int = 10,
    timeout_s: float | None = None,
    validation: Validation | None = None,
    confirmation: Validation | None = None,
    holdout_fraction: float = 0.2,
    space: Mapping[str, ParamRange] | None = None,
    on_trial: Callable[[TrialResult], None] | None = None,
    min_gain_se: float = 1.0,
    n_confirm: int = 3,
) -> TuneResult:
    """TPE search over ``models.families.search_space(family)``, less the parameters that cannot act on
    ``train`` (``Recommender.idle_params``: a bare interactions file has no features for LightFM's
    matching, say), scored on a training-only holdout.

    At most ``n_trials`` trials (the defaults first); no new trial starts after ``timeout_s``.
    Without ``validation`` the search scores fold 0 of a per-member holdout of ``train`` and confirms
    on fold 1; a caller that brings its own ``validation`` brings its own ``confirmation`` (or none).

    Choosing: the ``n_confirm`` best trials on validation and the defaults are fitted and scored on the
    confirmation split; the trial with the best mean of its two scores is taken only if its mean
    per-member nDCG gain over the defaults on the confirmation split exceeds ``min_gain_se`` standard
    errors of that paired gain. Without a confirmation split the gain is judged on the validation split,
    which flatters the best of many trials. ``space`` replaces the family's ranges (same ``ParamRange``
    form) for a one-off search. A trial that raises is recorded as failed and the search goes on; if
    every trial fails the first error is raised as ``ModelError``.
    """
    defaults = dict(default_params(family))
    ranges = space_of(family) if space is None else {name: _distribution(name, spec) for name, spec in space.items()}
    idle = family_class(family).idle_params(train)
    ranges = {name: dist for name, dist in ranges.items() if name not in idle}
    metric = f"ndcg_at_{k}"
    if n_trials <= 0 or not ranges:
        return TuneResult(family, defaults, math.nan, [], metric)
    if validation is None:
        folds = (0,) if confirmation is not None else (0, 1)
        splits = validation_splits(train, folds=folds, fraction=holdout_fraction, seed=seed)
        validation = splits[0]
        if confirmation is None:
            confirmation = splits[1]

    logging.getLogger("optuna").setLevel(logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(n_trials // 3, 1)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    start_point = _defaults_in(ranges, defaults)
    if start_point:
        study.enqueue_trial(start_point, skip_if_exists=True)
    per_member: dict[int, npt.NDArray[np.float64]] = {}
    leading = -math.inf

    results: list[TrialResult] = []
    started = time.perf_counter()
    for number in range(n_trials):
        if timeout_s is not None and number > 0 and time.perf_counter() - started > timeout_s:
            break
        trial = study.ask(fixed_distributions=ranges)
        params = dict(trial.params)
        try:
            score, members_ndcg, fit_s = _score(family, {**defaults, **params}, validation, k)
            if not math.isfinite(score):
                raise ModelError(f"trial scored {score}")
        except _TRIAL_FAILURES as exc:  # a diverging trial must not end the search; it is recorded
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            result = TrialResult(number, params, math.nan, 0.0, "failed", f"{type(exc).__name__}: {exc}")
        else:
            study.tell(trial, score)
            result = TrialResult(number, params, score, fit_s, "complete")
            if number == 0 or score > leading:  # only the defaults' and the leader's are kept
                per_member = {n: v for n, v in per_member.items() if n == 0}
                per_member[number], leading = members_ndcg, score
        results.append(result)
        if on_trial is not None:
            on_trial(result)

    complete = [r for r in results if r.state == "complete"]
    if not complete:
        raise ModelError(f"every {family} tuning trial failed; first: {results[0].error}")
    best = max(complete, key=lambda r: (r.score, -r.number))
    base = results[0] if start_point and results[0].state == "complete" else None
    if base is None or best.number == base.number:
        return TuneResult(family, {**defaults, **best.params}, best.score, results, metric)
    confirmed = None if confirmation is None else _confirm(family, defaults, base, complete, confirmation, k, n_confirm)
    if confirmed is None:  # no confirmation split, or nothing could be fitted there
        chosen: TrialResult | None = best
        gain, gain_se = _gain(per_member[best.number], per_member[base.number])
        judged_on, scores = "validation", dict[int, float]()
    else:
        chosen, gain, gain_se, scores = confirmed
        judged_on = "confirmation"
    kept = chosen is None or gain <= min_gain_se * gain_se  # within the noise: keep the defaults
    taken = base if kept or chosen is None else chosen
    return TuneResult(
        family,
        {**defaults, **taken.params} if not kept else defaults,
        taken.score,
        results,
        metric,
        kept_defaults=kept,
        gain=gain,
        gain_se=gain_se,
        judged_on=judged_on,
        confirmation_scores=scores,
    )


def _confirm(
    family: str,
    defaults: Mapping[str, Any],
    base: TrialResult,
    complete: list[TrialResult],
    confirmation: Validation,
    k: int,
    n_confirm: int,
) -> tuple[TrialResult | None, float, float, dict[int, float]] | None:
    """Score the defaults and the ``n_confirm`` leading trials on ``confirmation``. Returns the trial with
    the best mean of its validation and confirmation scores (None if no leader could be fitted there),
    its paired gain over the defaults on the confirmation split with the gain's standard error, and every
    confirmation score by trial number; None when the defaults cannot be scored there (an empty split)."""
    try:
        base_score, base_members, _ = _score(family, defaults, confirmation, k)
    except _TRIAL_FAILURES:
        return None
    scores: dict[int, float] = {base.number: base_score}
    members: dict[int, npt.NDArray[np.float64]] = {}
    leaders = sorted((r for r in complete if r.number != base.number), key=lambda r: (-r.score, r.number))
    for trial in leaders[: max(n_confirm, 1)]:
        try:
            score, per_member, _ = _score(family, {**defaults, **trial.params}, confirmation, k)
        except _TRIAL_FAILURES:
            continue
        if math.isfinite(score):
            scores[trial.number], members[trial.number] = score, per_member
    if not members:
        return None, math.nan, math.nan, scores
    by_number = {r.number: r for r in complete}
    chosen = max(members, key=lambda n: ((by_number[n].score + scores[n]) / 2, -n))
    gain, gain_se = _gain(members[chosen], base_members)
    return by_number[chosen], gain, gain_se, scores


def describe_params(params: Mapping[str, Any]) -> str:
    """``name=value, ...`` with floats to four significant digits."""
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()
    )


def describe_choice(result: TuneResult, k: int = 10) -> list[str]:
    """How the search chose, in words: the defaults' and the leader's validation scores, the
    confirmation scores and the gain the choice was judged on."""
    lines = []
    complete = [t for t in result.trials if t.state == "complete"]
    if complete and complete[0].number == 0:
        leader = max(complete, key=lambda t: (t.score, -t.number))
        lines.append(
            f"validation nDCG@{k}: defaults {complete[0].score:.4f}, best trial {leader.number} {leader.score:.4f}"
        )
    if result.confirmation_scores:
        scores = ", ".join(
            f"{'defaults' if number == 0 else f'trial {number}'} {score:.4f}"
            for number, score in result.confirmation_scores.items()
        )
        lines.append(f"confirmation nDCG@{k}: {scores}")
    if not math.isnan(result.gain):
        verdict = "kept the defaults: that is within the noise" if result.kept_defaults else "took that trial"
        lines.append(
            f"leading trial's nDCG@{k} gain over the defaults on {result.judged_on}"
            f" {result.gain:+.4f} ± {result.gain_se:.4f} (standard error); {verdict}"
        )
    elif result.confirmation_scores:
        lines.append("no leading trial could be fitted on the confirmation split; kept the defaults")
    return lines
