"""LightFM hybrid: members and offers are sums of their feature embeddings, so cold rows embed from features.

Training members and offers carry an identity feature beside their side features; a member with no
responses, or an offer no one responded to or added after training, is embedded from its side features
alone, at the weight they have beside an identity: the untrained identity counts as its prior, zero
(``recsys.features.trained_part``). Positive evidence
becomes LightFM's interactions with the weights (scaled to mean 1, capped) as sample weights; dismissals
and other non-positive evidence are left out, since LightFM would otherwise treat them as positives that
must never be sampled as negatives. A row is ``informed`` when some feature it has was trained, that is,
occurs in a row that had positive evidence. Results repeat for a fixed ``random_state`` with
``num_threads=1``, the default; with more threads (``offers train --threads N``) LightFM's lock-free
updates race and runs differ slightly (about 0.015 nDCG@10 on the sample).

Matching features. A sum of feature embeddings learns "members who stay in Lisbon like Lisbon offers"
only slowly, one city at a time, from sparse responses. Each ``match_<group>`` parameter (the feature
group's prefix without its colon: ``match_city``, ``match_partner``) adds that knowledge directly: one
extra embedding dimension per value both sides share (``city:Lisbon`` on a member and on an offer),
worth ``match_<group>`` on the member side when the member has the value and the offer's own feature
weight on the offer side. The extra dimensions are part of the exported embeddings, so serving scores
every member and offer, new ones too, exactly as training did; 0 turns a group off.

Response rates. WARP learns from positives alone, so it never sees which offers a member was shown and
ignored. Where the training set records exposure (``shown``/``responded``), each ``response_<group>``
parameter (``response_category``) adds one dimension per value of the offer feature group: on the member
side the parameter times the member's shrunk log ratio of observed to expected take-up of that group's
offers (``models.response_rates``), on the offer side the offer's own feature weight. A member with no
exposure (new, or seen only through features) has 0 there, an average member; 0 turns a group off.

Price-level fit. Where the training set places members and brands on one price scale
(``recsys.price_levels``), ``level_fit`` adds ``level_fit * (c - (member level - brand level)^2)`` to
every hotel offer's score: a member is steered to brands near the level they book at and away from
those far above or below it (``c``, the mean squared distance in training, keeps the average hotel offer
where it was). The square expands into three dimensions, member side ``level_fit * (2 * level, -1,
c - level^2)`` and offer side the offer's brand weight times ``(brand level, brand level^2, 1)``, linear in
the offer's features as the rest is, so a new offer scores the same way; members embedded from features
or folded in have 0 there; 0 turns it off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from lightfm import LightFM

from models.base import Embeddings, Recommender, TrainingSet
from models.implicit_mf import has_positive, least_squares_fold_in
from models.response_rates import response_rates
from recsys.errors import ModelError
from recsys.features import trained_part

LOSSES = ("warp", "bpr", "warp-kos")
MAX_SAMPLE_WEIGHT = 10.0  # relative to the mean positive weight; keeps SGD steps bounded
FOLD_IN_REGULARIZATION = 1.0
MATCH_PARAM = "match_"
RESPONSE_PARAM = "response_"
LEVEL_PARAM = "level_fit"

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


def _float_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    out = sp.csr_matrix(matrix, dtype=np.float32)
    out.sort_indices()
    return out


def _learned(features: sp.csr_matrix, rows: BoolArray) -> BoolArray:
    """Feature columns present in at least one of ``rows``: the ones training updated."""
    return np.asarray(features[np.flatnonzero(rows)].getnnz(axis=0) > 0)


def match_columns(
    member_names: tuple[str, ...], offer_names: tuple[str, ...], weights: dict[str, float]
) -> tuple[IntArray, IntArray, FloatArray]:
    """For every value of a matched group found on both sides: its member column, its offer column and
    the group's weight (``weights`` maps a group name such as ``city`` to its weight; 0 leaves it out)."""
    offer_column = {name: j for j, name in enumerate(offer_names)}
    prefixes = {f"{group}:": w for group, w in weights.items() if w > 0}
    rows = [
        (i, offer_column[name], prefixes[name.split(":", 1)[0] + ":"])
        for i, name in enumerate(member_names)
        if ":" in name and name.split(":", 1)[0] + ":" in prefixes and name in offer_column
    ]
    return (
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float32),
    )


