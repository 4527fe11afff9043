"""The one model interface every family honours.

Every family exports member and offer embeddings plus biases, so that
``score(member, offer) = member_factors[m] @ offer_factors[o] + member_bias[m] + offer_bias[o]``
for every family alike; ``recommend`` is written once, here, on top of that export. Models never
know about Redis, HTTP or MLflow.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recsys.errors import ModelError

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainingSet:
    """What a model learns from: a weighted member x offer matrix and optional side features.

    Rows of ``member_features`` / ``offer_features`` line up with ``member_ids`` / ``offer_ids``.
    ``member_tiers`` (0 = classic .. 4 = diamond) lets popularity rank within a tier. ``shown`` and
    ``responded`` (members x offers, 0/1) say which offers each member saw and which of those they took
    up, so a model can learn response rates that correct for what a member happened to be shown.
    ``member_price_levels`` and ``feature_price_levels`` place members and the offer features that have
    a price (``brand:<name>``) on one scale of how upmarket they are (``recsys.price_levels``).
    """

    interactions: sp.csr_matrix  # float32 weights; >0 positive evidence
    member_ids: npt.NDArray[np.str_]
    offer_ids: npt.NDArray[np.str_]
    member_tiers: npt.NDArray[np.int8]
    member_features: sp.csr_matrix | None = None
    offer_features: sp.csr_matrix | None = None
    member_feature_names: tuple[str, ...] = ()
    offer_feature_names: tuple[str, ...] = ()
    # Exposure, where the history records it (offer events do; a bare interactions file does not):
    # 1 where the offer was shown to the member, and 1 where the member clicked or redeemed it.
    shown: sp.csr_matrix | None = None
    responded: sp.csr_matrix | None = None
    member_price_levels: npt.NDArray[np.float64] | None = None
    feature_price_levels: Mapping[str, float] = field(default_factory=dict)

    @property
    def n_members(self) -> int:
        return int(self.interactions.shape[0])

    @property
    def n_offers(self) -> int:
        return int(self.interactions.shape[1])


@dataclass(frozen=True)
class Embeddings:
    """Scores as a dot product plus biases; ``informed`` is False where a row carries no signal
    (a member with neither history nor features) so callers can fall back to popular-in-tier."""

    factors: FloatArray  # (n, d)
    bias: FloatArray  # (n,)
    informed: npt.NDArray[np.bool_]  # (n,)

    def __post_init__(self) -> None:
        n = self.factors.shape[0]
        if self.bias.shape != (n,) or self.informed.shape != (n,):
            raise ValueError("factors, bias and informed must have the same number of rows")


def score_rows(member: Embeddings, offer: Embeddings, rows: IntArray) -> npt.NDArray[np.floating]:
    """Scores of the members at ``rows`` against every offer: factors dot product plus both biases."""
    return member.factors[rows] @ offer.factors.T + offer.bias[None, :] + member.bias[rows, None]


def top_k(scores: FloatArray, k: int) -> tuple[IntArray, FloatArray]:
    """Row-wise top-k of a dense score matrix, best first, with argpartition (O(n) per row). Equal
    scores go to the lowest column first, whatever the CPU: numpy's argpartition picks among ties by
    its implementation, which differs with the vector units it dispatches to (AVX-512 or AVX2), so
    without this the same scores could rank, recommend and evaluate differently from one machine to
    another (the sample's oracle, whose affinities tie often, read 0.2105 nDCG@10 with numpy's AVX-512
    code and 0.2128 without it)."""
    n = scores.shape[1]
    k = min(k, n)
    if k <= 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty.astype(np.float32)
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        boundary = np.take_along_axis(scores, part, axis=1).min(axis=1)
        tied = np.flatnonzero((scores >= boundary[:, None]).sum(axis=1) > k)  # more at the boundary than fit
        if len(tied):
            part[tied] = _lowest_columns_first(scores[tied], boundary[tied], k)
        part = np.sort(part, axis=1)
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")  # stable: ties stay in column order
    ids = np.take_along_axis(part, order, axis=1).astype(np.int64)
    return ids, np.take_along_axis(part_scores, order, axis=1).astype(np.float32)


def _lowest_columns_first(scores: FloatArray, boundary: FloatArray, k: int) -> IntArray:
    """Per row, the columns above ``boundary`` (the row's k-th score) and, of those at it, the lowest
    ones, k in all, in column order."""
    above = scores > boundary[:, None]
    at = scores == boundary[:, None]
    room = k - above.sum(axis=1)
    chosen = above | (at & (np.cumsum(at, axis=1) <= room[:, None]))
    columns: IntArray = np.nonzero(chosen)[1].reshape(len(scores), k)
    return columns


class Recommender(ABC):
    """Base of every model family: fit, export embeddings, recommend in batches, save and load.

    Files are written with ``np.savez`` (``allow_pickle=False``) plus a JSON of parameters; no
    pickles.
    """

    family: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}  # every parameter a family takes, with its default
    # parameters added after models were first registered, with the value that fits as those models did
    introduced: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            allowed = ", ".join(sorted(self.defaults))
            raise ModelError(f"{self.family} takes no parameter {', '.join(unknown)}; expected among {allowed}")
        self.params: dict[str, Any] = {**self.defaults, **params}

    @abstractmethod
    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self: ...

    @classmethod
    def idle_params(cls, data: TrainingSet) -> frozenset[str]:
        """Parameters that cannot change a fit on ``data``, because what they act on (side features,
        exposure, price levels) is absent; tuning leaves them out rather than spend trials on them."""
        return frozenset()

    @abstractmethod
    def member_embeddings(
        self,
        member_features: sp.csr_matrix | None = None,
        interactions: sp.csr_matrix | None = None,
    ) -> Embeddings:
        """Embeddings of the training members, or of other members described by features and/or
        history (fold-in) when given; rows follow the given matrices."""

    @abstractmethod
    def offer_embeddings(self, offer_features: sp.csr_matrix | None = None) -> Embeddings:
        """Embeddings of the training offers, or of offers described by features (cold offers)."""

    @abstractmethod
    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Learned state as named arrays for ``save``."""

    @abstractmethod
    def _restore(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        """Inverse of ``_arrays``."""

    def recommend(
        self,
        members: IntArray,
        k: int = 10,
        exclude: sp.csr_matrix | None = None,
        member_emb: Embeddings | None = None,
        offer_emb: Embeddings | None = None,
        batch_size: int = 4096,
    ) -> tuple[IntArray, FloatArray]:
        """Top-k offer indices and scores for each member index, best first.

        ``exclude`` (members x offers, rows indexed like ``members``' source) masks offers the
        member already has. Scoring is batched matrix products, top-k by argpartition.
        """
        m = member_emb or self.member_embeddings()
        o = offer_emb or self.offer_embeddings()
        out_ids = np.empty((len(members), min(k, o.factors.shape[0])), dtype=np.int64)
        out_scores = np.empty(out_ids.shape, dtype=np.float32)
        for start in range(0, len(members), batch_size):
            rows = members[start : start + batch_size]
            scores = score_rows(m, o, rows).astype(np.float32, copy=False)
            if exclude is not None:
                sub = exclude[rows].tocoo()
                scores[sub.row, sub.col] = -np.inf
            ids, sc = top_k(scores, k)
            out_ids[start : start + len(rows)] = ids
            out_scores[start : start + len(rows)] = sc
        return out_ids, out_scores

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "state.npz", allow_pickle=False, **self._arrays())
        (path / "params.json").write_text(json.dumps({"family": self.family, "params": self.params}, indent=2))

    @classmethod
    def load(cls, path: Path) -> Self:
        meta = read_meta(path)
        if meta["family"] != cls.family:
            raise ModelError(f"{path} holds a {meta['family']} model, not {cls.family}")
        model = cls(**meta["params"])
        try:
            with np.load(path / "state.npz", allow_pickle=False) as npz:
                model._restore({k: npz[k] for k in npz.files})
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load the model state in {path}: {exc}") from exc
        return model


def read_meta(path: Path) -> dict[str, Any]:
    """The family and parameters a saved model was written with."""
    try:
        meta = json.loads((path / "params.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"no saved model in {path}: {exc}") from exc
    if not isinstance(meta, dict) or "family" not in meta or not isinstance(meta.get("params"), dict):
        raise ModelError(f"{path / 'params.json'} does not describe a model")
    return meta
