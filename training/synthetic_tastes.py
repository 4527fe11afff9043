"""Hidden member tastes and the true affinity between a member and an offer.

Tastes drive every synthetic behaviour (stays, dining, partner activity, responses to offers), so
history reveals them with noise; ``true_affinity`` is the oracle an evaluation compares against.
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pandas as pd

from recsys.errors import DataError
from recsys.schema import OFFER_CATEGORIES
from recsys.tiers import TIER_LABELS
from training.synthetic_world import (
    BRAND_LEVELS,
    CITIES,
    CITY_INDEX,
    COUNTRIES,
    CUISINES,
    GLOBAL_CUISINES,
    LOCAL_CUISINES,
    PARTNER_HOME,
    PARTNER_IDS,
    PARTNERS,
)

# Tier pyramid: classic 55%, silver 25%, gold 12%, platinum 6%, diamond 2% of members, by a status
# score that rises with how much a member travels.
TIER_SHARES = (0.55, 0.25, 0.12, 0.06, 0.02)
_TIER_CUTS = np.array([NormalDist().inv_cdf(float(q)) for q in np.cumsum(TIER_SHARES)[:-1]])

CATEGORY_COLUMNS = tuple(f"cat_{c}" for c in OFFER_CATEGORIES)
PARTNER_COLUMNS = tuple(f"aff_{p}" for p in PARTNER_IDS)
# Taste for each offer category (log-odds): a common base, a part that behaviour reveals (below)
# and CATEGORY_NOISE of personal taste that only responses to offers reveal.
_CATEGORY_BASE = {
    "stay": 0.6,
    "dining": 0.15,
    "spa": -0.45,
    "upgrade": 0.0,
    "partner_transfer": -0.45,
    "experience": 0.0,
    "car_rental": -0.75,
    "card": -0.9,
}
CATEGORY_NOISE = 0.5

# Weights of the true affinity (logit scale).
W_FAVOURITE_CITY = 3.0  # the offer is in one of the member's favourite cities
W_OTHER_CITY = -1.5  # the offer is tied to a city the member does not go to
W_LEVEL = 1.5  # per brand level between the offer's brand and the member's preferred level
LEVEL_TOLERANCE = 0.8  # levels this close to the preferred one count as a match
W_PARTNER = 3.0  # times the member's affinity with the offer's partner, less PARTNER_NEUTRAL
PARTNER_NEUTRAL = 0.4  # non-users find partner offers unappealing
W_COST = 1.5  # times price sensitivity times log(1 + points_cost / 5000)
W_EXCLUSIVE = 0.45  # gold-and-above offers feel special to everyone

TASTES_FILE = "tastes"


def draw_tastes(rng: np.random.Generator, member_ids: npt.NDArray[np.str_]) -> pd.DataFrame:
    """Hidden tastes of a batch of members (rounded, so the written file is exactly what was used)."""
    n = len(member_ids)
    countries = np.array(list(COUNTRIES))
    home = countries[rng.choice(len(countries), n, p=np.array(list(COUNTRIES.values())))]
    travel_z = rng.standard_normal(n)
    status = 0.8 * travel_z + 0.6 * rng.standard_normal(n)
    tier = np.searchsorted(_TIER_CUTS, status)
    wealth = 0.5 * status + 0.85 * rng.standard_normal(n)
    leisure = rng.beta(2.0, 2.0, n)
    level_pref = np.clip(2.8 + 0.9 * wealth + 0.3 * rng.standard_normal(n), 1.0, 5.0)
    price_sensitivity = 1.0 / (1.0 + np.exp(1.2 * wealth + 0.5 * rng.standard_normal(n)))

    aff = np.zeros((n, len(PARTNERS)))
    for j, partner in enumerate(PARTNERS):
        local = np.isin(home, PARTNER_HOME[partner.partner_id])
        uptake = np.clip(partner.uptake * np.where(local, 2.0, 0.6), 0.0, 0.9)
        uses = rng.random(n) < uptake
        aff[:, j] = np.where(uses, rng.uniform(0.3, 1.0, n), 0.0)

    dining_rate = rng.beta(2.0, 3.0, n)
    tastes = pd.DataFrame(
        {
            "member_id": member_ids,
            "home_country": home,
            "tier": tier.astype(np.int8),
            "travel_rate": np.exp(np.log(1.1) + 1.05 * travel_z),
            "leisure": leisure,
            "level_pref": level_pref,
            "price_sensitivity": price_sensitivity,
            "fav_cities": _favourite_cities(rng, home, leisure),
            "cuisines": _cuisines(rng, home),
            "dining_rate": dining_rate,
            "local_dining": np.where(rng.random(n) < 0.35, rng.lognormal(np.log(2.0), 0.7, n), 0.0),
            "engagement": rng.lognormal(np.log(5.5), 0.7, n) * (1.0 + 0.12 * tier),
            "season_peak": rng.integers(1, 13, n),
            "season_strength": rng.uniform(0.0, 0.8, n),
        }
    )
    for j, column in enumerate(PARTNER_COLUMNS):
        tastes[column] = aff[:, j]
    airline = aff[:, [PARTNER_IDS.index("skywings"), PARTNER_IDS.index("simorgh")]].max(axis=1)
    ground = aff[:, [PARTNER_IDS.index("driveaway"), PARTNER_IDS.index("quickride")]].max(axis=1)
    card = aff[:, [PARTNER_IDS.index("jadecard"), PARTNER_IDS.index("bazaar")]].max(axis=1)
    driven = {
        "stay": 0.9 * travel_z,
        "dining": 5.6 * (dining_rate - 0.4),
        "spa": 1.1 * (level_pref - 3.0) + 2.25 * (leisure - 0.5),
        "upgrade": 0.7 * tier,
        "partner_transfer": 3.4 * airline,
        "experience": 3.6 * (leisure - 0.5),
        "car_rental": 3.4 * ground,
        "card": 3.4 * card,
    }
    for category, column in zip(OFFER_CATEGORIES, CATEGORY_COLUMNS, strict=True):
        noise = CATEGORY_NOISE * rng.standard_normal(n)
        tastes[column] = _CATEGORY_BASE[category] + driven[category] + noise
    floats = tastes.select_dtypes("float").columns
    tastes[floats] = tastes[floats].round(4)
    return tastes


def _favourite_cities(
    rng: np.random.Generator, home: npt.NDArray[np.str_], leisure: npt.NDArray[np.float64]
) -> list[str]:
    """One to four cities per member, mostly at home, resorts for the leisure-minded."""
    n = len(home)
    popularity = np.array([c.popularity for c in CITIES])
    country = np.array([c.country for c in CITIES])
    resort = np.array([c.resort for c in CITIES])
    weights = popularity[None, :] * np.where(country[None, :] == home[:, None], 6.0, 1.0)
    weights = weights * (1.0 + 2.5 * leisure[:, None] * resort[None, :])
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1)[:, :4]
    count = 1 + np.minimum(rng.poisson(1.2, n), 3)
    names = np.array([c.name for c in CITIES], dtype=object)
    return ["|".join(names[row[:k]]) for row, k in zip(order, count, strict=True)]


def _cuisines(rng: np.random.Generator, home: npt.NDArray[np.str_]) -> list[str]:
    n = len(home)
    local = np.array([[c in LOCAL_CUISINES[h] for c in CUISINES] for h in COUNTRIES])
    global_ = np.array([c in GLOBAL_CUISINES for c in CUISINES])
    country_row = pd.Index(list(COUNTRIES)).get_indexer(home)
    weights = 1.0 + 5.0 * local[country_row] + 0.5 * global_[None, :]
    keys = np.log(weights) + rng.gumbel(size=weights.shape)
    order = np.argsort(-keys, axis=1)[:, :3]
    count = 2 + (rng.random(n) < 0.4)
    names = np.array(CUISINES, dtype=object)
    return ["|".join(names[row[:k]]) for row, k in zip(order, count, strict=True)]


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), "").astype(str)


def _token_matrix(joined: pd.Series, names: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    padded = "|" + _text(joined) + "|"
    return np.column_stack([padded.str.contains(f"|{name}|", regex=False).to_numpy(dtype=bool) for name in names])


def favourite_cities(tastes: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """(members, ``CITIES``): True where the city is one of the member's hidden favourites (none for a
    member whose ``fav_cities`` is missing)."""
    return _token_matrix(tastes["fav_cities"], tuple(c.name for c in CITIES))


def true_affinity(
    tastes: pd.DataFrame, offers: pd.DataFrame, *, favourites: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.float32]:
    """The hidden log-odds that each member (rows, in ``tastes`` order) takes to each offer (columns,
    in ``offers`` order): the oracle ranking of synthetic data.

    ``tastes`` is what ``load_tastes`` returns (or a row subset of it); ``offers`` is the offers
    file as generated or as ``recsys.validation.load_dataset`` types it (``category``, ``brand``,
    ``city``, ``partner_id``, ``points_cost``, ``min_tier`` are used). The affinity adds up: the
    member's taste for the offer's category; favourite city or not (city offers); distance between
    the brand's level and the member's preferred level (hotel offers); affinity with the partner
    (partner offers); price sensitivity times the points cost; a small bonus for tier-exclusive
    offers. Responses in ``offer_events`` are drawn from ``sigmoid(affinity + channel offset)``,
    among offers shown by a legacy planner that ignores tastes. Memory: 4 bytes per member x offer.

    ``favourites`` (members x ``CITIES``) replaces the hidden favourite cities, e.g. with the cities a
    member's history names: an estimate of how well that evidence lets one rank, not a bound on models.
    """
    category_index = {c: i for i, c in enumerate(OFFER_CATEGORIES)}
    categories = offers["category"].map(category_index)
    if categories.isna().any():
        raise DataError("offers hold a category the synthetic tastes do not know")
    logits = tastes[list(CATEGORY_COLUMNS)].to_numpy(dtype=np.float32)
    score = logits[:, categories.to_numpy(dtype=np.int64)]

    city = _text(offers["city"]).map(CITY_INDEX).fillna(-1).to_numpy(dtype=np.int64)
    if (city >= 0).any():
        favourite = favourite_cities(tastes) if favourites is None else np.asarray(favourites, dtype=bool)
        if favourite.shape != (len(tastes), len(CITIES)):
            raise ValueError(f"favourites are {favourite.shape}, expected {(len(tastes), len(CITIES))}")
        cols = np.flatnonzero(city >= 0)
        score[:, cols] += np.where(favourite[:, city[cols]], W_FAVOURITE_CITY, W_OTHER_CITY).astype(np.float32)

    level = offers["brand"].map(BRAND_LEVELS).to_numpy(dtype=np.float64)
    hotel = np.flatnonzero(~np.isnan(level))
    if len(hotel):
        preferred = tastes["level_pref"].to_numpy(dtype=np.float32)
        distance = np.abs(preferred[:, None] - level[None, hotel]) - LEVEL_TOLERANCE
        score[:, hotel] -= (W_LEVEL * distance).astype(np.float32)

    partner = _text(offers["partner_id"]).map({p: i for i, p in enumerate(PARTNER_IDS)})
    partner_idx = partner.fillna(-1).to_numpy(dtype=np.int64)
    cols = np.flatnonzero(partner_idx >= 0)
    if len(cols):
        affinity = tastes[list(PARTNER_COLUMNS)].to_numpy(dtype=np.float32)
        score[:, cols] += W_PARTNER * (affinity[:, partner_idx[cols]] - PARTNER_NEUTRAL)

    cost = np.log1p(offers["points_cost"].to_numpy(dtype=np.float64) / 5000.0).astype(np.float32)
    sensitivity = tastes["price_sensitivity"].to_numpy(dtype=np.float32)
    score -= W_COST * sensitivity[:, None] * cost[None, :]

    min_tier = offers["min_tier"]
    tiers = min_tier.map(TIER_LABELS.index) if min_tier.dtype.kind not in "iuf" else min_tier
    score += (W_EXCLUSIVE * (tiers.to_numpy(dtype=np.int64) >= 2)).astype(np.float32)[None, :]
    return score


def load_tastes(data_dir: Path) -> pd.DataFrame:
    """The hidden tastes the generator wrote to ``<data_dir>/ground_truth/`` (one row per member)."""
    folder = Path(data_dir) / "ground_truth"
    csv_path, parquet_path = folder / f"{TASTES_FILE}.csv", folder / f"{TASTES_FILE}.parquet"
    if csv_path.exists():
        return pd.read_csv(
            csv_path, dtype={"member_id": str, "fav_cities": str, "cuisines": str}, keep_default_na=False
        )
    if parquet_path.exists():
        return pd.read_parquet(parquet_path)
    raise DataError(f"no ground truth in {folder}: the data was not made by `offers generate`")
