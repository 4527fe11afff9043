"""Live catalogue changes: one offer edited, added or taken down through the API, or a whole file
synced, written to the overlay (``Keys.catalogue_overlay``) and announced by bumping
``Keys.catalogue_revision`` in the same MULTI, so every server applies it on its next request.

An offer is checked by the same rules as the data contract's ``offers`` file (``recsys.schema.OFFERS``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import redis
import redis.asyncio as aredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recsys.cache import Keys
from recsys.errors import DataError, StoreError
from recsys.events import Channel, Identifier, Rejection
from recsys.schema import OFFER_CATEGORIES, OFFERS
from recsys.tiers import TIER_LABELS, Tier

Record = dict[str, Any]
WITHDRAWN = "withdrawn"
TAKEDOWN_COLUMNS = ("status", "withdrawn")  # status=withdrawn, or withdrawn=true, takes the offer down
_SHOWN_REJECTS = 5


class OfferBody(BaseModel):
    """One offer as the data contract's ``offers`` file describes it (its id comes from the path)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "Double points on weekend stays",
                    "category": "stay",
                    "brand": "Aster Grand",
                    "city": "Shanghai",
                    "min_tier": "silver",
                    "valid_from": "2025-03-01",
                    "valid_to": "2025-04-30",
                    "points_cost": 0,
                    "value": 40.0,
                    "budget": 500,
                    "channels": ["app", "email"],
                    "per_member_limit": 1,
                }
            ]
        },
    )

    title: str = Field(min_length=1, max_length=500, description=OFFERS.column("title").meaning)
    category: str = Field(description="One of " + ", ".join(OFFER_CATEGORIES) + ".")
    brand: Identifier = Field(description=OFFERS.column("brand").meaning)
    city: str | None = Field(None, max_length=200, description=OFFERS.column("city").meaning)
    partner_id: Identifier | None = Field(None, description=OFFERS.column("partner_id").meaning)
    min_tier: str = Field(description="Lowest tier that may see it: " + ", ".join(TIER_LABELS) + ".")
    max_tier: str | None = Field(None, description="Highest tier that may see it; empty for no ceiling.")
    valid_from: date = Field(description=OFFERS.column("valid_from").meaning)
    valid_to: date = Field(description=OFFERS.column("valid_to").meaning)
    points_cost: int = Field(ge=0, description=OFFERS.column("points_cost").meaning)
    value: float = Field(ge=0, allow_inf_nan=False, description=OFFERS.column("value").meaning)
    budget: int | None = Field(None, ge=0, description=OFFERS.column("budget").meaning)
    regions: list[Identifier] = Field(default_factory=list, description="Home countries allowed; empty for everyone.")
    channels: list[Channel] = Field(default_factory=list, description="Channels it may be shown on; empty for all.")
    lever: float = Field(1.0, ge=0, allow_inf_nan=False, description=OFFERS.column("lever").meaning)
    per_member_limit: int | None = Field(None, ge=1, description=OFFERS.column("per_member_limit").meaning)
    earns_qualifying_nights: bool = Field(False, description=OFFERS.column("earns_qualifying_nights").meaning)

    @field_validator("category")
    @classmethod
    def _category(cls, value: str) -> str:
        if value not in OFFER_CATEGORIES:
            raise ValueError(f"unknown category {value!r}; expected one of {', '.join(OFFER_CATEGORIES)}")
        return value

    @field_validator("min_tier", "max_tier")
    @classmethod
    def _tier(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else Tier.parse(value).label

    @field_validator("regions", "channels", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if value is None:
            return []
        return [v for v in value.split("|") if v] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _ranges(self) -> OfferBody:
        if self.valid_from > self.valid_to:
            raise ValueError(f"valid_from ({self.valid_from}) is after valid_to ({self.valid_to})")
        if self.max_tier is not None and Tier.parse(self.max_tier) < Tier.parse(self.min_tier):
            raise ValueError(f"min_tier ({self.min_tier}) is above max_tier ({self.max_tier})")
        return self

    def record(self, offer_id: str) -> Record:
        """The offer as the catalogue stores it (``recsys.catalogue.offer_records``), for the overlay; the
        published ``redeemed`` count and partner name are kept from the published offer when it exists."""
        return {
            "offer_id": offer_id,
            "title": self.title,
            "category": self.category,
            "brand": self.brand,
            "city": self.city or None,
            "partner_id": self.partner_id,
            "min_tier": int(Tier.parse(self.min_tier)),
            "max_tier": None if self.max_tier is None else int(Tier.parse(self.max_tier)),
            "valid_from": self.valid_from.isoformat(),
            "valid_to": self.valid_to.isoformat(),
            "points_cost": self.points_cost,
            "value": self.value,
            "budget": self.budget,
            "regions": list(self.regions),
            "channels": list(self.channels),
            "lever": self.lever,
            "per_member_limit": self.per_member_limit,
            "earns_qualifying_nights": self.earns_qualifying_nights,
        }


def _write_one(pipe: Any, keys: Keys, changes: Mapping[str, Record | None]) -> None:
    pipe.hset(keys.catalogue_overlay, mapping={k: orjson.dumps(v) for k, v in changes.items()})
    pipe.incr(keys.catalogue_revision)


def apply_changes(client: redis.Redis, keys: Keys, changes: Mapping[str, Record | None]) -> int:
    """Write offer id -> record (None: take down) to the overlay and bump the revision in one MULTI;
    returns the new revision."""
    try:
        pipe = client.pipeline(transaction=True)
        _write_one(pipe, keys, changes)
        return int(pipe.execute()[-1])
    except redis.RedisError as exc:
        raise StoreError(f"could not change the catalogue: {exc}") from exc


async def aapply_changes(client: aredis.Redis, keys: Keys, changes: Mapping[str, Record | None]) -> int:
    """``apply_changes`` for an asyncio client."""
    try:
        pipe = client.pipeline(transaction=True)
        _write_one(pipe, keys, changes)
        return int((await pipe.execute())[-1])
    except redis.RedisError as exc:
        raise StoreError(f"could not change the catalogue: {exc}") from exc


@dataclass(frozen=True)
class SyncResult:
    upserted: int
    taken_down: int
    rejected: list[Rejection] = field(default_factory=list)  # index = data row, 0-based
    revision: int | None = None  # None when nothing was written


def _cell(value: object) -> object:
    """A file cell as validation expects it: empty -> None, numpy/pandas scalars -> Python values."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, pd.Timestamp | datetime):
        return value.date()
    if isinstance(value, np.generic):
        return _cell(value.item())
    if isinstance(value, np.ndarray):
        return [str(v) for v in value.tolist()]
    return value


def _withdrawn(row: Mapping[str, object]) -> bool:
    status = row.get("status")
    flag = row.get("withdrawn")
    if isinstance(status, str) and status.lower() == WITHDRAWN:
        return True
    if isinstance(flag, str):
        return flag.lower() in ("true", "1", "yes")
    return bool(flag)


def read_offers_file(file: Path) -> pd.DataFrame:
    """A CSV or Parquet offers file with every cell as written (CSV cells as text)."""
    try:
        if file.suffix.lower() == ".csv":
            return pd.read_csv(file, dtype=str, keep_default_na=False)
        if file.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(file)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {file}: {exc}") from exc
    raise DataError(f"{file}: expected a .csv or .parquet offers file")


def plan_sync(frame: pd.DataFrame) -> tuple[dict[str, Record | None], list[Rejection]]:
    """Check every row: the overlay changes of the valid ones and a rejection per problem."""
    if "offer_id" not in frame.columns:
        raise DataError("the offers file has no offer_id column")
    known = set(OfferBody.model_fields)
    changes: dict[str, Record | None] = {}
    first_row: dict[str, int] = {}
    rejected: list[Rejection] = []
    for index, raw in enumerate(frame.to_dict("records")):
        row = {str(k): _cell(v) for k, v in raw.items()}
        offer_id = row.get("offer_id")
        if not isinstance(offer_id, str) or not offer_id or len(offer_id) > 64:
            rejected.append(Rejection(index, "offer_id", "missing, or longer than 64 characters"))
            continue
        if offer_id in first_row:
            rejected.append(Rejection(index, "offer_id", f"{offer_id} also on row {first_row[offer_id]}"))
            continue
        first_row[offer_id] = index
        if _withdrawn(row):
            changes[offer_id] = None
            continue
        try:
            body = OfferBody.model_validate({k: v for k, v in row.items() if k in known and v is not None})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                where = ".".join(str(p) for p in error["loc"])
                rejected.append(Rejection(index, where, str(error["msg"]).removeprefix("Value error, ")))
            continue
        changes[offer_id] = body.record(offer_id)
    return changes, rejected


def sync_catalogue(client: redis.Redis, keys: Keys, file: Path, *, allow_rejects: bool = False) -> SyncResult:
    """Apply an offers file (CSV/Parquet) live: rows upsert their offer, rows with ``status=withdrawn``
    (or ``withdrawn=true``) take it down. Any invalid row stops the sync before anything is written,
    unless ``allow_rejects``; then the valid rows are applied and the rejects returned."""
    changes, rejected = plan_sync(read_offers_file(file))
    if rejected and not allow_rejects:
        shown = "; ".join(f"row {r.index + 1} {r.field}: {r.reason}" for r in rejected[:_SHOWN_REJECTS])
        more = f" (and {len(rejected) - _SHOWN_REJECTS} more)" if len(rejected) > _SHOWN_REJECTS else ""
        raise DataError(f"{file}: {len(rejected)} problems, nothing applied: {shown}{more}")
    down = sum(1 for c in changes.values() if c is None)
    revision = apply_changes(client, keys, changes) if changes else None
    return SyncResult(len(changes) - down, down, rejected, revision)
