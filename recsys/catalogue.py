"""The offer catalogue twice over: JSON records (orjson) as publish stores them in Redis, and an
in-memory ``Catalogue`` of numpy arrays that the rules and the ranking read without a Python loop.

A serving process builds one ``Catalogue`` per (version, catalogue revision): the version's records,
factors and popularity, with the live overlay (``Keys.catalogue_overlay``: edits, takedowns, new
offers) applied on top, so an offer can be taken down without a new publish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import orjson
import pandas as pd
import redis

from models.base import Embeddings
from recsys.cache import Keys, pack_floats, unpack_floats
from recsys.errors import StoreError
from recsys.profiles import OfferFeatureTable, offer_space
from recsys.rewards import Partner, parse_partners
from recsys.schema import CHANNELS
from recsys.store import REDIS_ERRORS
from recsys.tiers import Tier

Memo = TypeVar("Memo")

Record = dict[str, Any]

CHANNEL_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate(CHANNELS)}
ALL_CHANNELS = (1 << len(CHANNELS)) - 1
N_TIERS = len(Tier)
_EPOCH = date(1970, 1, 1)
_MEMO_MAX = 4096


class OffersHash:
    """Field names of the ``Keys.version_offers`` hash."""

    CATALOGUE = "catalogue"  # JSON list of offer records in offer-index order
    SHAPE = "shape"  # JSON {"n_offers": n, "n_factors": d}
    FACTORS = "factors"  # float32 (n, d)
    BIAS = "bias"  # float32 (n,)
    POPULAR = "popular"  # float32 (5, n): popularity of each offer within each tier
    FEATURE_SPACE = "feature_space"  # optional JSON of recsys.features.FeatureSpace
    FEATURE_FACTORS = "feature_factors"  # optional float32 (n_side, d): embedding of each offer side feature
    FEATURE_BIAS = "feature_bias"  # optional float32 (n_side,)
    FEATURE_LEARNED = "feature_learned"  # optional uint8 (n_side,): 1 where training saw the feature
    PARTNERS = "partners"  # optional JSON list of recsys.rewards.Partner fields
    PROFILE_BRANDS = "profile_brands"  # optional JSON list: brand names indexed by member profiles
    PROFILE_PARTNERS = "profile_partners"  # optional JSON list: partner ids indexed by member profiles


def day_number(value: date | datetime | str) -> int:
    """Days since 1970-01-01 of a date, a timestamp (its date) or an ISO date string."""
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    return (value - _EPOCH).days


def _missing(value: object) -> bool:
    """None, NaN, NaT or pd.NA (a list or tuple is a value, even when empty)."""
    if value is None:
        return True
    if isinstance(value, list | tuple | np.ndarray | str):
        return False
    try:
        return bool(pd.isna(cast(Any, value)))
    except (TypeError, ValueError):
        return False


def _text(value: object) -> str | None:
    return None if _missing(value) or value == "" else str(value)


def _int(value: object) -> int | None:
    return None if _missing(value) else int(cast(float, value))


def _iso(value: object) -> str:
    if isinstance(value, str):
        return value[:10]
    return pd.Timestamp(cast(Any, value)).date().isoformat()


def _items(value: object) -> list[str]:
    if _missing(value):
        return []
    if isinstance(value, str):
        return [v for v in value.split("|") if v]
    return [str(v) for v in cast(Iterable[object], value)]


def offer_records(
    offers: pd.DataFrame,
    *,
    partners: pd.DataFrame | None = None,
    redeemed: npt.NDArray[np.integer] | None = None,
) -> list[Record]:
    """JSON-ready records of an offers frame (``recsys.dataset`` types), in the frame's row order."""
    frame = offers.reset_index() if "offer_id" not in offers.columns else offers
    partner_names: dict[str, tuple[str, str]] = {}
    if partners is not None and len(partners):
        p = partners.reset_index() if "partner_id" not in partners.columns else partners
        partner_names = {str(r.partner_id): (str(r.name), str(r.kind)) for r in p.itertuples(index=False)}
    done = np.zeros(len(frame), dtype=np.int64) if redeemed is None else np.asarray(redeemed, dtype=np.int64)
    if len(done) != len(frame):
        raise ValueError(f"redeemed has {len(done)} entries for {len(frame)} offers")
    records: list[Record] = []
    for i, row in enumerate(frame.to_dict("records")):
        partner_id = _text(row.get("partner_id"))
        name, kind = partner_names.get(partner_id or "", (None, None))
        lever = row.get("lever")
        records.append(
            {
                "offer_id": str(row["offer_id"]),
                "title": str(row["title"]),
                "category": str(row["category"]),
                "brand": str(row["brand"]),
                "city": _text(row.get("city")),
                "partner_id": partner_id,
                "partner_name": name,
                "partner_kind": kind,
                "min_tier": int(row["min_tier"]),
                "max_tier": _int(row.get("max_tier")),
                "valid_from": _iso(row["valid_from"]),
                "valid_to": _iso(row["valid_to"]),
                "points_cost": int(row.get("points_cost") or 0),
                "value": float(row.get("value") or 0.0),
                "budget": _int(row.get("budget")),
                "redeemed": int(done[i]),
                "regions": _items(row.get("regions")),
                "channels": _items(row.get("channels")),
                "lever": 1.0 if _missing(lever) else float(cast(float, lever)),
                "per_member_limit": _int(row.get("per_member_limit")),
                "earns_qualifying_nights": bool(row.get("earns_qualifying_nights") or False),
            }
        )
    return records