def _can_match(data: TrainingSet) -> bool:
    """Matching needs side features, with their names, on both sides."""
    sides = (data.member_features, data.offer_features)
    return all(f is not None for f in sides) and bool(data.member_feature_names and data.offer_feature_names)


def _has_exposure(data: TrainingSet) -> bool:
    """Response rates need what each member was shown and took up, and named offer features to group by."""
    return data.shown is not None and data.responded is not None and bool(data.offer_feature_names)


def _has_price_levels(data: TrainingSet) -> bool:
    """The price-level fit needs members' levels and the levels of priced offer features."""
    return data.member_price_levels is not None and bool(data.feature_price_levels)


def _informed(features: sp.csr_matrix, learned: BoolArray) -> BoolArray:
    """Rows holding at least one trained feature."""
    return np.asarray((features != 0).astype(np.float32) @ learned.astype(np.float32) > 0).ravel()


class LightFMHybrid(Recommender):
    family: ClassVar[str] = "lightfm"
    defaults: ClassVar[dict[str, Any]] = {
        "loss": "warp",
        "no_components": 32,
        "learning_rate": 0.05,
        "item_alpha": 1e-6,
        "user_alpha": 1e-6,
        "epochs": 30,
        "max_sampled": 10,
        "random_state": 42,
        "num_threads": 1,  # repeatable by default; `offers train --threads N` trades that for speed
        "match_city": 30.0,
        "match_partner": 30.0,
        "match_brand_level": 0.0,
        "response_category": 8.0,
        "level_fit": 3.0,
    }
    introduced: ClassVar[dict[str, Any]] = {"response_category": 0.0, "level_fit": 0.0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.params["loss"] not in LOSSES:
            raise ModelError(f"lightfm loss {self.params['loss']!r} is not one of {', '.join(LOSSES)}")
        self._model: LightFM | None = None
        self._member_features: sp.csr_matrix | None = None
        self._offer_features: sp.csr_matrix | None = None
        self._member_learned: BoolArray | None = None
        self._offer_learned: BoolArray | None = None
        self._match: tuple[IntArray, IntArray, FloatArray] = _no_match()
        self._response: tuple[IntArray, FloatArray] = _no_response()
        self._level: tuple[IntArray, FloatArray, FloatArray] = _no_level()

    @classmethod
    def idle_params(cls, data: TrainingSet) -> frozenset[str]:
        """The matching, response-rate and price-level weights, where what they act on is missing (as in a
        bare interactions file): the same tests ``fit`` makes before adding their dimensions."""
        idle: set[str] = set()
        if not _can_match(data):
            idle |= {name for name in cls.defaults if name.startswith(MATCH_PARAM)}
        if not _has_exposure(data):
            idle |= {name for name in cls.defaults if name.startswith(RESPONSE_PARAM)}
        if not _has_price_levels(data):
            idle.add(LEVEL_PARAM)
        return frozenset(idle)

    def _lightfm(self) -> LightFM:
        return LightFM(
            no_components=int(self.params["no_components"]),
            loss=str(self.params["loss"]),
            learning_rate=float(self.params["learning_rate"]),
            item_alpha=float(self.params["item_alpha"]),
            user_alpha=float(self.params["user_alpha"]),
            max_sampled=int(self.params["max_sampled"]),
            random_state=self.params["random_state"],
        )

    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self:
        member_features = _float_csr(
            data.member_features if data.member_features is not None else sp.identity(data.n_members, format="csr")
        )
        offer_features = _float_csr(
            data.offer_features if data.offer_features is not None else sp.identity(data.n_offers, format="csr")
        )
        if member_features.shape[0] != data.n_members or offer_features.shape[0] != data.n_offers:
            raise ModelError("feature rows do not line up with the interaction matrix")
        positive = sp.coo_matrix(data.interactions.multiply(data.interactions > 0), dtype=np.float32)
        positive.eliminate_zeros()
        if positive.nnz == 0:
            raise ModelError("lightfm needs at least one positive interaction")
        interactions = sp.coo_matrix((np.ones(positive.nnz, np.float32), (positive.row, positive.col)), positive.shape)
        weights = None
        if self.params["loss"] != "warp-kos":
            scaled = np.minimum(positive.data / positive.data.mean(), MAX_SAMPLE_WEIGHT).astype(np.float32)
            weights = sp.coo_matrix((scaled, (positive.row, positive.col)), positive.shape)
        model = self._lightfm()
        try:  # one call for every epoch: LightFM converts and checks its inputs once per call
            model.fit_partial(
                interactions,
                user_features=member_features,
                item_features=offer_features,
                sample_weight=weights,
                epochs=int(self.params["epochs"]),
                num_threads=int(self.params["num_threads"]),
                verbose=show_progress,
            )
        except ValueError as exc:
            raise ModelError(f"lightfm could not be fitted: {exc}") from exc
        self._model = model
        self._member_features, self._offer_features = member_features, offer_features
        self._member_learned = _learned(member_features, has_positive(data.interactions, axis=1))
        self._offer_learned = _learned(offer_features, has_positive(data.interactions, axis=0))
        self._match = _no_match()
        if _can_match(data):
            self._match = match_columns(
                data.member_feature_names, data.offer_feature_names, self._group_weights(MATCH_PARAM)
            )
        self._response = self._response_dims(data, offer_features)
        self._level = self._level_dims(data, offer_features)
        return self

    def _level_dims(self, data: TrainingSet, offer_features: sp.csr_matrix) -> tuple[IntArray, FloatArray, FloatArray]:
        """(offer columns with a price level, their (level, level^2, 1) rows, members x 3 member side)."""
        weight = float(self.params[LEVEL_PARAM])
        if weight <= 0 or not _has_price_levels(data):
            return _no_level()
        member = np.asarray(data.member_price_levels, dtype=np.float64)
        if member.shape != (data.n_members,):
            raise ModelError(f"member price levels have shape {member.shape}, expected ({data.n_members},)")
        cols, level = _valued_columns(data.offer_feature_names, data.feature_price_levels.get)
        values = np.column_stack([level, level**2, np.ones_like(level)])
        side = np.asarray(offer_features[:, cols] @ values)  # per offer: sum w z, sum w z^2, sum w
        hotel = side[:, 2] > 0
        if not hotel.any():
            return _no_level()
        offer_level = side[hotel, 0] / side[hotel, 2]
        # mean over members and hotel offers of (member - offer)^2, expanded
        spread = float((member**2).mean() - 2 * member.mean() * offer_level.mean() + (offer_level**2).mean())
        member_side = weight * np.column_stack([2 * member, -np.ones_like(member), spread - member**2])
        return cols, values.astype(np.float32), member_side.astype(np.float32)

    def _response_dims(self, data: TrainingSet, offer_features: sp.csr_matrix) -> tuple[IntArray, FloatArray]:
        """(offer columns, members x columns member side) of the response-rate dimensions."""
        if not _has_exposure(data):
            return _no_response()
        groups = {group: w for group, w in self._group_weights(RESPONSE_PARAM).items() if w > 0}
        cols, weights = _valued_columns(
            data.offer_feature_names, lambda feature: groups.get(feature.split(":", 1)[0]) if ":" in feature else None
        )
        if not len(cols):
            return _no_response()
        rates = response_rates(data.shown, data.responded, offer_features[:, cols])
        return cols, (rates * weights[None, :]).astype(np.float32)

    def _group_weights(self, param_prefix: str) -> dict[str, float]:
        """Feature group -> weight, from the parameters named ``<param_prefix><group>``."""
        return {
            name.removeprefix(param_prefix): float(value)
            for name, value in self.params.items()
            if name.startswith(param_prefix)
        }

    def _member_match(self, features: sp.csr_matrix) -> FloatArray:
        """The member side of the matching dimensions: the group's weight where the member has the value."""
        member_cols, _, weights = self._match
        present = (features[:, member_cols] != 0).astype(np.float32)
        return np.asarray(present.multiply(weights[None, :]).toarray(), dtype=np.float32)

    def _offer_match(self, features: sp.csr_matrix) -> FloatArray:
        """The offer side: the offer's own weight of the value (linear in its features, as LightFM is)."""
        _, offer_cols, _ = self._match
        return np.asarray(features[:, offer_cols].toarray(), dtype=np.float32)

    def _fitted(self) -> tuple[LightFM, sp.csr_matrix, sp.csr_matrix, BoolArray, BoolArray]:
        if (
            self._model is None
            or self._member_features is None
            or self._offer_features is None
            or self._member_learned is None
            or self._offer_learned is None
        ):
            raise ModelError("the lightfm model has not been fitted")
        return self._model, self._member_features, self._offer_features, self._member_learned, self._offer_learned

    def member_embeddings(
        self, member_features: sp.csr_matrix | None = None, interactions: sp.csr_matrix | None = None
    ) -> Embeddings:
        """Training members; members described by features in the training feature space (new members
        too); or, given history alone, members folded in by least squares against the offer embeddings."""
        model, trained_features, _, learned, _ = self._fitted()
        if member_features is None and interactions is not None:
            offers = self.offer_embeddings()
            history = sp.csr_matrix(interactions, dtype=np.float32)
            width = model.no_components  # LightFM's dimensions come first; those after it are not learned
            folded = least_squares_fold_in(offers.factors[:, :width], history, FOLD_IN_REGULARIZATION, 1.0)
            extra = np.zeros((len(folded), offers.factors.shape[1] - width), np.float32)
            folded = np.hstack([folded, extra])  # no features, exposure or level to go on
            return Embeddings(folded, np.zeros(len(folded), np.float32), has_positive(history, axis=1))
        features = trained_features if member_features is None else _float_csr(member_features)
        if features.shape[1] != len(learned):
            raise ModelError(f"member features have {features.shape[1]} columns, the model {len(learned)}")
        bias, factors = model.get_user_representations(_float_csr(trained_part(features, learned)))
        return Embeddings(
            factors=np.hstack(
                [
                    np.asarray(factors, dtype=np.float32),
                    self._member_match(features),
                    _own(self._response[1], features.shape[0], member_features is None),
                    _own(self._level[2], features.shape[0], member_features is None),
                ]
            ),
            bias=np.asarray(bias, dtype=np.float32),
            informed=_informed(features, learned),
        )

    def offer_embeddings(self, offer_features: sp.csr_matrix | None = None) -> Embeddings:
        """Training offers, or offers described by features in the training feature space (new offers too)."""
        model, _, trained_features, _, learned = self._fitted()
        features = trained_features if offer_features is None else _float_csr(offer_features)
        if features.shape[1] != len(learned):
            raise ModelError(f"offer features have {features.shape[1]} columns, the model {len(learned)}")
        trained = _float_csr(trained_part(features, learned))
        bias, factors = model.get_item_representations(trained)
        response = np.asarray(trained[:, self._response[0]].toarray(), dtype=np.float32)
        level_cols, level_values, _ = self._level
        levels = np.asarray(trained[:, level_cols] @ level_values, dtype=np.float32)
        return Embeddings(
            factors=np.hstack([np.asarray(factors, dtype=np.float32), self._offer_match(trained), response, levels]),
            bias=np.asarray(bias, dtype=np.float32),
            informed=_informed(features, learned),
        )

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        model, member_features, offer_features, member_learned, offer_learned = self._fitted()
        arrays: dict[str, npt.NDArray[Any]] = {
            "user_embeddings": model.user_embeddings,
            "user_biases": model.user_biases,
            "item_embeddings": model.item_embeddings,
            "item_biases": model.item_biases,
            "member_learned": member_learned,
            "offer_learned": offer_learned,
            "match_member_columns": self._match[0],
            "match_offer_columns": self._match[1],
            "match_weights": self._match[2],
            "response_offer_columns": self._response[0],
            "response_member": self._response[1],
            "level_offer_columns": self._level[0],
            "level_values": self._level[1],
            "level_member": self._level[2],
        }
        for name, matrix in (("member_features", member_features), ("offer_features", offer_features)):
            arrays[f"{name}_data"] = matrix.data
            arrays[f"{name}_indices"] = matrix.indices
            arrays[f"{name}_indptr"] = matrix.indptr
            arrays[f"{name}_shape"] = np.asarray(matrix.shape, dtype=np.int64)
        return arrays

    def _restore(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        def matrix(name: str) -> sp.csr_matrix:
            parts = (arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"])
            return sp.csr_matrix(parts, shape=tuple(int(x) for x in arrays[f"{name}_shape"]))

        model = self._lightfm()
        user_embeddings, item_embeddings = arrays["user_embeddings"], arrays["item_embeddings"]
        model._initialize(user_embeddings.shape[1], item_embeddings.shape[0], user_embeddings.shape[0])
        model.user_embeddings = user_embeddings.astype(np.float32)
        model.user_biases = arrays["user_biases"].astype(np.float32)
        model.item_embeddings = item_embeddings.astype(np.float32)
        model.item_biases = arrays["item_biases"].astype(np.float32)
        self._model = model
        self._member_features = matrix("member_features")
        self._offer_features = matrix("offer_features")
        self._member_learned = arrays["member_learned"].astype(np.bool_)
        self._offer_learned = arrays["offer_learned"].astype(np.bool_)
        self._match = (
            arrays["match_member_columns"].astype(np.int64),
            arrays["match_offer_columns"].astype(np.int64),
            arrays["match_weights"].astype(np.float32),
        )
        self._response = _no_response()
        if "response_offer_columns" in arrays:  # saved before response rates existed: none
            self._response = (
                arrays["response_offer_columns"].astype(np.int64),
                arrays["response_member"].astype(np.float32),
            )
        self._level = _no_level()
        if "level_offer_columns" in arrays:  # saved before price levels existed: none
            self._level = (
                arrays["level_offer_columns"].astype(np.int64),
                arrays["level_values"].astype(np.float32),
                arrays["level_member"].astype(np.float32),
            )


def _no_match() -> tuple[IntArray, IntArray, FloatArray]:
    return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)


def _no_response() -> tuple[IntArray, FloatArray]:
    return np.empty(0, np.int64), np.empty((0, 0), np.float32)


def _own(member_side: FloatArray, n: int, training_members: bool) -> FloatArray:
    """Dimensions known for training members only (exposure, price levels): theirs, or 0 for members
    embedded from features, who count as average there."""
    width = member_side.shape[1]
    return member_side if training_members and width else np.zeros((n, width), np.float32)


def _valued_columns(
    names: tuple[str, ...], value_of: Callable[[str], float | None]
) -> tuple[IntArray, npt.NDArray[np.float64]]:
    """Columns whose feature name ``value_of`` gives a value for, and those values."""
    found = [(j, value) for j, name in enumerate(names) if (value := value_of(name)) is not None]
    return np.array([j for j, _ in found], dtype=np.int64), np.array([v for _, v in found], dtype=np.float64)


def _no_level() -> tuple[IntArray, FloatArray, FloatArray]:
    return np.empty(0, np.int64), np.empty((0, 0), np.float32), np.empty((0, 0), np.float32)
