"""The model families by name: create one, know its defaults and the ranges worth tuning, load a saved one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from models.base import Recommender, read_meta
from models.implicit_mf import ImplicitALS, ImplicitBPR
from models.lightfm_hybrid import LightFMHybrid
from models.popularity import Popularity
from recsys.errors import ModelError

if TYPE_CHECKING:
    import optuna

FAMILIES: dict[str, type[Recommender]] = {
    cls.family: cls for cls in (LightFMHybrid, ImplicitALS, ImplicitBPR, Popularity)
}


@dataclass(frozen=True)
class ParamRange:
    """One tunable parameter: an int or float range (``log`` for a log-uniform one), or a set of choices."""

    kind: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()


_SEARCH_SPACES: dict[str, dict[str, ParamRange]] = {
    "lightfm": {
        "loss": ParamRange("categorical", choices=("warp", "bpr")),
        "no_components": ParamRange("int", 16, 128, step=16),
        "learning_rate": ParamRange("float", 0.005, 0.2, log=True),
        "item_alpha": ParamRange("float", 1e-8, 1e-4, log=True),
        "user_alpha": ParamRange("float", 1e-8, 1e-4, log=True),
        "epochs": ParamRange("int", 5, 60, step=5),
        "max_sampled": ParamRange("int", 5, 50, step=5),
        "match_city": ParamRange("float", 0.0, 60.0),
        "match_partner": ParamRange("float", 0.0, 60.0),
        "response_category": ParamRange("float", 0.0, 40.0),
        "level_fit": ParamRange("float", 0.0, 10.0),
    },
    "als": {
        "factors": ParamRange("int", 16, 128, step=16),
        "regularization": ParamRange("float", 0.1, 300.0, log=True),
        "alpha": ParamRange("float", 1.0, 50.0, log=True),
        "iterations": ParamRange("int", 5, 30, step=5),
    },
    "bpr": {
        "factors": ParamRange("int", 16, 128, step=16),
        "learning_rate": ParamRange("float", 1e-3, 0.1, log=True),
        "regularization": ParamRange("float", 1e-3, 0.3, log=True),
        "iterations": ParamRange("int", 50, 600, step=50),
    },
    "popularity": {
        "within_tier": ParamRange("categorical", choices=(True, False)),
        "smoothing": ParamRange("float", 0.0, 100.0),
    },
}


def family_class(family: str) -> type[Recommender]:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ModelError(f"unknown model family {family!r}; expected one of {', '.join(FAMILIES)}") from None


def create(family: str, **params: Any) -> Recommender:
    """A new, unfitted model of ``family``; parameters not given take the family's defaults."""
    return family_class(family)(**params)


def recorded_params(family: str, recorded: dict[str, Any]) -> dict[str, Any]:
    """Parameters to refit a registered model with: those it recorded, and for parameters added to the
    family since, the value that fits as it was fitted (off), not today's default."""
    missing = {name: value for name, value in family_class(family).introduced.items() if name not in recorded}
    return {**missing, **recorded}


def default_params(family: str) -> dict[str, Any]:
    return dict(family_class(family).defaults)


def search_space(family: str) -> dict[str, ParamRange]:
    """The parameters worth tuning for ``family`` and their ranges; the others keep their defaults."""
    family_class(family)
    return dict(_SEARCH_SPACES[family])


def suggest_params(trial: optuna.Trial, family: str) -> dict[str, Any]:
    """Full parameters for ``family`` with the tunable ones drawn by an Optuna trial."""
    params = default_params(family)
    for name, spec in search_space(family).items():
        if spec.kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(spec.choices))
        elif spec.kind == "int":
            params[name] = trial.suggest_int(name, int(spec.low), int(spec.high), step=spec.step, log=spec.log)
        else:
            params[name] = trial.suggest_float(name, spec.low, spec.high, log=spec.log)
    return params


def load(path: Path) -> Recommender:
    """A saved model of whichever family wrote it."""
    return family_class(str(read_meta(path)["family"])).load(path)