def dumps_catalogue(records: list[Record]) -> bytes:
    return orjson.dumps(records)


def loads_catalogue(blob: bytes) -> list[Record]:
    try:
        records = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise StoreError("the catalogue in Redis is not valid JSON") from exc
    if not isinstance(records, list):
        raise StoreError("the catalogue in Redis is not a list of offers")
    return records


@dataclass(frozen=True, eq=False)
class Catalogue:
    """All offers of one (version, revision) as arrays indexed by offer index. Offers at index
    ``n_published`` and beyond came from the overlay after publish (no precomputed candidates)."""

    records: tuple[Record, ...]
    offer_ids: npt.NDArray[np.str_]
    index: dict[str, int]
    active: npt.NDArray[np.bool_]  # False once taken down
    min_tier: npt.NDArray[np.int8]
    max_tier: npt.NDArray[np.int8]  # 4 (diamond) when no ceiling
    valid_from: npt.NDArray[np.int32]  # day numbers, inclusive
    valid_to: npt.NDArray[np.int32]
    limited: npt.NDArray[np.bool_]  # has a redemption budget
    budget_left: npt.NDArray[np.int64]  # budget - redeemed where limited
    channels: npt.NDArray[np.uint8]  # bitmask of CHANNEL_BITS
    region_restricted: npt.NDArray[np.bool_]
    region_allowed: dict[str, npt.NDArray[np.bool_]]  # country -> offers restricted to regions including it
    points_cost: npt.NDArray[np.int64]
    value: npt.NDArray[np.float32]
    lever: npt.NDArray[np.float32]
    earns_qualifying_nights: npt.NDArray[np.bool_]
    factors: npt.NDArray[np.float32]  # (n, d)
    bias: npt.NDArray[np.float32]  # (n,)
    popular: npt.NDArray[np.float32]  # (5, n)
    embedded: npt.NDArray[np.bool_]  # has an embedding (published, or added with its own factors)
    n_published: int
    display: tuple[Record, ...]  # the fields a response shows, per offer
    brand_code: npt.NDArray[np.int32]  # the same number for offers of the same brand
    value_median: float  # median business value of the catalogue (1.0 when zero), to scale values by
    partners: tuple[Partner, ...]  # the version's partners (conversion rules), for rewards
    partner_of_offer: npt.NDArray[np.int32]  # index into partners, -1 for offers of no (known) partner
    profile_brands: tuple[str, ...]  # brand names that member profiles index
    profile_partners: tuple[str, ...]  # partner ids that member profiles index
    memo: dict[tuple[object, ...], Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def n_factors(self) -> int:
        return int(self.factors.shape[1])

    def region_ok(self, country: str) -> npt.NDArray[np.bool_]:
        """Offers a member living in ``country`` may see as far as regions go."""
        allowed = self.region_allowed.get(country)
        return ~self.region_restricted if allowed is None else ~self.region_restricted | allowed

    def remember(self, key: tuple[object, ...], value: Memo) -> Memo:
        """Keep a computed value for reuse (an array read-only); bounded so a long-lived process cannot grow."""
        if len(self.memo) >= _MEMO_MAX:
            self.memo.clear()
        if isinstance(value, np.ndarray):
            value.flags.writeable = False
        self.memo[key] = value
        return value

    def memoised(self, key: tuple[object, ...], build: Callable[[], Memo]) -> Memo:
        """``build()``, computed once per catalogue under ``key`` and kept by ``remember``."""
        if key in self.memo:
            return cast(Memo, self.memo[key])
        return self.remember(key, build())

    @classmethod
    def build(
        cls,
        records: list[Record],
        *,
        factors: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        popular: npt.NDArray[np.float32],
        overlay: Mapping[str, Record | None] | None = None,
        embedder: OfferEmbedder | None = None,
        partners: Sequence[Partner] = (),
        profile_brands: Sequence[str] = (),
        profile_partners: Sequence[str] = (),
    ) -> Catalogue:
        """Arrays of ``records`` (with their factors, biases and popularity) after the overlay: an
        offer id mapped to None is taken down; a record replaces (merging over) the one with its id,
        or is appended as a new offer. A new offer is scored from its own ``factors``/``bias`` if it
        carries them, else from its features with ``embedder`` (the model's offer-feature embeddings),
        else from the mean embedding of published offers of its brand and category (or brand, or
        category); with none of these it can only be reached as popular-in-tier, with popularity 0."""
        n_published = len(records)
        if factors.shape[0] != n_published or bias.shape != (n_published,) or popular.shape != (N_TIERS, n_published):
            raise StoreError("catalogue arrays do not match the number of offers")
        recs = list(records)
        index = {str(r["offer_id"]): i for i, r in enumerate(recs)}
        taken_down: set[int] = set()
        extra_factors: list[npt.NDArray[np.float32]] = []
        extra_bias: list[float] = []
        extra_embedded: list[bool] = []
        for offer_id, change in (overlay or {}).items():
            i = index.get(offer_id)
            if change is None:
                if i is not None:
                    taken_down.add(i)
            elif i is not None:
                recs[i] = {**recs[i], **change, "offer_id": offer_id}
                taken_down.discard(i)
            else:
                index[offer_id] = len(recs)
                recs.append({**_NEW_OFFER_DEFAULTS, **change, "offer_id": offer_id})
                f = np.asarray(change.get("factors") or (), dtype=np.float32)
                extra_embedded.append(f.shape == (factors.shape[1],))
                extra_factors.append(f if extra_embedded[-1] else np.zeros(factors.shape[1], dtype=np.float32))
                extra_bias.append(float(change.get("bias") or 0.0))
        embedded = np.concatenate([np.ones(n_published, dtype=bool), np.array(extra_embedded, dtype=bool)])
        if extra_factors:
            factors = np.vstack([factors, np.stack(extra_factors)])
            bias = np.concatenate([bias, np.asarray(extra_bias, dtype=np.float32)])
            popular = np.hstack([popular, np.zeros((N_TIERS, len(extra_factors)), dtype=np.float32)])
            _embed_new_offers(recs, factors, bias, embedded, n_published, embedder)
        extras = _Extras(tuple(partners), tuple(profile_brands), tuple(profile_partners))
        return cls._arrays(recs, index, taken_down, factors, bias, popular, embedded, n_published, extras)

    @classmethod
    def _arrays(
        cls,
        recs: list[Record],
        index: dict[str, int],
        taken_down: set[int],
        factors: npt.NDArray[np.float32],
        bias: npt.NDArray[np.float32],
        popular: npt.NDArray[np.float32],
        embedded: npt.NDArray[np.bool_],
        n_published: int,
        extras: _Extras,
    ) -> Catalogue:
        n = len(recs)
        active = np.ones(n, dtype=bool)
        active[list(taken_down)] = False
        budget = [r.get("budget") for r in recs]
        limited = np.array([b is not None for b in budget], dtype=bool)
        left = np.array([(b or 0) - int(r.get("redeemed") or 0) for b, r in zip(budget, recs, strict=True)])
        region_restricted = np.array([bool(r.get("regions")) for r in recs], dtype=bool)
        region_allowed: dict[str, npt.NDArray[np.bool_]] = {}
        for i, r in enumerate(recs):
            for country in r.get("regions") or ():
                region_allowed.setdefault(str(country), np.zeros(n, dtype=bool))[i] = True
        channels = np.array([_channel_mask(r.get("channels")) for r in recs], dtype=np.uint8)
        max_tier = [r.get("max_tier") for r in recs]
        return cls(
            records=tuple(recs),
            offer_ids=np.array([r["offer_id"] for r in recs], dtype=np.str_),
            index=index,
            active=active,
            min_tier=np.array([int(r.get("min_tier") or 0) for r in recs], dtype=np.int8),
            max_tier=np.array([N_TIERS - 1 if t is None else int(t) for t in max_tier], dtype=np.int8),
            valid_from=_days([r["valid_from"] for r in recs]),
            valid_to=_days([r["valid_to"] for r in recs]),
            limited=limited,
            budget_left=left.astype(np.int64).reshape(n),
            channels=channels.reshape(n),
            region_restricted=region_restricted,
            region_allowed=region_allowed,
            points_cost=np.array([int(r.get("points_cost") or 0) for r in recs], dtype=np.int64),
            value=np.array([float(r.get("value") or 0.0) for r in recs], dtype=np.float32),
            lever=np.array([float(r.get("lever", 1.0) or 0.0) for r in recs], dtype=np.float32),
            earns_qualifying_nights=np.array([bool(r.get("earns_qualifying_nights")) for r in recs], dtype=bool),
            factors=np.ascontiguousarray(factors, dtype=np.float32),
            bias=np.ascontiguousarray(bias, dtype=np.float32),
            popular=np.ascontiguousarray(popular, dtype=np.float32),
            embedded=embedded,
            n_published=n_published,
            display=tuple({k: r.get(k) for k in DISPLAY_FIELDS} for r in recs),
            brand_code=pd.factorize(pd.Series([str(r.get("brand") or "") for r in recs], dtype=object))[0]
            .astype(np.int32)
            .reshape(n),
            value_median=_median_value(recs),
            partners=extras.partners,
            partner_of_offer=_partner_positions(recs, extras.partners),
            profile_brands=extras.profile_brands,
            profile_partners=extras.profile_partners,
        )


@dataclass(frozen=True)
class _Extras:
    """What a catalogue carries beside the offers: partners and the lists member profiles index."""

    partners: tuple[Partner, ...] = ()
    profile_brands: tuple[str, ...] = ()
    profile_partners: tuple[str, ...] = ()


OfferEmbedder = Callable[[list[Record]], Embeddings]
"""Embeds offers (catalogue records) from their features, e.g. ``feature_embedder`` of a version."""


def _median_value(recs: list[Record]) -> float:
    median = float(np.median([float(r.get("value") or 0.0) for r in recs])) if recs else 0.0
    return median or 1.0


def _partner_positions(recs: list[Record], partners: Sequence[Partner]) -> npt.NDArray[np.int32]:
    where = {p.partner_id: i for i, p in enumerate(partners)}
    return np.array([where.get(str(r.get("partner_id")), -1) for r in recs], dtype=np.int32).reshape(len(recs))


def _embed_new_offers(
    recs: list[Record],
    factors: npt.NDArray[np.float32],
    bias: npt.NDArray[np.float32],
    embedded: npt.NDArray[np.bool_],
    n_published: int,
    embedder: OfferEmbedder | None,
) -> None:
    """Fill, in place, the embedding of every new offer that carries none: from its features when an
    ``embedder`` can, else the mean of published offers sharing its brand and category, its brand, or
    its category (the fallback for families without feature embeddings, such as ALS and BPR)."""
    todo = [i for i in range(n_published, len(recs)) if not embedded[i]]
    if not todo:
        return
    if embedder is not None:
        emb = embedder([recs[i] for i in todo])
        for j, i in enumerate(todo):
            if emb.informed[j]:
                factors[i], bias[i], embedded[i] = emb.factors[j], emb.bias[j], True
    groups: dict[tuple[str, ...], list[int]] = {}
    for i in range(n_published):
        brand, category = str(recs[i].get("brand")), str(recs[i].get("category"))
        for key in (("bc", brand, category), ("b", brand), ("c", category)):
            groups.setdefault(key, []).append(i)
    for i in todo:
        if embedded[i]:
            continue
        brand, category = str(recs[i].get("brand")), str(recs[i].get("category"))
        for key in (("bc", brand, category), ("b", brand), ("c", category)):
            rows = groups.get(key)
            if rows:
                factors[i], bias[i], embedded[i] = factors[rows].mean(axis=0), bias[rows].mean(), True
                break


def feature_embedder(feature_space_json: str, table: OfferFeatureTable) -> OfferEmbedder:
    """An ``OfferEmbedder`` from a version's feature space and offer-feature embeddings (no training)."""
    space = offer_space(feature_space_json)
    columns = ("offer_id", "brand", "category", "city", "partner_id", "min_tier", "points_cost")

    def embed(records: list[Record]) -> Embeddings:
        frame = pd.DataFrame({c: [r.get(c) for r in records] for c in columns})
        frame["min_tier"] = frame["min_tier"].fillna(0).astype(np.int8)
        frame["points_cost"] = pd.to_numeric(frame["points_cost"], errors="coerce").fillna(0.0)
        return table.embed(space.encode_offers(frame))

    return embed


DISPLAY_FIELDS = ("offer_id", "title", "category", "brand", "city", "partner_id", "points_cost", "valid_to")

_NEW_OFFER_DEFAULTS: Record = {
    "title": "",
    "category": "stay",
    "brand": "",
    "city": None,
    "partner_id": None,
    "min_tier": 0,
    "max_tier": None,
    "valid_from": "1970-01-01",
    "valid_to": "9999-12-31",
    "points_cost": 0,
    "value": 0.0,
    "budget": None,
    "redeemed": 0,
    "regions": [],
    "channels": [],
    "lever": 1.0,
    "earns_qualifying_nights": False,
}


def _channel_mask(channels: object) -> int:
    names = _items(channels)
    if not names:
        return ALL_CHANNELS
    return sum(CHANNEL_BITS.get(c, 0) for c in set(names))


def _days(values: list[str]) -> npt.NDArray[np.int32]:
    try:
        days = np.array([v[:10] for v in values], dtype="datetime64[D]").astype(np.int64)
    except ValueError as exc:
        raise StoreError(f"the catalogue holds a date that cannot be read: {exc}") from exc
    return np.clip(days, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)


# -- Redis -----------------------------------------------------------------------------------------


def offers_hash(
    records: list[Record],
    factors: npt.NDArray[np.floating],
    bias: npt.NDArray[np.floating],
    popular: npt.NDArray[np.floating],
    feature_space_json: str | None = None,
    *,
    feature_table: OfferFeatureTable | None = None,
    partners: Sequence[Mapping[str, Any]] = (),
    profile_brands: Sequence[str] = (),
    profile_partners: Sequence[str] = (),
) -> dict[str, bytes]:
    """The fields of ``Keys.version_offers`` for one published version."""
    shape = {"n_offers": len(records), "n_factors": int(factors.shape[1])}
    fields = {
        OffersHash.CATALOGUE: dumps_catalogue(records),
        OffersHash.FACTORS: pack_floats(factors),
        OffersHash.BIAS: pack_floats(bias),
        OffersHash.POPULAR: pack_floats(popular),
    }
    if feature_space_json:
        fields[OffersHash.FEATURE_SPACE] = feature_space_json.encode()
        if feature_table is not None and feature_table.factors.shape[1] == factors.shape[1]:
            shape["n_features"] = len(feature_table.learned)
            fields[OffersHash.FEATURE_FACTORS] = pack_floats(feature_table.factors)
            fields[OffersHash.FEATURE_BIAS] = pack_floats(feature_table.bias)
            fields[OffersHash.FEATURE_LEARNED] = feature_table.learned.astype(np.uint8).tobytes()
    fields[OffersHash.SHAPE] = orjson.dumps(shape)
    if partners:
        fields[OffersHash.PARTNERS] = orjson.dumps(list(partners))
    if profile_brands:
        fields[OffersHash.PROFILE_BRANDS] = orjson.dumps(list(profile_brands))
    if profile_partners:
        fields[OffersHash.PROFILE_PARTNERS] = orjson.dumps(list(profile_partners))
    return fields


def _embedder(fields: Mapping[bytes, bytes], n_factors: int, n_features: int | None) -> OfferEmbedder | None:
    """The version's offer-feature embedder, when publish stored one."""
    space = fields.get(OffersHash.FEATURE_SPACE.encode())
    learned = fields.get(OffersHash.FEATURE_LEARNED.encode())
    if not space or learned is None or not n_features:
        return None
    table = OfferFeatureTable(
        factors=unpack_floats(fields[OffersHash.FEATURE_FACTORS.encode()], (n_features, n_factors)),
        bias=unpack_floats(fields[OffersHash.FEATURE_BIAS.encode()], (n_features,)),
        learned=np.frombuffer(learned, np.uint8).astype(bool),
    )
    return feature_embedder(space.decode(), table)


def _names(fields: Mapping[bytes, bytes], name: str) -> tuple[str, ...]:
    raw = fields.get(name.encode())
    return tuple(str(v) for v in orjson.loads(raw)) if raw else ()


def parse_overlay(raw: Mapping[bytes, bytes]) -> dict[str, Record | None]:
    """Overlay hash fields as offer id -> record (None for a takedown)."""
    overlay: dict[str, Record | None] = {}
    for key, value in raw.items():
        try:
            change = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise StoreError(f"catalogue overlay entry {key!r} is not valid JSON") from exc
        if change is not None and not isinstance(change, dict):
            raise StoreError(f"catalogue overlay entry {key!r} is neither an offer nor null")
        overlay[key.decode()] = change
    return overlay


def catalogue_from_hash(fields: Mapping[bytes, bytes], overlay: Mapping[bytes, bytes] | None = None) -> Catalogue:
    """A ``Catalogue`` from the raw ``Keys.version_offers`` hash and the raw overlay hash."""
    try:
        shape = orjson.loads(fields[OffersHash.SHAPE.encode()])
        n, d = int(shape["n_offers"]), int(shape["n_factors"])
        records = loads_catalogue(fields[OffersHash.CATALOGUE.encode()])
        factors = unpack_floats(fields[OffersHash.FACTORS.encode()], (n, d))
        bias = unpack_floats(fields[OffersHash.BIAS.encode()], (n,))
        popular = unpack_floats(fields[OffersHash.POPULAR.encode()], (N_TIERS, n))
        parsed = parse_overlay(overlay or {})
        embedder = _embedder(fields, d, shape.get("n_features")) if any(parsed.values()) else None
        partners = parse_partners(fields.get(OffersHash.PARTNERS.encode()))
        profile_brands = _names(fields, OffersHash.PROFILE_BRANDS)
        profile_partners = _names(fields, OffersHash.PROFILE_PARTNERS)
    except (KeyError, ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise StoreError(f"the offers of this version are missing or malformed: {exc}") from exc
    return Catalogue.build(
        records,
        factors=factors,
        bias=bias,
        popular=popular,
        overlay=parsed,
        embedder=embedder,
        partners=partners,
        profile_brands=profile_brands,
        profile_partners=profile_partners,
    )


def load_catalogue(client: redis.Redis, keys: Keys, version: str) -> Catalogue:
    """Read one version's catalogue with the live overlay (synchronously: jobs, batch picks, tests)."""
    try:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.version_offers(version))
        pipe.hgetall(keys.catalogue_overlay)
        fields, overlay = pipe.execute()
    except REDIS_ERRORS as exc:
        raise StoreError(f"cannot read the catalogue of version {version}: {exc}") from exc
    if not fields:
        raise StoreError(f"version {version} has no offers in Redis")
    return catalogue_from_hash(fields, overlay)
