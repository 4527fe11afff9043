"""The synthetic hotel group members live in: countries, cities, brands, properties, restaurants,
partners and the offer catalogue. Fixed tables plus seeded draws, so one seed gives one world."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from recsys.errors import ConfigurationError
from recsys.tiers import TIER_LABELS

# Member home countries and their shares (China and Iran first, as in the source documents).
COUNTRIES: dict[str, float] = {
    "CN": 0.36,
    "IR": 0.18,
    "AE": 0.06,
    "TR": 0.05,
    "JP": 0.05,
    "SG": 0.04,
    "TH": 0.04,
    "MY": 0.04,
    "GB": 0.05,
    "FR": 0.04,
    "DE": 0.04,
    "US": 0.05,
}


@dataclass(frozen=True)
class City:
    name: str
    country: str
    popularity: float  # relative pull on travellers
    resort: bool
    cost: float  # price level relative to 1.0


CITIES: tuple[City, ...] = (
    City("Shanghai", "CN", 1.0, False, 1.2),
    City("Beijing", "CN", 0.9, False, 1.15),
    City("Guangzhou", "CN", 0.7, False, 1.0),
    City("Shenzhen", "CN", 0.7, False, 1.05),
    City("Chengdu", "CN", 0.6, False, 0.85),
    City("Hangzhou", "CN", 0.6, False, 0.95),
    City("Xi'an", "CN", 0.5, False, 0.8),
    City("Sanya", "CN", 0.6, True, 1.1),
    City("Tehran", "IR", 0.8, False, 0.7),
    City("Isfahan", "IR", 0.5, False, 0.6),
    City("Shiraz", "IR", 0.5, False, 0.6),
    City("Mashhad", "IR", 0.5, False, 0.6),
    City("Kish", "IR", 0.5, True, 0.8),
    City("Dubai", "AE", 0.9, True, 1.4),
    City("Abu Dhabi", "AE", 0.5, False, 1.3),
    City("Istanbul", "TR", 0.7, False, 1.0),
    City("Tokyo", "JP", 0.8, False, 1.5),
    City("Osaka", "JP", 0.5, False, 1.3),
    City("Singapore", "SG", 0.7, False, 1.5),
    City("Bangkok", "TH", 0.7, False, 0.9),
    City("Phuket", "TH", 0.6, True, 1.0),
    City("Kuala Lumpur", "MY", 0.5, False, 0.85),
    City("London", "GB", 0.7, False, 1.6),
    City("Paris", "FR", 0.6, False, 1.6),
    City("Frankfurt", "DE", 0.4, False, 1.3),
    City("New York", "US", 0.6, False, 1.8),
)
CITY_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CITIES)}

# Brand -> level, 1 = economy .. 5 = luxury; the level is hidden from the data contract.
BRAND_LEVELS: dict[str, int] = {
    "Nomad Inn": 1,
    "CityStay Express": 1,
    "Caravan Lodge": 2,
    "Harbor Suites": 2,
    "Meridian Place": 3,
    "Atlas Business": 3,
    "Orchid Collection": 4,
    "Azure Resorts": 4,
    "Jade Palace": 5,
    "Saffron Grand": 5,
}
BRANDS: tuple[str, ...] = tuple(BRAND_LEVELS)
RESORT_BRANDS = frozenset({"Azure Resorts", "Saffron Grand"})
NIGHTLY_RATE = {1: 60.0, 2: 95.0, 3: 150.0, 4: 230.0, 5: 420.0}
MEAL_SPEND = {1: 18.0, 2: 28.0, 3: 45.0, 4: 70.0, 5: 120.0}

LOCAL_CUISINES: dict[str, tuple[str, ...]] = {
    "CN": ("cantonese", "sichuan", "hotpot", "dim_sum"),
    "IR": ("persian", "kebab_house"),
    "AE": ("middle_eastern", "persian"),
    "TR": ("turkish", "middle_eastern"),
    "JP": ("japanese",),
    "SG": ("peranakan", "cantonese"),
    "TH": ("thai",),
    "MY": ("malaysian", "peranakan"),
    "GB": ("steakhouse",),
    "FR": ("french",),
    "DE": ("steakhouse",),
    "US": ("steakhouse",),
}
GLOBAL_CUISINES: tuple[str, ...] = ("international_buffet", "italian", "seafood", "lobby_bar", "cafe", "french")
CUISINES: tuple[str, ...] = tuple(
    sorted({c for local in LOCAL_CUISINES.values() for c in local} | set(GLOBAL_CUISINES))
)


@dataclass(frozen=True)
class Partner:
    partner_id: str
    name: str
    kind: str
    points_to_partner: float
    partner_to_points: float
    min_transfer: int
    unit: str
    uptake: float  # share of members who use the partner at all
    yearly: float  # activities per year of a keen user


PARTNERS: tuple[Partner, ...] = (
    Partner("skywings", "SkyWings Airlines", "airline", 0.3333, 2.0, 3000, "miles", 0.25, 4.0),
    Partner("simorgh", "Simorgh Air", "airline", 0.25, 1.5, 4000, "miles", 0.12, 4.0),
    Partner("driveaway", "DriveAway Rentals", "car_rental", 0.0, 0.0, 0, "rentals", 0.18, 2.5),
    Partner("jadecard", "Jade Bank Card", "card", 0.0, 1.0, 1000, "card points", 0.2, 8.0),
    Partner("quickride", "QuickRide", "ride_hailing", 0.02, 0.0, 500, "ride credits", 0.28, 10.0),
    Partner("bazaar", "Bazaar Mall", "retail", 0.0, 0.5, 1000, "coins", 0.14, 3.0),
)
PARTNER_IDS: tuple[str, ...] = tuple(p.partner_id for p in PARTNERS)
# Where a partner is more popular than its base uptake.
PARTNER_HOME: dict[str, tuple[str, ...]] = {
    "skywings": ("CN", "SG", "MY"),
    "simorgh": ("IR", "AE", "TR"),
    "driveaway": ("US", "GB", "DE", "FR"),
    "jadecard": ("CN", "SG", "MY"),
    "quickride": ("CN", "TH", "MY", "SG", "IR"),
    "bazaar": ("AE", "TR", "IR"),
}

# Offers per category in the catalogue (about 320 in all).
CATEGORY_COUNTS: dict[str, int] = {
    "stay": 80,
    "dining": 50,
    "spa": 25,
    "upgrade": 30,
    "partner_transfer": 30,
    "experience": 45,
    "car_rental": 30,
    "card": 30,
}
MAX_OFFERS = 9_999  # offer ids are OF0001 .. OF9999

EXPERIENCES = ("City tour", "Cooking class", "Museum pass", "Sunset cruise", "Night market walk", "Concert tickets")
RESORT_EXPERIENCES = ("Island hopping", "Snorkelling trip", "Beach cabana day")
CHANNEL_SETS = ("",) * 10 + ("app", "app|email", "email|web", "app|web", "app|sms")


@dataclass(frozen=True)
class World:
    """Everything that is the same for every member: hotels, restaurants, partners and offers."""

    properties: pd.DataFrame  # property_id, brand, city, level, rate, city_idx
    outlets: pd.DataFrame  # outlet_id, property_id, cuisine, prop_idx
    partners: pd.DataFrame  # the partners file of the contract
    offers: pd.DataFrame  # the offers file of the contract (typed)
    push: np.ndarray  # hidden weight of each offer in the legacy campaign planner (exposure)


def build_world(rng: np.random.Generator, as_of: date, n_members: int, n_offers: int | None = None) -> World:
    """The hotels, restaurants, partners and offer catalogue; budgets scale with ``n_members``. With
    ``n_offers`` the catalogue has that many offers, categories in the usual proportions."""
    properties = _properties(rng)
    outlets = _outlets(rng, properties)
    partners = pd.DataFrame(
        {
            "partner_id": [p.partner_id for p in PARTNERS],
            "name": [p.name for p in PARTNERS],
            "kind": [p.kind for p in PARTNERS],
            "points_to_partner": [p.points_to_partner for p in PARTNERS],
            "partner_to_points": [p.partner_to_points for p in PARTNERS],
            "min_transfer": [p.min_transfer for p in PARTNERS],
            "unit": [p.unit for p in PARTNERS],
        }
    )
    offers = _offers(rng, properties, outlets, as_of, n_members, category_counts(n_offers))
    push = np.round(rng.lognormal(0.0, 0.2, len(offers)), 4)
    return World(properties, outlets, partners, offers, push)


def _properties(rng: np.random.Generator) -> pd.DataFrame:
    """Three to eight hotels per city, resort brands where the beaches are."""
    rows = []
    levels = np.array([BRAND_LEVELS[b] for b in BRANDS])
    for city_idx, city in enumerate(CITIES):
        n = round(3 + 5 * city.popularity)
        resort_brand = np.array([b in RESORT_BRANDS for b in BRANDS])
        weights = np.ones(len(BRANDS))
        if city.resort:
            weights[resort_brand] *= 3.0
            weights[levels >= 4] *= 1.5
        else:
            weights[np.array([b == "Azure Resorts" for b in BRANDS])] *= 0.2
        # Every city has something cheap and something upscale.
        chosen = [
            rng.choice(np.flatnonzero(levels <= 2)),
            rng.choice(np.flatnonzero(levels >= 3)),
            *rng.choice(len(BRANDS), size=n - 2, p=weights / weights.sum()),
        ]
        for brand_idx in chosen:
            brand = BRANDS[int(brand_idx)]
            level = BRAND_LEVELS[brand]
            rate = NIGHTLY_RATE[level] * city.cost * float(rng.lognormal(0.0, 0.1))
            rows.append((brand, city.name, level, round(rate, 2), city_idx))
    frame = pd.DataFrame(rows, columns=["brand", "city", "level", "rate", "city_idx"])
    frame.insert(0, "property_id", [f"H{i + 1:04d}" for i in range(len(frame))])
    return frame


def _outlets(rng: np.random.Generator, properties: pd.DataFrame) -> pd.DataFrame:
    """One to four restaurants and bars per hotel, half local cuisine, more at higher levels."""
    rows = []
    for prop_idx, prop in enumerate(properties.itertuples(index=False)):
        country = CITIES[int(prop.city_idx)].country
        n = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3}[int(prop.level)] + int(rng.random() < 0.4)
        local, general = LOCAL_CUISINES[country], GLOBAL_CUISINES
        if int(prop.level) <= 2:
            general = ("international_buffet", "cafe")
        picks: list[str] = []
        for _ in range(n):
            pool = local if rng.random() < 0.5 else general
            cuisine = str(rng.choice(pool))
            if cuisine not in picks:
                picks.append(cuisine)
        for cuisine in picks:
            rows.append((prop.property_id, cuisine, prop_idx))
    frame = pd.DataFrame(rows, columns=["property_id", "cuisine", "prop_idx"])
    frame.insert(0, "outlet_id", [f"R{i + 1:05d}" for i in range(len(frame))])
    return frame


def _validity(rng: np.random.Generator, n: int, as_of: date) -> tuple[list[date], list[date]]:
    """Windows of a catalogue that changes weekly: most live now, some expired, some brand new."""
    start = as_of - timedelta(days=730)
    starts, ends = [], []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.14:  # new in the last four weeks: cold offers
            begin = as_of - timedelta(days=int(rng.integers(1, 28)))
            end = as_of + timedelta(days=int(rng.integers(21, 120)))
        elif roll < 0.40:  # expired
            begin = start + timedelta(days=int(rng.integers(-60, 560)))
            end = begin + timedelta(days=int(rng.integers(28, 200)))
            end = min(end, as_of - timedelta(days=int(rng.integers(1, 60))))
            begin = min(begin, end - timedelta(days=14))
        elif roll < 0.55:  # evergreen
            begin = start - timedelta(days=int(rng.integers(0, 365)))
            end = as_of + timedelta(days=int(rng.integers(180, 400)))
        else:  # running now, started some weeks or months ago
            begin = as_of - timedelta(days=int(rng.integers(28, 600)))
            end = as_of + timedelta(days=int(rng.integers(14, 90)))
        starts.append(begin)
        ends.append(end)
    return starts, ends


def category_counts(n_offers: int | None) -> dict[str, int]:
    """Offers per category: ``CATEGORY_COUNTS``, or scaled to ``n_offers`` in total (largest remainders)."""
    if n_offers is None:
        return dict(CATEGORY_COUNTS)
    if not 1 <= n_offers <= MAX_OFFERS:
        raise ConfigurationError(f"offers must be between 1 and {MAX_OFFERS}")
    total = sum(CATEGORY_COUNTS.values())
    exact = np.array(list(CATEGORY_COUNTS.values()), dtype=np.float64) * n_offers / total
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(-(exact - counts), kind="stable")[: n_offers - int(counts.sum())]] += 1
    return dict(zip(CATEGORY_COUNTS, (int(c) for c in counts), strict=True))


def _offers(
    rng: np.random.Generator,
    properties: pd.DataFrame,
    outlets: pd.DataFrame,
    as_of: date,
    n_members: int,
    counts: dict[str, int],
) -> pd.DataFrame:
    rows: list[dict[str, object]] = []
    partner = {p.partner_id: p for p in PARTNERS}
    for category, count in counts.items():
        for _ in range(count):
            rows.append(_offer(rng, category, properties, outlets, partner))
    frame = pd.DataFrame(rows)
    n = len(frame)
    frame.insert(0, "offer_id", [f"OF{i + 1:04d}" for i in range(n)])
    valid_from, valid_to = _validity(rng, n, as_of)
    frame["valid_from"] = np.array(valid_from, dtype="datetime64[D]")
    frame["valid_to"] = np.array(valid_to, dtype="datetime64[D]")
    budget = np.round(n_members * rng.uniform(0.002, 0.05, n)) + 10
    frame["budget"] = pd.array(np.where(rng.random(n) < 0.35, np.nan, budget), dtype="Int64")
    max_tier = frame["min_tier"].map(TIER_LABELS.index).to_numpy() + rng.integers(0, 3, n)
    has_ceiling = (rng.random(n) < 0.07) & (max_tier < 4)
    frame["max_tier"] = [TIER_LABELS[t] if c else "" for t, c in zip(max_tier, has_ceiling, strict=True)]
    regions = []
    for city in frame["city"]:
        if city and rng.random() < 0.12:
            country = CITIES[CITY_INDEX[str(city)]].country
            regions.append(country)
        elif rng.random() < 0.03:
            regions.append(str(rng.choice(["CN|SG|MY", "IR|AE|TR", "GB|FR|DE|US"])))
        else:
            regions.append("")
    frame["regions"] = regions
    frame["channels"] = rng.choice(CHANNEL_SETS, n)
    frame["lever"] = np.where(rng.random(n) < 0.8, 1.0, rng.choice([0.8, 1.2, 1.5, 2.0], n))
    limit = rng.choice([1, 2, 5], n).astype(float)
    frame["per_member_limit"] = pd.array(np.where(rng.random(n) < 0.5, np.nan, limit), dtype="Int64")
    qualifying = (frame["category"] == "stay").to_numpy() & (rng.random(n) < 0.4)
    frame["earns_qualifying_nights"] = qualifying
    return frame


def _min_tier(rng: np.random.Generator, category: str) -> str:
    shares = [0.62, 0.16, 0.11, 0.08, 0.03] if category != "upgrade" else [0.1, 0.3, 0.3, 0.2, 0.1]
    return TIER_LABELS[int(rng.choice(5, p=shares))]


def _offer(
    rng: np.random.Generator,
    category: str,
    properties: pd.DataFrame,
    outlets: pd.DataFrame,
    partners: dict[str, Partner],
) -> dict[str, object]:
    """One offer: where it applies, what it costs in points and what it is worth to the business."""
    pct = int(rng.choice([10, 15, 20, 25, 30]))
    city, partner_id = "", ""
    if category in ("stay", "spa", "upgrade", "experience", "dining"):
        pool = properties if category not in ("spa",) else properties[properties["level"] >= 3]
        prop = pool.iloc[int(rng.integers(len(pool)))]
        brand, level = str(prop["brand"]), int(prop["level"])
        city_wide = category == "experience" or rng.random() < 0.75 or category == "dining"
        city = str(prop["city"]) if city_wide else ""
        where = f"{brand} {city}" if city else brand
        if category == "stay":
            nights = int(rng.choice([1, 2, 3]))
            title = f"{nights} night{'s' if nights > 1 else ''} at {where}: {pct}% off"
            cost = 4000 * level * nights * rng.uniform(0.6, 1.3)
        elif category == "dining":
            menu = outlets[outlets["property_id"] == prop["property_id"]]
            cuisine = str(menu.iloc[int(rng.integers(len(menu)))]["cuisine"]).replace("_", " ")
            title = f"{cuisine.capitalize()} dinner for two at {where}"
            cost = 1500 * (1 + level) * rng.uniform(0.6, 1.3)
        elif category == "spa":
            title = f"Spa day at {where}"
            cost = 3000 * level * rng.uniform(0.7, 1.3)
        elif category == "upgrade":
            title = f"Suite upgrade at {where}"
            cost = 2500 * level * rng.uniform(0.5, 1.5)
        else:
            resort = CITIES[CITY_INDEX[city]].resort
            activity = str(rng.choice(RESORT_EXPERIENCES if resort and rng.random() < 0.6 else EXPERIENCES))
            title = f"{activity} in {city} with {brand}"
            cost = 1500 * (1 + 0.5 * level) * rng.uniform(0.6, 1.4)
        value = cost * 0.005 * rng.uniform(0.6, 1.6) + rng.uniform(5, 40)
    else:
        kinds = {
            "partner_transfer": ("skywings", "simorgh", "skywings", "jadecard"),
            "car_rental": ("driveaway", "driveaway", "quickride"),
            "card": ("jadecard", "jadecard", "jadecard", "bazaar"),
        }[category]
        p = partners[str(rng.choice(kinds))]
        partner_id, brand = p.partner_id, p.name
        if category == "partner_transfer":
            bonus = int(rng.choice([10, 20, 25, 30, 50]))
            to_partner = p.points_to_partner > 0 and rng.random() < 0.6
            title = (
                f"{bonus}% bonus converting points to {p.name} {p.unit}"
                if to_partner
                else f"{bonus}% bonus converting {p.name} {p.unit} to points"
            )
            cost = float(p.min_transfer * rng.integers(1, 6))
        elif category == "car_rental":
            city = str(CITIES[int(rng.integers(len(CITIES)))].name) if rng.random() < 0.6 else ""
            where = f" in {city}" if city else ""
            title = f"{p.name}: {pct}% off{where}" if p.kind == "car_rental" else f"Airport rides with {p.name}{where}"
            cost = rng.uniform(1500, 8000)
        else:
            bonus = int(rng.choice([5000, 10000, 20000]))
            title = (
                f"Apply for the {p.name}: {bonus:,} bonus points"
                if p.kind == "card" and rng.random() < 0.5
                else f"Triple points on {p.name} spend"
            )
            cost = 0.0 if rng.random() < 0.6 else rng.uniform(500, 3000)
        value = cost * 0.004 * rng.uniform(0.6, 1.6) + rng.uniform(20, 150)
    return {
        "title": title,
        "category": category,
        "brand": brand,
        "city": city,
        "partner_id": partner_id,
        "min_tier": _min_tier(rng, category),
        "points_cost": int(round(float(cost), -2)),
        "value": round(float(value), 2),
    }
