"""A small hand-made ServingBundle whose right answers the tests can work out independently.

Offers that must never be served (expired, future, exhausted budget, above the member's tier, other
channel or region) get a large bias, so they would top every ranking if a rule were forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from models.base import Embeddings
from recsys.profiles import SLOTS, MemberProfiles
from training.bundle import ServingBundle

N_FACTORS = 8
COUNTRIES = ("CN", "IR", "US")


def today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class OfferSpec:
    min_tier: int = 0
    max_tier: int | None = None
    valid_from: int = -30  # days from today
    valid_to: int = 30
    budget: int | None = None
    redeemed: int = 0
    channels: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    trap: bool = False  # boost so it would rank first if a rule were missed


SPECIAL: dict[str, OfferSpec] = {
    "expired": OfferSpec(valid_to=-1, trap=True),
    "future": OfferSpec(valid_from=1, trap=True),
    "exhausted": OfferSpec(budget=5, redeemed=5, trap=True),
    "last_one": OfferSpec(budget=5, redeemed=4),
    "ends_today": OfferSpec(valid_to=0),
    "gold_plus": OfferSpec(min_tier=2, trap=True),
    "diamond_only": OfferSpec(min_tier=4, trap=True),
    "up_to_silver": OfferSpec(max_tier=1, trap=True),
    "email_only": OfferSpec(channels=("email",), trap=True),
    "china_only": OfferSpec(regions=("CN",), trap=True),
    "app_or_web": OfferSpec(channels=("app", "web")),
}


def offers_frame(n_plain: int, on: date) -> tuple[pd.DataFrame, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Offers (plain ones first, then SPECIAL), redemptions so far, and which offers are traps."""
    specs = [(f"o{i:03d}", OfferSpec()) for i in range(n_plain)] + [(f"x_{k}", v) for k, v in SPECIAL.items()]
    day = pd.Timestamp(on)
    frame = pd.DataFrame(
        {
            "offer_id": [oid for oid, _ in specs],
            "title": [f"Offer {oid}" for oid, _ in specs],
            "category": ["stay" if i % 2 else "dining" for i in range(len(specs))],
            "brand": [("Aster", "Palace", "Budget")[i % 3] for i in range(len(specs))],
            "city": [None if i % 4 == 0 else "Shanghai" for i in range(len(specs))],
            "partner_id": [None] * len(specs),
            "min_tier": pd.Series([s.min_tier for _, s in specs], dtype="int8"),
            "valid_from": pd.Series([day + pd.Timedelta(days=s.valid_from) for _, s in specs], dtype="datetime64[ns]"),
            "valid_to": pd.Series([day + pd.Timedelta(days=s.valid_to) for _, s in specs], dtype="datetime64[ns]"),
            "points_cost": [100 * (i % 5) for i in range(len(specs))],
            "value": [float(i % 7) for i in range(len(specs))],
            "budget": [np.nan if s.budget is None else float(s.budget) for _, s in specs],
            "max_tier": [np.nan if s.max_tier is None else float(s.max_tier) for _, s in specs],
            "regions": [s.regions for _, s in specs],
            "channels": [s.channels for _, s in specs],
            "lever": [1.0] * len(specs),
            "per_member_limit": [np.nan] * len(specs),
            "earns_qualifying_nights": [i % 3 == 0 for i in range(len(specs))],
        }
    )
    redeemed = np.array([s.redeemed for _, s in specs], dtype=np.int64)
    traps = np.array([s.trap for _, s in specs], dtype=bool)
    return frame, redeemed, traps


