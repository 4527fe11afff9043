"""Member and offer feature matrices for the hybrid model, and the vocabulary that encodes new rows alike.

Members are described by who they are (tier, home country) and what they do (brands and brand levels
they stay at, the cities they go to, cuisines they dine on, partners they use and which way they move
points, how often and how much they spend), weighted with exponential recency decay; offers by brand,
brand level, category, city, partner and minimum tier. A member's cities come from every trace of where
they go: stays, meals in the group's hotel restaurants (the hotel's city) and clicks or redemptions of
offers tied to a city, so members who never stayed still have cities; only the ``top_cities`` heaviest
that each hold at least ``min_city_share`` of that evidence are kept (a one-off trip is not a taste). A
meal or a response counts as much as one stay (``stay_weighting="count"``, the default: how often a
member goes somewhere says where they like to go, how long they stay there says little) or one stay
night (``"nights"``). City evidence fades on its own, slower clock (``city_half_life_days``, two years
by default): a member travels a few times a year, so a 90-day half-life would forget last year's trips,
and where someone likes to go changes over years, not months. In every row each group of features sums to
one and the row is then L1-normalised, as LightFM expects. Columns hold the side features first and the
identity features (one per training member or offer) last, so a new member or offer encodes without any identity.
A row is normalised as though it carried its identity even when the space has none for it (a new member or
offer): its side features then weigh what they weigh in a known row, and its missing identity counts as the
identity's prior, zero (``trained_part`` does the same for identities training never updated).
Everything is vectorised: one factorize and one sparse build per group.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from recsys.dataset import LoyaltyData
from recsys.errors import DataError
from recsys.schema import POSITIVE_EVENTS
from recsys.tiers import TIER_LABELS, Tier

StayWeighting = Literal["nights", "spend", "count"]

MEMBER_PREFIX = "member:"
OFFER_PREFIX = "offer:"
BRAND_LEVELS = ("economy", "midscale", "upscale", "luxury")
BAND_LABELS = ("low", "mid", "high", "top")
BAND_QUANTILES = (0.5, 0.8, 0.95)  # edges between the bands, among members active in the window
BAND_WINDOW_DAYS = 365
NO_ACTIVITY = "none"
ANY_CITY = "any"
BRAND_GROUP = "brand:"  # the feature group naming a hotel brand, on members (stays) and offers alike
CITY_GROUP = "city:"  # the feature group naming a city: where a member goes, where an offer applies
MIN_CITY_SHARE = 0.25  # default share of a member's city evidence a city must hold to count as theirs
HALF_LIFE_DAYS = 90.0  # default: behaviour this old counts half
CITY_HALF_LIFE_DAYS = 730.0  # default for city evidence: where members go changes over years, not months
FORMAT_VERSION = 1

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class _Group:
    """One kind of feature: per entry a row, a value and a weight (rows may repeat; weights add up)."""

    prefix: str
    rows: IntArray
    values: pd.Series | npt.NDArray[Any]  # missing or empty values are skipped
    weights: FloatArray
    top: int = 0  # keep only the ``top`` heaviest values of each row; 0 keeps all
    min_share: float = 0.0  # then drop values holding less than this share of the row's kept weight


@dataclass(frozen=True)
class FeatureSpace:
    """The feature vocabulary learned from the training history, plus what is needed to derive features
    for rows that come later (brand levels, partner kinds, band edges, decay). JSON-serialisable."""

    member_side: tuple[str, ...]
    member_ids: tuple[str, ...]
    offer_side: tuple[str, ...]
    offer_ids: tuple[str, ...]
    brand_levels: dict[str, str] = field(default_factory=dict)
    partner_kinds: dict[str, str] = field(default_factory=dict)
    frequency_edges: tuple[float, ...] = ()
    spend_edges: tuple[float, ...] = ()
    dining_edges: tuple[float, ...] = ()  # dining visits in the band window
    partner_edges: tuple[float, ...] = ()  # activities with one partner in the band window
    price_edges: tuple[float, ...] = ()  # offers' points cost
    half_life_days: float = HALF_LIFE_DAYS
    stay_weighting: StayWeighting = "count"
    top_cities: int = 3
    min_city_share: float = MIN_CITY_SHARE
    city_half_life_days: float = CITY_HALF_LIFE_DAYS
    property_cities: dict[str, str] = field(default_factory=dict)  # hotel -> city, for dining
    offer_cities: dict[str, str] = field(default_factory=dict)  # offer -> city, for responses

    @property
    def member_feature_names(self) -> tuple[str, ...]:
        return self.member_side + tuple(MEMBER_PREFIX + m for m in self.member_ids)

    @property
    def offer_feature_names(self) -> tuple[str, ...]:
        return self.offer_side + tuple(OFFER_PREFIX + o for o in self.offer_ids)

    @property
    def n_member_features(self) -> int:
        return len(self.member_side) + len(self.member_ids)

    @property
    def n_offer_features(self) -> int:
        return len(self.offer_side) + len(self.offer_ids)

    @cached_property
    def _member_side_index(self) -> pd.Index:
        return pd.Index(self.member_side)

    @cached_property
    def _member_id_index(self) -> pd.Index:
        return pd.Index(self.member_ids)

    @cached_property
    def _offer_side_index(self) -> pd.Index:
        return pd.Index(self.offer_side)

    @cached_property
    def _offer_id_index(self) -> pd.Index:
        return pd.Index(self.offer_ids)

    def encode_members(
        self,
        members: pd.DataFrame,
        *,
        stays: pd.DataFrame | None = None,
        dining: pd.DataFrame | None = None,
        partner_activity: pd.DataFrame | None = None,
        offer_events: pd.DataFrame | None = None,
        until: pd.Timestamp | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> sp.csr_matrix:
        """Feature rows for ``members`` (any members, known or new) in this space's columns.

        Behaviour (offer responses included) counts only before ``until``; recency is measured from
        ``as_of`` (default: ``until``, else the latest date in the behaviour given). Values this space
        has not seen are ignored.
        """
        groups = member_groups(
            members,
            stays=stays,
            dining=dining,
            partner_activity=partner_activity,
            offer_events=offer_events,
            until=until,
            as_of=as_of,
            space=self,
        )
        return _assemble(
            groups,
            n_rows=len(members),
            side=self._member_side_index,
            ids=self._member_id_index,
            row_ids=members["member_id"],
        )

    def encode_offers(self, offers: pd.DataFrame) -> sp.csr_matrix:
        """Feature rows for ``offers`` (e.g. one added to the catalogue after training) in this space's columns."""
        return _assemble(
            offer_groups(offers, self),
            n_rows=len(offers),
            side=self._offer_side_index,
            ids=self._offer_id_index,
            row_ids=offers["offer_id"],
        )

    def to_json(self, *, member_ids: bool = True) -> str:
        """JSON for the serving bundle. Without ``member_ids`` the text stays small but known members
        then encode like new ones (no identity column); the column count is kept either way."""
        doc = {
            "format": FORMAT_VERSION,
            "member_side": list(self.member_side),
            "member_ids": list(self.member_ids) if member_ids else None,
            "n_member_ids": len(self.member_ids),
            "offer_side": list(self.offer_side),
            "offer_ids": list(self.offer_ids),
            "brand_levels": self.brand_levels,
            "partner_kinds": self.partner_kinds,
            "frequency_edges": list(self.frequency_edges),
            "spend_edges": list(self.spend_edges),
            "dining_edges": list(self.dining_edges),
            "partner_edges": list(self.partner_edges),
            "price_edges": list(self.price_edges),
            "half_life_days": self.half_life_days,
            "stay_weighting": self.stay_weighting,
            "top_cities": self.top_cities,
            "min_city_share": self.min_city_share,
            "city_half_life_days": self.city_half_life_days,
            "property_cities": self.property_cities,
            "offer_cities": self.offer_cities,
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> FeatureSpace:
        try:
            doc = json.loads(text)
            if doc.get("format") != FORMAT_VERSION:
                raise ValueError(f"unsupported format {doc.get('format')!r}")
            ids = doc["member_ids"]
            if ids is None:
                # Keep the width: placeholders that no real id can equal (ids have no control characters).
                ids = [f"\x00{i}" for i in range(int(doc["n_member_ids"]))]
            return cls(
                member_side=tuple(doc["member_side"]),
                member_ids=tuple(ids),
                offer_side=tuple(doc["offer_side"]),
                offer_ids=tuple(doc["offer_ids"]),
                brand_levels=dict(doc["brand_levels"]),
                partner_kinds=dict(doc["partner_kinds"]),
                frequency_edges=tuple(float(x) for x in doc["frequency_edges"]),
                spend_edges=tuple(float(x) for x in doc["spend_edges"]),
                dining_edges=tuple(float(x) for x in doc.get("dining_edges", ())),
                partner_edges=tuple(float(x) for x in doc.get("partner_edges", ())),
                price_edges=tuple(float(x) for x in doc.get("price_edges", ())),
                half_life_days=float(doc["half_life_days"]),
                stay_weighting=doc["stay_weighting"],
                top_cities=int(doc["top_cities"]),
                min_city_share=float(doc.get("min_city_share", 0.0)),
                # spaces saved before cities had their own half-life decayed them like the rest
                city_half_life_days=float(doc.get("city_half_life_days", doc["half_life_days"])),
                property_cities=dict(doc.get("property_cities") or {}),
                offer_cities=dict(doc.get("offer_cities") or {}),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"not a feature space: {exc}") from exc


def fit_features(
    data: LoyaltyData,
    *,
    until: pd.Timestamp | None = None,
    as_of: pd.Timestamp | None = None,
    half_life_days: float = HALF_LIFE_DAYS,
    stay_weighting: StayWeighting = "count",
    top_cities: int = 3,
    min_city_share: float = MIN_CITY_SHARE,
    city_half_life_days: float = CITY_HALF_LIFE_DAYS,
) -> tuple[FeatureSpace, sp.csr_matrix, sp.csr_matrix]:
    """Learn the vocabulary from ``data`` (behaviour before ``until`` only) and encode every member and
    offer in it: ``(space, member_features, offer_features)``, rows in the frames' order."""
    stays = before(data.stays, "check_in", until)
    dining = before(data.dining, "date", until)
    activity = before(data.partner_activity, "date", until)
    responses = _responses(data.offer_events, until)
    as_of = as_of if as_of is not None else (until if until is not None else latest(stays, dining, activity))
    draft = FeatureSpace(
        member_side=(),
        member_ids=tuple(str(m) for m in data.members["member_id"]),
        offer_side=(),
        offer_ids=tuple(str(o) for o in data.offers["offer_id"]),
        brand_levels=brand_levels(stays),
        property_cities=property_cities(stays),
        offer_cities=offer_cities(data.offers),
        partner_kinds=dict(
            zip(data.partners["partner_id"].astype(str), data.partners["kind"].astype(str), strict=True)
        ),
        half_life_days=half_life_days,
        stay_weighting=stay_weighting,
        top_cities=top_cities,
        min_city_share=min_city_share,
        city_half_life_days=city_half_life_days,
    )
    behaviour = _behaviour(data.members, stays, dining, activity, responses, as_of, draft)
    draft = replace(
        draft,
        frequency_edges=_edges(behaviour.stays),
        spend_edges=_edges(behaviour.spend),
        dining_edges=_edges(behaviour.dining),
        partner_edges=_edges(behaviour.partner_counts.data.astype(np.float64)),
        price_edges=_edges(pd.to_numeric(data.offers["points_cost"], errors="coerce").fillna(0.0).to_numpy(np.float64)),
    )
    m_groups = behaviour.groups + _band_groups(behaviour, draft)
    del behaviour  # m_groups holds its groups now, and _built lets each go once its matrix is built
    m_built = _built(m_groups, len(data.members))
    o_built = _built(offer_groups(data.offers, draft), len(data.offers))
    space = replace(draft, member_side=_vocabulary(m_built), offer_side=_vocabulary(o_built))
    members = _stack(
        m_built, len(data.members), space._member_side_index, space._member_id_index, data.members["member_id"]
    )
    offers = _stack(o_built, len(data.offers), space._offer_side_index, space._offer_id_index, data.offers["offer_id"])
    return space, members, offers


def before(frame: pd.DataFrame, column: str, until: pd.Timestamp | None) -> pd.DataFrame:
    """Rows of ``frame`` strictly before ``until`` (no leakage into a later holdout)."""
    if until is None or frame.empty:
        return frame
    return frame.loc[frame[column] < align(until, frame[column])]


def latest(*frames: pd.DataFrame) -> pd.Timestamp | None:
    """The latest date or timestamp in the frames' date columns, in UTC."""
    found: list[pd.Timestamp] = []
    for frame in frames:
        for column in ("timestamp", "check_in", "date"):
            if column in frame.columns and len(frame):
                value = pd.Timestamp(frame[column].max())
                if not pd.isna(value):
                    found.append(utc(value))
    return max(found) if found else None


def positions(index: pd.Index, values: pd.Series | pd.Index) -> IntArray:
    """Position of each value in ``index`` (-1 where absent), looking each distinct value up once."""
    codes, uniques = pd.factorize(values)
    found = np.append(index.get_indexer(pd.Index(uniques).astype(str)), -1)  # the extra slot is code -1
    return found[codes].astype(np.int64)


def lookup(values: pd.Series, mapping: Mapping[str, Any], default: Any = None) -> npt.NDArray[Any]:
    """``mapping`` applied to each value (``default`` where absent or missing), each distinct value once."""
    codes, uniques = pd.factorize(values)
    mapped = np.array([*(mapping.get(str(u), default) for u in uniques), default], dtype=object)
    return mapped[codes]


def utc(ts: pd.Timestamp | Any) -> pd.Timestamp:
    """A timestamp in UTC; naive values are taken as UTC (as the data contract says)."""
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def decay(dates: pd.Series, as_of: pd.Timestamp | None, half_life_days: float) -> FloatArray:
    """Exponential recency weights: 1 on ``as_of``, 1/2 one half-life before; future dates count as 1."""
    if as_of is None or dates.empty:
        return np.ones(len(dates))
    age = (align(as_of, dates) - dates).dt.total_seconds() / 86400.0
    days = np.clip(age.to_numpy(dtype=np.float64, na_value=0.0), 0.0, None)
    return np.asarray(np.exp2(-days / half_life_days), dtype=np.float64)


def room_rates(stays: pd.DataFrame) -> pd.Series:
    """Brand -> room revenue per night over its stays (NaN for a brand with no nights)."""
    if stays.empty:
        return pd.Series(dtype=np.float64)
    per = stays.groupby("brand", observed=True)[["revenue", "nights"]].sum()
    return per["revenue"] / per["nights"].where(per["nights"] > 0)


def brand_levels(stays: pd.DataFrame) -> dict[str, str]:
    """Brand -> level (economy .. luxury) from its revenue per night, ranked into quarters."""
    rate = room_rates(stays).fillna(0.0).sort_values(kind="stable")
    position = np.arange(len(rate)) * len(BRAND_LEVELS) // max(len(rate), 1)
    return {str(b): BRAND_LEVELS[int(p)] for b, p in zip(rate.index, position, strict=True)}


def property_cities(stays: pd.DataFrame) -> dict[str, str]:
    """Hotel -> its city, as the stays record it (dining rows name the hotel, not the city)."""
    return property_attribute(stays, "city")


def property_attribute(stays: pd.DataFrame, column: str) -> dict[str, str]:
    """Hotel -> its ``column`` (city, brand) as its first stay records it."""
    if stays.empty or "property_id" not in stays:
        return {}
    known = stays.loc[stays["property_id"].notna() & stays[column].notna(), ["property_id", column]]
    first = known.drop_duplicates("property_id")
    return dict(zip(first["property_id"].astype(str), first[column].astype(str), strict=True))


def offer_cities(offers: pd.DataFrame) -> dict[str, str]:
    """Offer -> the city it is tied to (offers valid anywhere are left out)."""
    tied = offers.loc[offers["city"].notna() & (offers["city"].astype(str) != "")]
    return dict(zip(tied["offer_id"].astype(str), tied["city"].astype(str), strict=True))


def _responses(events: pd.DataFrame | None, until: pd.Timestamp | None) -> pd.DataFrame:
    """Clicks and redemptions strictly before ``until``."""
    if events is None or events.empty:
        return pd.DataFrame()
    events = before(events, "timestamp", until)
    return events.loc[events["event"].isin(POSITIVE_EVENTS)]


def member_groups(
    members: pd.DataFrame,
    *,
    stays: pd.DataFrame | None,
    dining: pd.DataFrame | None,
    partner_activity: pd.DataFrame | None,
    offer_events: pd.DataFrame | None = None,
    until: pd.Timestamp | None,
    as_of: pd.Timestamp | None,
    space: FeatureSpace,
) -> list[_Group]:
    """Every member feature group, in column order; behaviour frames may hold other members too."""
    empty = pd.DataFrame()
    stays = before(stays if stays is not None else empty, "check_in", until)
    dining = before(dining if dining is not None else empty, "date", until)
    activity = before(partner_activity if partner_activity is not None else empty, "date", until)
    responses = _responses(offer_events, until)
    if as_of is None:
        as_of = until if until is not None else latest(stays, dining, activity)
    behaviour = _behaviour(members, stays, dining, activity, responses, as_of, space)
    return behaviour.groups + _band_groups(behaviour, space)


@dataclass(frozen=True)
class _Behaviour:
    groups: list[_Group]  # every member group but the bands
    stays: FloatArray  # stays per member in the year before as_of
    spend: FloatArray  # room revenue plus dining spend per member in that year
    dining: FloatArray  # dining visits per member in that year
    partner_counts: sp.csr_matrix  # members x partners: activities in that year
    partners: tuple[str, ...]  # the columns of partner_counts


def _behaviour(
    members: pd.DataFrame,
    stays: pd.DataFrame,
    dining: pd.DataFrame,
    activity: pd.DataFrame,
    responses: pd.DataFrame,
    as_of: pd.Timestamp | None,
    space: FeatureSpace,
) -> _Behaviour:
    index = pd.Index(members["member_id"])
    n = len(members)
    rows = np.arange(n, dtype=np.int64)
    ones = np.ones(n)
    groups = [
        _Group("tier:", rows, _tier_labels(members["tier"]), ones),
        _Group("country:", rows, members["home_country"], ones),
    ]
    count, spend, meals = np.zeros(n), np.zeros(n), np.zeros(n)
    partner_counts = sp.csr_matrix((n, 0))
    partners: tuple[str, ...] = ()
    half, city_half = space.half_life_days, space.city_half_life_days
    cities: list[tuple[IntArray, npt.NDArray[Any], FloatArray]] = []  # (rows, city, weight) from each source
    if not stays.empty:
        s_rows, stays = _rows_of(index, stays)
        base = {
            "nights": stays["nights"].to_numpy(dtype=np.float64),
            "spend": stays["revenue"].to_numpy(dtype=np.float64),
            "count": np.ones(len(stays)),
        }[space.stay_weighting]
        w = base * decay(stays["check_in"], as_of, half)
        cities.append((s_rows, stays["city"].to_numpy(dtype=object), base * decay(stays["check_in"], as_of, city_half)))
        groups += [
            _Group(BRAND_GROUP, s_rows, stays["brand"], w),
            _Group("brand_level:", s_rows, lookup(stays["brand"], space.brand_levels), w),
        ]
        recent = _in_window(stays["check_in"], as_of)
        count += np.bincount(s_rows[recent], minlength=n)
        spend += np.bincount(s_rows[recent], weights=stays["revenue"].to_numpy(np.float64)[recent], minlength=n)
    if not dining.empty:
        d_rows, dining = _rows_of(index, dining)
        w = decay(dining["date"], as_of, half)
        groups.append(_Group("cuisine:", d_rows, dining["cuisine"], w))
        if "property_id" in dining:  # a meal in one of the group's hotels: a visit to its city
            city_w = decay(dining["date"], as_of, city_half)
            cities.append((d_rows, lookup(dining["property_id"], space.property_cities), city_w))
        recent = _in_window(dining["date"], as_of)
        spend += np.bincount(d_rows[recent], weights=dining["spend"].to_numpy(np.float64)[recent], minlength=n)
        meals += np.bincount(d_rows[recent], minlength=n)
    if not activity.empty:
        a_rows, activity = _rows_of(index, activity)
        w = decay(activity["date"], as_of, half)
        groups += [
            _Group("partner:", a_rows, activity["partner_id"], w),
            _Group("partner_kind:", a_rows, lookup(activity["partner_id"], space.partner_kinds), w),
            _Group("partner_activity:", a_rows, activity["activity"], w),
        ]
        recent = _in_window(activity["date"], as_of)
        codes, uniques = pd.factorize(activity["partner_id"].astype(str).to_numpy()[recent], sort=True)
        partners = tuple(str(u) for u in uniques)
        partner_counts = sp.csr_matrix(
            (np.ones(len(codes)), (a_rows[recent], codes)), shape=(n, len(partners)), dtype=np.float64
        )
        partner_counts.sum_duplicates()
    if not responses.empty:  # interest in an offer tied to a city is interest in the city
        r_rows, responses = _rows_of(index, responses)
        cities.append(
            (r_rows, lookup(responses["offer_id"], space.offer_cities), decay(responses["timestamp"], as_of, city_half))
        )
    if cities:
        groups.append(
            _Group(
                CITY_GROUP,
                np.concatenate([c[0] for c in cities]),
                np.concatenate([c[1] for c in cities]),
                np.concatenate([c[2] for c in cities]),
                top=space.top_cities,
                min_share=space.min_city_share,
            )
        )
    return _Behaviour(
        groups=groups, stays=count, spend=spend, dining=meals, partner_counts=partner_counts, partners=partners
    )


def _band_groups(behaviour: _Behaviour, space: FeatureSpace) -> list[_Group]:
    rows = np.arange(len(behaviour.stays), dtype=np.int64)
    ones = np.ones(len(rows))
    usage = behaviour.partner_counts.tocoo()
    partner_bands = _bands(usage.data, space.partner_edges)
    partner_names = np.asarray(behaviour.partners, dtype=object)[usage.col] if usage.nnz else np.empty(0, object)
    return [
        _Group("stay_frequency:", rows, _bands(behaviour.stays, space.frequency_edges), ones),
        _Group("spend:", rows, _bands(behaviour.spend, space.spend_edges), ones),
        _Group("dining_frequency:", rows, _bands(behaviour.dining, space.dining_edges), ones),
        _Group("partner_use:", usage.row.astype(np.int64), partner_names + ":" + partner_bands, np.ones(usage.nnz)),
    ]


def offer_groups(offers: pd.DataFrame, space: FeatureSpace) -> list[_Group]:
    """Every offer feature group, in column order."""
    rows = np.arange(len(offers), dtype=np.int64)
    ones = np.ones(len(offers))
    city = offers["city"].astype(object)
    city = city.where(city.notna() & (city.astype(str) != ""), ANY_CITY)
    groups = [
        _Group(BRAND_GROUP, rows, offers["brand"], ones),
        _Group("brand_level:", rows, lookup(offers["brand"], space.brand_levels), ones),
        _Group("category:", rows, offers["category"], ones),
        _Group(CITY_GROUP, rows, city, ones),
        _Group("partner:", rows, offers["partner_id"], ones),
        _Group("partner_kind:", rows, lookup(offers["partner_id"], space.partner_kinds), ones),
        _Group("min_tier:", rows, _tier_labels(offers["min_tier"]), ones),
    ]
    if "points_cost" in offers:  # price bands (a frame without costs encodes without them)
        cost = pd.to_numeric(offers["points_cost"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        groups.append(_Group("price:", rows, _bands(cost, space.price_edges), ones))
    return groups


def align(ts: pd.Timestamp, column: pd.Series) -> pd.Timestamp:
    """``ts`` comparable with ``column``: UTC-aware for timestamps, naive UTC for dates."""
    value = utc(ts)
    return value if isinstance(column.dtype, pd.DatetimeTZDtype) else value.tz_localize(None)


def _rows_of(index: pd.Index, frame: pd.DataFrame) -> tuple[IntArray, pd.DataFrame]:
    """Row of each entry's member, dropping entries of members not being encoded."""
    rows = positions(index, frame["member_id"])
    known = rows >= 0
    if known.all():
        return rows.astype(np.int64), frame
    return rows[known].astype(np.int64), frame.loc[known]


def _in_window(dates: pd.Series, as_of: pd.Timestamp | None) -> npt.NDArray[np.bool_]:
    """Dates in the band window: the year before ``as_of`` (none without an ``as_of``)."""
    if as_of is None:
        return np.zeros(len(dates), dtype=np.bool_)
    start = align(as_of - pd.Timedelta(days=BAND_WINDOW_DAYS), dates)
    return np.asarray((dates >= start).to_numpy(dtype=np.bool_, na_value=False))


def _edges(values: FloatArray) -> tuple[float, ...]:
    active = values[values > 0]
    if not len(active):
        return ()
    return tuple(float(x) for x in np.quantile(active, BAND_QUANTILES))


def _bands(values: FloatArray, edges: Sequence[float]) -> npt.NDArray[Any]:
    labels = np.array([*BAND_LABELS[: len(edges) + 1], NO_ACTIVITY], dtype=object)
    position = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    position = np.where(values > 0, position, len(labels) - 1)
    return labels[position]


def _tier_labels(tiers: pd.Series) -> npt.NDArray[Any]:
    """Tier labels from int8 tiers (0 = classic) or from tier names."""
    if pd.api.types.is_numeric_dtype(tiers):
        labels = np.array(TIER_LABELS, dtype=object)
        return labels[tiers.to_numpy(dtype=np.int64)]
    return np.array([Tier.parse(str(t)).label for t in tiers], dtype=object)


def _built(groups: list[_Group], n_rows: int) -> list[tuple[sp.csr_matrix, list[str]]]:
    """Each group's matrix, in order. Empties ``groups`` as it goes, so that each group's entry arrays
    (millions of rows for stays, meals and partner activity) are freed once their matrix exists rather
    than all held until the last is built."""
    built = []
    while groups:
        built.append(_group_matrix(groups.pop(0), n_rows))
    return built


def _group_matrix(group: _Group, n_rows: int) -> tuple[sp.csr_matrix, list[str]]:
    """The group as rows x its own values, duplicates summed, top-n kept, each row summing to one."""
    codes, uniques = pd.factorize(group.values, sort=True)  # missing values get code -1
    categories = [str(u) for u in uniques]
    usable = np.array([c != "" for c in categories] + [False], dtype=np.bool_)  # the extra slot is code -1
    keep = usable[codes] & (group.weights > 0)
    matrix = sp.csr_matrix(
        (group.weights[keep], (group.rows[keep], codes[keep])), shape=(n_rows, len(categories)), dtype=np.float64
    )
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    if group.top:
        matrix = _keep_top(matrix, group.top)
    if group.min_share > 0:
        share = _normalise_rows(matrix)
        matrix = sp.csr_matrix(matrix.multiply(share >= group.min_share))
        matrix.eliminate_zeros()
    return _normalise_rows(matrix), [group.prefix + str(c) for c in categories]


def _keep_top(matrix: sp.csr_matrix, n: int) -> sp.csr_matrix:
    coo = matrix.tocoo()
    order = np.lexsort((-coo.data, coo.row))
    row = coo.row[order]
    rank = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    kept = order[rank < n]
    return sp.csr_matrix((coo.data[kept], (coo.row[kept], coo.col[kept])), shape=matrix.shape)


def _normalise_rows(matrix: sp.csr_matrix, missing: FloatArray | None = None) -> sp.csr_matrix:
    """Rows scaled to sum to one; ``missing`` (per row) is weight counted in the sum but not present."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    matrix.sum_duplicates()
    sums = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    if missing is not None:
        sums = np.where(sums > 0, sums + missing, 0.0)
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    matrix.data *= np.repeat(scale, np.diff(matrix.indptr))
    return matrix


def _vocabulary(built: list[tuple[sp.csr_matrix, list[str]]]) -> tuple[str, ...]:
    """Names of the values some row actually has, group by group (so no column is never trained)."""
    names: list[str] = []
    for matrix, group_names in built:
        used = np.flatnonzero(matrix.getnnz(axis=0))
        names.extend(group_names[i] for i in used)
    return tuple(names)


def _stack(
    built: list[tuple[sp.csr_matrix, list[str]]], n_rows: int, side: pd.Index, ids: pd.Index, row_ids: pd.Series
) -> sp.csr_matrix:
    """All groups plus identities in the space's columns; unknown values dropped; rows L1-normalised."""
    row_parts: list[IntArray] = []
    col_parts: list[IntArray] = []
    data_parts: list[FloatArray] = []
    for matrix, names in built:
        columns = side.get_indexer(pd.Index(names)) if names else np.empty(0, dtype=np.int64)
        coo = matrix.tocoo()
        mapped = columns[coo.col] if len(coo.col) else np.empty(0, dtype=np.int64)
        ok = mapped >= 0
        row_parts.append(coo.row[ok].astype(np.int64))
        col_parts.append(mapped[ok].astype(np.int64))
        data_parts.append(coo.data[ok])
    id_cols = positions(ids, row_ids)
    has_id = id_cols >= 0
    row_parts.append(np.flatnonzero(has_id).astype(np.int64))
    col_parts.append(len(side) + id_cols[has_id].astype(np.int64))
    data_parts.append(np.ones(int(has_id.sum())))
    matrix = sp.csr_matrix(
        (np.concatenate(data_parts), (np.concatenate(row_parts), np.concatenate(col_parts))),
        shape=(n_rows, len(side) + len(ids)),
        dtype=np.float64,
    )
    return sp.csr_matrix(_normalise_rows(matrix, missing=(~has_id).astype(np.float64)), dtype=np.float32)


def trained_part(features: sp.csr_matrix, trained: npt.NDArray[np.bool_]) -> sp.csr_matrix:
    """``features`` with the columns training never updated set to zero, the rest at their own weight.

    An untrained feature (a cold offer's identity, which WARP only ever pushed down as a sampled
    negative; a value no trained row carried) counts as its prior, zero. The remaining features are not
    scaled up to fill its share: they weigh what they weigh in a trained row, where the identity holds the
    rest of what is known about the row. Scaling them up overstated what features alone say, and offers
    few or no members had responded to crowded out established offers (README, "Cold rows at their
    trained weight")."""
    return sp.csr_matrix(features @ sp.diags(trained.astype(np.float32)), dtype=np.float32)


def _assemble(groups: list[_Group], *, n_rows: int, side: pd.Index, ids: pd.Index, row_ids: pd.Series) -> sp.csr_matrix:
    return _stack(_built(groups, n_rows), n_rows, side, ids, row_ids)
