"""What serving needs to know of a member beyond the model: the brands they stay with and the partners
they use (for reasons and cross-brand rewards), and the offer-feature embeddings that let a new offer be
ranked from its features without retraining.

Training computes ``MemberProfiles`` from history; publish appends each member's profile to their packed
record as a fixed-size trailer (``TRAILER``: top brands and partners with their shares), which the
codec in ``recsys.cache`` leaves alone, so a request still reads one key per member.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from models.base import Embeddings, Recommender
from recsys.cache import MemberRecord, member_record_dtype
from recsys.dataset import LoyaltyData
from recsys.errors import ModelError
from recsys.features import FeatureSpace, decay, latest, positions, trained_part

SLOTS = 3  # brands and partners kept per member
TRAILER_FORMAT = 1
TRAILER = np.dtype(
    [
        ("profile_format", "u1"),
        ("brands", "<i2", (SLOTS,)),  # index into the version's profile brand list, -1 for none
        ("brand_shares", "<f2", (SLOTS,)),  # share of the member's (recency-weighted) nights
        ("partners", "<i2", (SLOTS,)),  # index into the version's profile partner list, -1 for none
        ("partner_shares", "<f2", (SLOTS,)),  # share of the member's (recency-weighted) partner activity
    ]
)
_TRAILER_STRUCT = struct.Struct(f"<B{SLOTS}h{SLOTS}e{SLOTS}h{SLOTS}e")  # TRAILER's bytes as Python values
HALF_LIFE_DAYS = 180.0

IntMatrix = npt.NDArray[np.int16]
FloatMatrix = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MemberProfiles:
    """Per member (rows follow the bundle's member ids): top brands and partners with their shares, plus
    each partner's popularity (share of members active with it) for members with no partner history."""

    brand_names: tuple[str, ...]
    brands: IntMatrix  # (n, SLOTS), -1 where none
    brand_shares: FloatMatrix  # (n, SLOTS)
    partner_ids: tuple[str, ...]
    partners: IntMatrix  # (n, SLOTS), -1 where none
    partner_shares: FloatMatrix  # (n, SLOTS)
    partner_popularity: FloatMatrix  # (len(partner_ids),)

    def __post_init__(self) -> None:
        n = self.brands.shape[0]
        shapes = {self.brands.shape, self.brand_shares.shape, self.partners.shape, self.partner_shares.shape}
        if shapes != {(n, SLOTS)} or self.partner_popularity.shape != (len(self.partner_ids),):
            raise ValueError("member profile arrays do not line up")

    def __len__(self) -> int:
        return int(self.brands.shape[0])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The arrays for an npz (names as JSON via ``names``)."""
        return {
            "profile_brands": self.brands,
            "profile_brand_shares": self.brand_shares,
            "profile_partners": self.partners,
            "profile_partner_shares": self.partner_shares,
            "profile_partner_popularity": self.partner_popularity,
        }

    def names(self) -> dict[str, list[str]]:
        return {"brand_names": list(self.brand_names), "partner_ids": list(self.partner_ids)}

    @classmethod
    def from_saved(cls, arrays: dict[str, npt.NDArray[Any]], names: dict[str, list[str]]) -> MemberProfiles:
        return cls(
            brand_names=tuple(names["brand_names"]),
            brands=arrays["profile_brands"].astype(np.int16),
            brand_shares=arrays["profile_brand_shares"].astype(np.float32),
            partner_ids=tuple(names["partner_ids"]),
            partners=arrays["profile_partners"].astype(np.int16),
            partner_shares=arrays["profile_partner_shares"].astype(np.float32),
            partner_popularity=arrays["profile_partner_popularity"].astype(np.float32),
        )

    def trailer(self, rows: npt.NDArray[np.intp], personal: npt.NDArray[np.bool_]) -> npt.NDArray[np.void]:
        """Trailers of the members at ``rows``; members not ``personal`` (no consent) get none."""
        out = np.zeros(len(rows), dtype=TRAILER)
        out["profile_format"] = TRAILER_FORMAT
        out["brands"] = np.where(personal[:, None], self.brands[rows], -1)
        out["brand_shares"] = np.where(personal[:, None], self.brand_shares[rows], 0)
        out["partners"] = np.where(personal[:, None], self.partners[rows], -1)
        out["partner_shares"] = np.where(personal[:, None], self.partner_shares[rows], 0)
        return out


def _top(
    rows: npt.NDArray[np.int64], codes: npt.NDArray[np.int64], weights: npt.NDArray[np.float64], n_rows: int
) -> tuple[IntMatrix, FloatMatrix]:
    """Each row's ``SLOTS`` heaviest codes and their share of the row's total weight."""
    top = np.full((n_rows, SLOTS), -1, dtype=np.int16)
    shares = np.zeros((n_rows, SLOTS), dtype=np.float32)
    keep = (rows >= 0) & (codes >= 0) & (weights > 0)
    if not keep.any():
        return top, shares
    frame = pd.DataFrame({"row": rows[keep], "code": codes[keep], "w": weights[keep]})
    summed = frame.groupby(["row", "code"], sort=False)["w"].sum().reset_index()
    total = summed.groupby("row")["w"].transform("sum").to_numpy()
    summed = summed.assign(share=summed["w"].to_numpy() / total)
    summed = summed.sort_values(["row", "w", "code"], ascending=[True, False, True], kind="stable")
    rank = summed.groupby("row").cumcount().to_numpy()
    best = summed[rank < SLOTS]
    slot = rank[rank < SLOTS]
    r = best["row"].to_numpy()
    top[r, slot] = best["code"].to_numpy()
    shares[r, slot] = best["share"].to_numpy()
    return top, shares


def member_profiles(
    data: LoyaltyData,
    member_ids: npt.NDArray[np.str_],
    *,
    as_of: pd.Timestamp | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
) -> MemberProfiles:
    """Top brands (nights, recency-weighted) and partners (activities, recency-weighted) of each member."""
    index = pd.Index(np.asarray(member_ids).astype(str))
    stays, activity = data.stays, data.partner_activity
    as_of = as_of if as_of is not None else latest(stays, activity)
    brand_names: tuple[str, ...] = ()
    brands = np.full((len(index), SLOTS), -1, dtype=np.int16)
    brand_shares = np.zeros((len(index), SLOTS), dtype=np.float32)
    if len(stays):
        codes, uniques = pd.factorize(stays["brand"].astype(str), sort=True)
        brand_names = tuple(str(u) for u in uniques)
        weights = stays["nights"].to_numpy(dtype=np.float64) * decay(stays["check_in"], as_of, half_life_days)
        brands, brand_shares = _top(positions(index, stays["member_id"]), codes, weights, len(index))
    partner_ids = tuple(str(p) for p in data.partners["partner_id"]) if len(data.partners) else ()
    partners = np.full((len(index), SLOTS), -1, dtype=np.int16)
    partner_shares = np.zeros((len(index), SLOTS), dtype=np.float32)
    popularity = np.zeros(len(partner_ids), dtype=np.float32)
    if len(activity) and partner_ids:
        codes = positions(pd.Index(partner_ids), activity["partner_id"])
        rows = positions(index, activity["member_id"])
        weights = decay(activity["date"], as_of, half_life_days)
        partners, partner_shares = _top(rows, codes, weights, len(index))
        active = pd.DataFrame({"row": rows, "code": codes})
        active = active[(active["row"] >= 0) & (active["code"] >= 0)].drop_duplicates()
        counts = np.bincount(active["code"].to_numpy(), minlength=len(partner_ids))
        popularity = (counts / max(len(index), 1)).astype(np.float32)
    return MemberProfiles(brand_names, brands, brand_shares, partner_ids, partners, partner_shares, popularity)


# -- serving side: one member's trailer -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberProfile:
    """One member's profile as read from their record: indices into the version's profile lists."""

    brands: tuple[tuple[int, float], ...]  # (profile brand index, share), heaviest first
    partners: tuple[tuple[int, float], ...]  # (profile partner index, share), heaviest first


EMPTY_PROFILE = MemberProfile((), ())


@lru_cache(maxsize=64)
def _record_size(n_factors: int, n_candidates: int) -> int:
    return member_record_dtype(n_factors, n_candidates).itemsize


def read_profile(blob: bytes, record: MemberRecord) -> MemberProfile:
    """The profile trailer after ``record`` in ``blob`` (empty when the record has none)."""
    offset = _record_size(len(record.factors), len(record.candidates))
    if len(blob) < offset + TRAILER.itemsize or blob[offset] != TRAILER_FORMAT:
        return EMPTY_PROFILE
    fields = _TRAILER_STRUCT.unpack_from(blob, offset)
    b, bs, p, ps = (fields[1 + SLOTS * k : 1 + SLOTS * (k + 1)] for k in range(4))
    brands = tuple((brand, share) for brand, share in zip(b, bs, strict=True) if brand >= 0)
    partners = tuple((partner, share) for partner, share in zip(p, ps, strict=True) if partner >= 0)
    return MemberProfile(brands, partners) if brands or partners else EMPTY_PROFILE


# -- offer-feature embeddings: new offers without retraining -----------------------------------------


@dataclass(frozen=True)
class OfferFeatureTable:
    """The embedding and bias of each offer side feature (``FeatureSpace.offer_side``); a feature no
    training row carried is not ``learned`` and left out, as the model itself does for cold offers."""

    factors: FloatMatrix  # (n_side, d)
    bias: FloatMatrix  # (n_side,)
    learned: npt.NDArray[np.bool_]  # (n_side,)

    def embed(self, features: sp.csr_matrix) -> Embeddings:
        """Embeddings of rows of side features (columns as ``offer_side``): unlearned features count as
        zero and the rest keep their weight (``recsys.features.trained_part``, the model's own rule), then
        a sum of feature embeddings (LightFM's)."""
        rows = trained_part(sp.csr_matrix(features[:, : len(self.learned)], dtype=np.float32), self.learned)
        factors = np.asarray(rows @ self.factors, dtype=np.float32)
        bias = np.asarray(rows @ self.bias, dtype=np.float32).ravel()
        return Embeddings(factors, bias, np.asarray(rows.sum(axis=1)).ravel() > 0)


def offer_feature_table(model: Recommender, feature_space_json: str | None) -> OfferFeatureTable | None:
    """Each offer side feature embedded alone by ``model`` (None for families without feature
    embeddings, such as ALS and BPR: new offers then borrow the mean of similar trained offers)."""
    if not feature_space_json:
        return None
    doc = json.loads(feature_space_json)
    n_side = len(doc.get("offer_side") or ())
    n_total = n_side + len(doc.get("offer_ids") or ())
    if n_side == 0:
        return None
    one_hot = sp.identity(n_total, dtype=np.float32, format="csr")[:n_side]
    try:
        emb = model.offer_embeddings(one_hot)
    except (ModelError, ValueError):  # a family that cannot embed features at all
        return None
    if emb.factors.shape[0] != n_side or not emb.informed.any():
        return None
    learned = np.asarray(emb.informed, dtype=bool)
    factors = np.where(learned[:, None], emb.factors, 0).astype(np.float32)
    return OfferFeatureTable(factors, np.where(learned, emb.bias, 0).astype(np.float32), learned)


def offer_space(feature_space_json: str) -> FeatureSpace:
    """The offer half of a saved feature space (members left out: it may list millions)."""
    doc = json.loads(feature_space_json)
    return FeatureSpace(
        member_side=(),
        member_ids=(),
        offer_side=tuple(doc["offer_side"]),
        offer_ids=tuple(doc["offer_ids"]),
        brand_levels=dict(doc.get("brand_levels") or {}),
        partner_kinds=dict(doc.get("partner_kinds") or {}),
    )
