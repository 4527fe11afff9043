"""Popularity, overall or within the member's tier: the baseline every model must beat, and the fallback.

Exported as embeddings so the shared ``recommend`` ranks it like any family: a member's factors are a
one-hot over six slots (the five tiers, then "overall"), an offer's factors its popularity in each slot.
Popularity is the share of members with positive evidence for the offer; within a tier it is shrunk
towards the overall share by ``smoothing`` pseudo-members, so a small tier (diamond) is not ranked on a
handful of responses.
"""

from __future__ import annotations

from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.base import Embeddings, FloatArray, Recommender, TrainingSet
from recsys.errors import ModelError
from recsys.tiers import TIER_LABELS

N_TIERS = len(TIER_LABELS)
OVERALL = N_TIERS  # the slot of members whose tier is not known
TIER_FEATURE_PREFIX = "tier:"


class Popularity(Recommender):
    family: ClassVar[str] = "popularity"
    defaults: ClassVar[dict[str, Any]] = {"within_tier": True, "smoothing": 10.0}

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._share: FloatArray | None = None  # (6, offers)
        self._tiers: npt.NDArray[np.int8] | None = None
        self._tier_columns: npt.NDArray[np.int64] | None = None  # feature column of each tier, -1 if none

    def fit(self, data: TrainingSet, *, show_progress: bool = False) -> Self:
        tiers = np.asarray(data.member_tiers, dtype=np.int8)
        if tiers.shape != (data.n_members,) or (len(tiers) and (tiers.min() < 0 or tiers.max() >= N_TIERS)):
            raise ModelError("member_tiers must hold one tier (0..4) per member")
        positive = sp.csr_matrix(data.interactions > 0, dtype=np.float64)
        one_hot = sp.csr_matrix(
            (np.ones(len(tiers)), (tiers.astype(np.int64), np.arange(len(tiers)))), shape=(N_TIERS, len(tiers))
        )
        counts = np.asarray((one_hot @ positive).todense(), dtype=np.float64)  # (5, offers)
        sizes = np.bincount(tiers, minlength=N_TIERS).astype(np.float64)
        overall = counts.sum(axis=0) / max(len(tiers), 1)
        share = np.empty((N_TIERS + 1, data.n_offers), dtype=np.float64)
        share[OVERALL] = overall
        if self.params["within_tier"]:
            m = float(self.params["smoothing"])
            with np.errstate(invalid="ignore", divide="ignore"):
                within = (counts + m * overall) / (sizes[:, None] + m)
            share[:N_TIERS] = np.where(sizes[:, None] + m > 0, within, overall)
        else:
            share[:N_TIERS] = overall
        names = list(data.member_feature_names)
        self._tier_columns = np.array(
            [names.index(TIER_FEATURE_PREFIX + t) if TIER_FEATURE_PREFIX + t in names else -1 for t in TIER_LABELS],
            dtype=np.int64,
        )
        self._share, self._tiers = share.astype(np.float32), tiers
        return self

    def _fitted(self) -> tuple[FloatArray, npt.NDArray[np.int8], npt.NDArray[np.int64]]:
        if self._share is None or self._tiers is None or self._tier_columns is None:
            raise ModelError("the popularity model has not been fitted")
        return self._share, self._tiers, self._tier_columns

    def _slots(self, features: sp.csr_matrix) -> npt.NDArray[np.int64]:
        """Each row's tier from its ``tier:<label>`` feature; OVERALL where it has none."""
        _, _, columns = self._fitted()
        slots = np.full(features.shape[0], OVERALL, dtype=np.int64)
        present = np.flatnonzero(columns >= 0)
        if len(present):
            block = sp.csr_matrix(features, dtype=np.float32)[:, columns[present]].toarray()
            has = block.max(axis=1) > 0
            slots[has] = present[block[has].argmax(axis=1)]
        return slots

    def member_embeddings(
        self, member_features: sp.csr_matrix | None = None, interactions: sp.csr_matrix | None = None
    ) -> Embeddings:
        """Training members by tier; new members by the tier in their features, else overall popularity."""
        _, tiers, _ = self._fitted()
        if member_features is not None:
            slots = self._slots(member_features)
        elif interactions is not None:
            slots = np.full(interactions.shape[0], OVERALL, dtype=np.int64)
        else:
            slots = tiers.astype(np.int64) if self.params["within_tier"] else np.full(len(tiers), OVERALL, np.int64)
        factors = np.zeros((len(slots), N_TIERS + 1), dtype=np.float32)
        factors[np.arange(len(slots)), slots] = 1.0
        return Embeddings(factors, np.zeros(len(slots), np.float32), np.ones(len(slots), np.bool_))

    def offer_embeddings(self, offer_features: sp.csr_matrix | None = None) -> Embeddings:
        """Training offers; an offer not seen in training has no popularity yet (zeros, not informed)."""
        share, _, _ = self._fitted()
        if offer_features is not None:
            n = offer_features.shape[0]
            return Embeddings(np.zeros((n, N_TIERS + 1), np.float32), np.zeros(n, np.float32), np.zeros(n, np.bool_))
        n = share.shape[1]
        return Embeddings(np.ascontiguousarray(share.T), np.zeros(n, np.float32), np.ones(n, np.bool_))

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        share, tiers, columns = self._fitted()
        return {"share": share, "member_tiers": tiers, "tier_columns": columns}

    def _restore(self, arrays: dict[str, npt.NDArray[Any]]) -> None:
        self._share = arrays["share"].astype(np.float32)
        self._tiers = arrays["member_tiers"].astype(np.int8)
        self._tier_columns = arrays["tier_columns"].astype(np.int64)
