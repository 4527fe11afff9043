"""From offer responses to what a model learns: weighted, recency-decayed member x offer evidence.

Each event counts by its kind (a redemption says more than a click; a dismissal counts against),
decayed by its age, and the evidence for a member and offer is summed. Only history strictly before
``until`` is used, for the interactions and the behaviour features alike, so a time holdout after
``until`` never leaks into training.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from models.base import TrainingSet
from recsys.dataset import LoyaltyData
from recsys.errors import DataError
from recsys.features import (
    BRAND_GROUP,
    CITY_HALF_LIFE_DAYS,
    HALF_LIFE_DAYS,
    MIN_CITY_SHARE,
    FeatureSpace,
    align,
    before,
    decay,
    fit_features,
    latest,
    lookup,
    positions,
    utc,
)
from recsys.price_levels import brand_prices, member_price_levels
from recsys.schema import POSITIVE_EVENTS

EVIDENCE_SLICE_ROWS = 4_000_000  # events weighed at a time (about 100 MB of temporary arrays)


class InteractionWeights(BaseModel):
    """How history turns into evidence: configuration, logged with every training run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    redeem: float = 5.0
    click: float = 2.0
    impression: float = 0.0
    dismiss: float = -1.0
    stay_weighting: Literal["nights", "spend", "count"] = "count"  # how stays weigh in behaviour features
    half_life_days: Annotated[float, Field(gt=0)] = HALF_LIFE_DAYS  # an event this old counts half
    top_cities: Annotated[int, Field(ge=1)] = 3  # cities kept per member in the behaviour features
    min_city_share: Annotated[float, Field(ge=0, lt=1)] = MIN_CITY_SHARE  # of the member's city evidence
    city_half_life_days: Annotated[float, Field(gt=0)] = CITY_HALF_LIFE_DAYS  # the same, for city evidence
    as_of: datetime | None = None  # end of history and origin of recency; None: the latest event

    def event_weights(self) -> dict[str, float]:
        return {"redeem": self.redeem, "click": self.click, "impression": self.impression, "dismiss": self.dismiss}

    @classmethod
    def as_recorded(cls, recorded: Mapping[str, Any] | None) -> InteractionWeights:
        """The weights a registered model was trained with, from what it recorded (None: registered
        before weights were recorded). A setting it predates takes the value it was trained with:
        stays weighed by nights, city evidence on the same half-life as the rest."""
        doc = dict(recorded or {})
        doc.setdefault("stay_weighting", "nights")
        doc.setdefault("city_half_life_days", doc.get("half_life_days", HALF_LIFE_DAYS))
        return cls.model_validate(doc)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand heap memory freed so far back to the operating system. glibc keeps freed blocks for reuse, so
    the gigabytes of parse buffers a large history frees while loading would add to the peak of what comes
    next; ``malloc_trim`` returns them (a no-op where the C library has no such call)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None) if libc is not None else None
    if trim is not None:
        trim(0)


def build_training_set(
    data: LoyaltyData,
    *,
    until: pd.Timestamp | None = None,
    weights: InteractionWeights | None = None,
    space: FeatureSpace | None = None,
) -> tuple[TrainingSet, FeatureSpace]:
    """Rows: every member of ``data.members``; columns: every offer of ``data.offers`` (with or without
    events). Evidence and behaviour only from before ``until`` (else ``weights.as_of``), decayed from
    then. With ``space`` the features are encoded in its columns (values it never saw are dropped);
    without, a new space is learned from this history."""
    release_freed_memory()
    weights = weights or InteractionWeights()
    cutoff = until if until is not None else weights.as_of
    cutoff_utc = utc(cutoff) if cutoff is not None else None
    events = data.offer_events
    as_of = cutoff_utc if cutoff_utc is not None else latest(events, data.stays, data.dining, data.partner_activity)
    member_index = pd.Index(data.members["member_id"])
    offer_index = pd.Index(data.offers["offer_id"])
    if not (member_index.is_unique and offer_index.is_unique):
        raise DataError("member and offer ids must be unique to build a training set")
    if space is None:
        space, member_features, offer_features = fit_features(
            data,
            until=cutoff_utc,
            as_of=as_of,
            half_life_days=weights.half_life_days,
            stay_weighting=weights.stay_weighting,
            top_cities=weights.top_cities,
            min_city_share=weights.min_city_share,
            city_half_life_days=weights.city_half_life_days,
        )
    else:
        member_features = space.encode_members(
            data.members,
            stays=data.stays,
            dining=data.dining,
            partner_activity=data.partner_activity,
            offer_events=events,
            until=cutoff_utc,
            as_of=as_of,
        )
        offer_features = space.encode_offers(data.offers)
    # after the features: their build is this function's peak, and the evidence need not be held through it
    read = evidence(events, member_index, offer_index, weights, until=cutoff_utc, as_of=as_of)

    stays = before(data.stays, "check_in", cutoff_utc)
    prices = brand_prices(stays)
    tiers = data.members["tier"].to_numpy(dtype=np.int8)
    levels = member_price_levels(member_index, tiers, stays, before(data.dining, "date", cutoff_utc), prices)
    training = TrainingSet(
        interactions=sp.csr_matrix(read.interactions, dtype=np.float32),
        member_ids=np.asarray(member_index.astype(str), dtype=np.str_),
        offer_ids=np.asarray(offer_index.astype(str), dtype=np.str_),
        member_tiers=tiers,
        member_features=member_features,
        offer_features=offer_features,
        member_feature_names=space.member_feature_names,
        offer_feature_names=space.offer_feature_names,
        shown=read.shown,
        responded=read.responded,
        member_price_levels=levels,
        feature_price_levels={f"{BRAND_GROUP}{brand}": level for brand, level in prices.items()},
    )
    release_freed_memory()
    return training, space