def members_frame(n: int, on: date) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    expiring = [pd.Timestamp(on) + pd.Timedelta(days=30) if i % 5 == 0 else pd.NaT for i in range(n)]
    return pd.DataFrame(
        {
            "member_id": [f"m{i:04d}" for i in range(n)],
            "tier": pd.Series([i % 5 for i in range(n)], dtype="int8"),
            "home_country": [COUNTRIES[(i // 5) % len(COUNTRIES)] for i in range(n)],
            "enrolled_on": pd.Series([pd.Timestamp("2020-01-01")] * n, dtype="datetime64[ns]"),
            "points_balance": rng.integers(0, 5000, n),
            "consent_personalisation": [i % 17 != 3 for i in range(n)],
            "consent_email": [i % 11 != 4 for i in range(n)],
            "points_expiring_on": pd.Series(expiring, dtype="datetime64[ns]"),
            "qualifying_nights_ytd": [(i * 7) % 80 for i in range(n)],
        }
    )


PARTNERS = pd.DataFrame(
    {
        "partner_id": ["air", "car", "card"],
        "name": ["Air", "Car", "Card"],
        "kind": ["airline", "car_rental", "card"],
        "points_to_partner": [0.4, 0.0, 0.0],
        "partner_to_points": [2.0, 0.0, 1.0],
        "min_transfer": [5000, 0, 1000],
        "unit": ["miles", "rentals", "card points"],
    }
)
PARTNER_OFFERS: dict[str, tuple[str, str, int]] = {  # offer id -> partner, category, points cost
    "p_air": ("air", "partner_transfer", 3000),
    "p_car": ("car", "car_rental", 1500),
    "p_card_dear": ("card", "card", 10_000_000),  # no member can afford it
}


def partner_offers_frame(on: date) -> pd.DataFrame:
    day = pd.Timestamp(on)
    names = dict(zip(PARTNERS["partner_id"], PARTNERS["name"], strict=True))
    n = len(PARTNER_OFFERS)
    return pd.DataFrame(
        {
            "offer_id": list(PARTNER_OFFERS),
            "title": [f"{names[p]} offer" for p, _, _ in PARTNER_OFFERS.values()],
            "category": [c for _, c, _ in PARTNER_OFFERS.values()],
            "brand": [names[p] for p, _, _ in PARTNER_OFFERS.values()],
            "city": [None] * n,
            "partner_id": [p for p, _, _ in PARTNER_OFFERS.values()],
            "min_tier": pd.Series([0] * n, dtype="int8"),
            "valid_from": pd.Series([day - pd.Timedelta(days=30)] * n, dtype="datetime64[ns]"),
            "valid_to": pd.Series([day + pd.Timedelta(days=30)] * n, dtype="datetime64[ns]"),
            "points_cost": [c for _, _, c in PARTNER_OFFERS.values()],
            "value": [10.0] * n,
            "budget": [np.nan] * n,
            "max_tier": [np.nan] * n,
            "regions": [()] * n,
            "channels": [()] * n,
            "lever": [1.0] * n,
            "per_member_limit": [np.nan] * n,
            "earns_qualifying_nights": [False] * n,
        }
    )


def member_profiles_of(n: int) -> MemberProfiles:
    """Member i stays mostly with brand ("Aster", "Palace", "Budget")[i % 3], then the next one; even members
    use partner air (then card), members 1 mod 4 partner car, the others no partner."""
    names = ("Aster", "Budget", "Palace")
    order = ("Aster", "Palace", "Budget")
    first = [names.index(order[i % 3]) for i in range(n)]
    second = [names.index(order[(i + 1) % 3]) for i in range(n)]
    brands = np.full((n, SLOTS), -1, dtype=np.int16)
    brands[:, 0], brands[:, 1] = first, second
    brand_shares = np.zeros((n, SLOTS), dtype=np.float32)
    brand_shares[:, 0], brand_shares[:, 1] = 0.7, 0.3
    partners = np.full((n, SLOTS), -1, dtype=np.int16)
    partner_shares = np.zeros((n, SLOTS), dtype=np.float32)
    for i in range(n):
        if i % 2 == 0:
            partners[i, :2], partner_shares[i, :2] = (0, 2), (0.8, 0.2)
        elif i % 4 == 1:
            partners[i, 0], partner_shares[i, 0] = 1, 1.0
    popularity = np.array([0.5, 0.25, 0.5], dtype=np.float32)
    return MemberProfiles(names, brands, brand_shares, ("air", "car", "card"), partners, partner_shares, popularity)


def make_bundle(
    n_members: int = 60,
    n_plain_offers: int = 30,
    *,
    seed: int = 0,
    on: date | None = None,
    model_version: str = "1",
    with_partners: bool = False,
) -> tuple[ServingBundle, npt.NDArray[np.bool_]]:
    """A bundle (members m0000.., offers o000.. then x_*) and which offers are traps. Members whose
    index is a multiple of 7 are uninformed. ``with_partners`` adds partner offers (p_*) at the end and
    member profiles (``member_profiles_of``)."""
    on = on or today()
    rng = np.random.default_rng(seed)
    offers, redeemed, traps = offers_frame(n_plain_offers, on)
    if with_partners:
        extra = partner_offers_frame(on)
        offers = pd.concat([offers, extra], ignore_index=True)
        redeemed = np.concatenate([redeemed, np.zeros(len(extra), dtype=np.int64)])
        traps = np.concatenate([traps, np.zeros(len(extra), dtype=bool)])
    members = members_frame(n_members, on)
    n_offers = len(offers)
    offer_bias = rng.normal(0, 0.1, n_offers).astype(np.float32)
    offer_bias[traps] += 20.0
    informed = np.array([i % 7 != 0 for i in range(n_members)])
    member_factors = rng.normal(0, 1, (n_members, N_FACTORS)).astype(np.float32)
    popular = rng.random((5, n_offers)).astype(np.float32)
    popular[:, traps] += 5.0
    bundle = ServingBundle(
        member_ids=members["member_id"].to_numpy(dtype=str),
        member=Embeddings(member_factors, rng.normal(0, 0.1, n_members).astype(np.float32), informed),
        offer_ids=offers["offer_id"].to_numpy(dtype=str),
        offer=Embeddings(
            rng.normal(0, 1, (n_offers, N_FACTORS)).astype(np.float32), offer_bias, np.ones(n_offers, dtype=bool)
        ),
        members=members,
        offers=offers,
        partners=PARTNERS.copy(),
        popular_by_tier=popular,
        redeemed=redeemed,
        meta={
            "model_name": "loyalty-offers",
            "model_version": model_version,
            "family": "test",
            "run_id": f"run-{seed}",
            "trained_at": "2025-05-01T02:00:00+00:00",
            "metrics": '{"ndcg_at_10": 0.25}',
        },
        profiles=member_profiles_of(n_members) if with_partners else None,
    )
    return bundle, traps


def expected_eligible(bundle: ServingBundle, member: int, on: date, channel: str) -> npt.NDArray[np.bool_]:
    """The rules, written again plainly from the frames, for one member."""
    m = bundle.members.iloc[member]
    tier, country = int(m["tier"]), str(m["home_country"])
    out = []
    rows: list[Any] = list(bundle.offers.itertuples(index=False))
    for i, o in enumerate(rows):
        ok = int(o.min_tier) <= tier and (pd.isna(o.max_tier) or tier <= int(o.max_tier))
        ok &= o.valid_from.date() <= on <= o.valid_to.date()
        ok &= pd.isna(o.budget) or o.budget - bundle.redeemed[i] > 0
        ok &= not o.channels or channel in o.channels
        ok &= not o.regions or country in o.regions
        out.append(ok)
    if channel == "email" and not bool(m["consent_email"]):
        return np.zeros(len(out), dtype=bool)
    return np.array(out, dtype=bool)


def true_scores(bundle: ServingBundle, member: int) -> npt.NDArray[np.float32]:
    return (
        bundle.offer.factors @ bundle.member.factors[member] + bundle.offer.bias + bundle.member.bias[member]
    ).astype(np.float32)


def shift(on: date, days: int) -> date:
    return on + timedelta(days=days)
