"""What a training run hands to publish: embeddings of every member and offer, the frames the rules
need, popularity per tier and redemptions so far. Saved as npz + parquet + JSON (no pickle) so it
can be logged as an MLflow artifact and published later, elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.base import Embeddings
from recsys.errors import ModelError
from recsys.profiles import MemberProfiles, OfferFeatureTable
from recsys.tiers import Tier

BUNDLE_FORMAT = 1
ARRAYS = "arrays.npz"
META = "bundle.json"
FRAMES = ("members", "offers", "partners")

# keys of ``ServingBundle.meta`` that serving shows on /v1/model (others are kept as they are)
META_KEYS = ("model_name", "model_version", "family", "run_id", "trained_at", "metrics")


@dataclass(frozen=True)
class ServingBundle:
    member_ids: npt.NDArray[np.str_]
    member: Embeddings  # rows follow member_ids
    offer_ids: npt.NDArray[np.str_]
    offer: Embeddings  # rows follow offer_ids
    members: pd.DataFrame  # recsys.dataset members frame; rows found by member_id (column or index)
    offers: pd.DataFrame  # recsys.dataset offers frame with every rule column; rows found by offer_id
    partners: pd.DataFrame
    popular_by_tier: npt.NDArray[np.float32]  # (5, n_offers) popularity of each offer within each tier
    redeemed: npt.NDArray[np.int64]  # (n_offers,) redemptions so far, against budgets
    meta: dict[str, str]  # model_name, model_version, family, run_id, trained_at (ISO), metrics (JSON)
    feature_space_json: str | None = None  # recsys.features.FeatureSpace, to embed offers added later
    offer_features: OfferFeatureTable | None = None  # embedding of each offer side feature (LightFM only)
    profiles: MemberProfiles | None = None  # rows follow member_ids: top brands and partners

    def __post_init__(self) -> None:
        n_members, n_offers = len(self.member_ids), len(self.offer_ids)
        problems = []
        if self.member.factors.shape[0] != n_members:
            problems.append(f"{self.member.factors.shape[0]} member embeddings for {n_members} member ids")
        if self.offer.factors.shape[0] != n_offers:
            problems.append(f"{self.offer.factors.shape[0]} offer embeddings for {n_offers} offer ids")
        if self.member.factors.shape[1] != self.offer.factors.shape[1]:
            problems.append("member and offer embeddings differ in width")
        if self.popular_by_tier.shape != (len(Tier), n_offers):
            problems.append(f"popular_by_tier has shape {self.popular_by_tier.shape}, not ({len(Tier)}, {n_offers})")
        if self.redeemed.shape != (n_offers,):
            problems.append(f"redeemed has shape {self.redeemed.shape}, not ({n_offers},)")
        if self.profiles is not None and len(self.profiles) != n_members:
            problems.append(f"{len(self.profiles)} member profiles for {n_members} member ids")
        if self.offer_features is not None and self.offer_features.factors.shape[1] != self.offer.factors.shape[1]:
            problems.append("offer feature embeddings differ in width from the offer embeddings")
        if problems:
            raise ModelError("inconsistent serving bundle: " + "; ".join(problems))

    @property
    def n_factors(self) -> int:
        return int(self.member.factors.shape[1])

    def save(self, path: Path) -> Path:
        """Write the bundle into folder ``path`` (created); returns ``path``."""
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[Any]] = {
            "member_ids": np.asarray(self.member_ids, dtype=np.str_),
            "offer_ids": np.asarray(self.offer_ids, dtype=np.str_),
            "popular_by_tier": np.asarray(self.popular_by_tier, dtype=np.float32),
            "redeemed": np.asarray(self.redeemed, dtype=np.int64),
        }
        for side, emb in (("member", self.member), ("offer", self.offer)):
            arrays[f"{side}_factors"] = np.asarray(emb.factors, dtype=np.float32)
            arrays[f"{side}_bias"] = np.asarray(emb.bias, dtype=np.float32)
            arrays[f"{side}_informed"] = np.asarray(emb.informed, dtype=bool)
        if self.offer_features is not None:
            arrays["offer_feature_factors"] = self.offer_features.factors
            arrays["offer_feature_bias"] = self.offer_features.bias
            arrays["offer_feature_learned"] = self.offer_features.learned
        if self.profiles is not None:
            arrays |= self.profiles.arrays()
        np.savez(path / ARRAYS, allow_pickle=False, **arrays)
        list_columns: dict[str, list[str]] = {}
        for name in FRAMES:
            frame: pd.DataFrame = getattr(self, name)
            list_columns[name] = [c for c in frame.columns if _holds_sequences(frame[c])]
            out = frame.copy()
            for c in list_columns[name]:
                out[c] = pd.Series([None if _is_missing(v) else list(v) for v in out[c]], index=out.index, dtype=object)
            out.to_parquet(path / f"{name}.parquet")
        header = {
            "format": BUNDLE_FORMAT,
            "meta": dict(self.meta),
            "feature_space": self.feature_space_json,
            "list_columns": list_columns,
            "profiles": self.profiles.names() if self.profiles is not None else None,
        }
        (path / META).write_text(json.dumps(header, indent=2))
        return path

    @classmethod
    def load(cls, path: Path) -> ServingBundle:
        try:
            header = json.loads((path / META).read_text())
            if header.get("format") != BUNDLE_FORMAT:
                raise ModelError(f"{path} holds a bundle of format {header.get('format')}, not {BUNDLE_FORMAT}")
            with np.load(path / ARRAYS, allow_pickle=False) as npz:
                a = {k: npz[k] for k in npz.files}
            frames = {name: pd.read_parquet(path / f"{name}.parquet") for name in FRAMES}
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot read the serving bundle in {path}: {exc}") from exc
        for name, columns in header.get("list_columns", {}).items():
            for c in columns:
                frames[name][c] = [() if _is_missing(v) else tuple(str(x) for x in v) for v in frames[name][c]]
        return cls(
            member_ids=a["member_ids"],
            member=Embeddings(a["member_factors"], a["member_bias"], a["member_informed"]),
            offer_ids=a["offer_ids"],
            offer=Embeddings(a["offer_factors"], a["offer_bias"], a["offer_informed"]),
            members=frames["members"],
            offers=frames["offers"],
            partners=frames["partners"],
            popular_by_tier=a["popular_by_tier"],
            redeemed=a["redeemed"],
            meta={str(k): str(v) for k, v in header["meta"].items()},
            feature_space_json=header.get("feature_space"),
            offer_features=(
                OfferFeatureTable(a["offer_feature_factors"], a["offer_feature_bias"], a["offer_feature_learned"])
                if "offer_feature_factors" in a
                else None
            ),
            profiles=MemberProfiles.from_saved(a, header["profiles"]) if header.get("profiles") else None,
        )


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _holds_sequences(column: pd.Series) -> bool:
    """Object columns of tuples/lists (regions, channels) that parquet stores as lists."""
    if column.dtype != object:
        return False
    return any(isinstance(v, tuple | list | np.ndarray) for v in column)