@dataclass(frozen=True)
class OfferEvidence:
    """What one read of the offer events yields: weighted evidence, and who was shown and took up what."""

    interactions: sp.csr_matrix  # member x offer sum of decayed event weights (float64)
    shown: sp.csr_matrix  # 1 where the offer was in front of the member (any event), float32
    responded: sp.csr_matrix  # 1 where the member clicked or redeemed it, float32


def evidence(
    events: pd.DataFrame,
    member_index: pd.Index,
    offer_index: pd.Index,
    weights: InteractionWeights,
    *,
    until: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
    slice_rows: int = EVIDENCE_SLICE_ROWS,
) -> OfferEvidence:
    """Evidence and exposure from the events strictly before ``until``, in one pass.

    Events are read ``slice_rows`` at a time and only the non-zero (member, offer, value) triplets are
    kept, so the temporary arrays stay small however long the history; the triplets are summed into the
    matrix in event order, exactly as one pass over all events would. Exposure counts every kind of
    event as a showing (an impression, or a response or dismissal whose impression went unlogged); each
    slice is folded into the running 0/1 matrices at once, so repeated showings take no memory."""
    shape = (len(member_index), len(offer_index))
    values, rows, cols = [], [], []
    shown = sp.csr_matrix(shape, dtype=np.float32)
    responded = sp.csr_matrix(shape, dtype=np.float32)
    for start in range(0, max(len(events), 1), slice_rows):
        part = before(events.iloc[start : start + slice_rows], "timestamp", until)
        r = positions(member_index, part["member_id"])
        c = positions(offer_index, part["offer_id"])
        known = (r >= 0) & (c >= 0)
        kind = lookup(part["event"], weights.event_weights(), default=0.0).astype(np.float64)
        value = kind * decay(part["timestamp"], as_of, weights.half_life_days)
        keep = known & (value != 0)
        values.append(value[keep])
        rows.append(r[keep].astype(np.int32))
        cols.append(c[keep].astype(np.int32))
        took = known & part["event"].isin(POSITIVE_EVENTS).to_numpy(dtype=bool)
        shown = _binary(shown + _pairs(r[known], c[known], shape))
        responded = _binary(responded + _pairs(r[took], c[took], shape))
    interactions = sp.csr_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=shape, dtype=np.float64
    )
    interactions.sum_duplicates()
    interactions.data[np.abs(interactions.data) < 1e-9] = 0.0  # a click and a dismissal may cancel out
    interactions.eliminate_zeros()
    return OfferEvidence(interactions, shown, responded)


def _pairs(rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)  # duplicates summed


def _binary(matrix: sp.csr_matrix) -> sp.csr_matrix:
    matrix.data[:] = 1.0
    return matrix


def holdout_positives(data: LoyaltyData, since: pd.Timestamp, until: pd.Timestamp | None = None) -> sp.csr_matrix:
    """Member x offer relevance for a time holdout: 1 where the member clicked or redeemed the offer in
    [since, until); rows and columns in the order of ``build_training_set``."""
    events = data.offer_events
    stamps = events["timestamp"]
    mask = (stamps >= align(since, stamps)) & events["event"].isin(POSITIVE_EVENTS).to_numpy(dtype=bool)
    if until is not None:
        mask &= stamps < align(until, stamps)
    chosen = events.loc[mask]
    rows = positions(pd.Index(data.members["member_id"]), chosen["member_id"])
    cols = positions(pd.Index(data.offers["offer_id"]), chosen["offer_id"])
    keep = (rows >= 0) & (cols >= 0)
    relevant = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(len(data.members), len(data.offers)),
        dtype=np.float32,
    )
    relevant.sum_duplicates()
    relevant.data[:] = 1.0
    return relevant
