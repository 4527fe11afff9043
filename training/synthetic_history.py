"""Two years of behaviour for a batch of members, drawn from their hidden tastes: stays, dining,
partner activity and responses to the offers a taste-blind legacy planner showed them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from recsys.schema import CHANNELS, EVENT_KINDS, PARTNER_ACTIVITIES
from recsys.tiers import TIER_LABELS
from training.synthetic_tastes import PARTNER_COLUMNS, true_affinity
from training.synthetic_world import CITIES, COUNTRIES, CUISINES, MEAL_SPEND, PARTNER_IDS, PARTNERS, World

DAY = 86_400
EPOCH = date(1970, 1, 1)
HISTORY_DAYS = 730

# Response model: P(click | shown) = sigmoid(affinity + CLICK_OFFSET + channel offset), and so on.
CLICK_OFFSET = -1.4
REDEEM_OFFSET = -2.0
DISMISS_OFFSET = -4.0
CHANNEL_SHARE = {"app": 0.5, "email": 0.25, "web": 0.17, "sms": 0.08}
CHANNEL_OFFSET = {"app": 0.0, "email": -0.4, "web": -0.2, "sms": -0.7}
GROWTH = 0.8  # visits per day rise linearly from 1 - GROWTH to 1 + GROWTH times the average (app adoption)
DRAWS_PER_VISIT = 24  # planner draws per visit, of which the first eligible distinct ones are shown
SHOWN_PER_VISIT = {"app": (1, 3), "email": (3, 3), "web": (2, 2), "sms": (1, 1)}
# Activity mix per partner kind: earn, transfer_in (partner units to points), transfer_out.
ACTIVITY_MIX = {
    "airline": (0.6, 0.15, 0.25),
    "card": (0.7, 0.3, 0.0),
    "car_rental": (1.0, 0.0, 0.0),
    "ride_hailing": (0.9, 0.0, 0.1),
    "retail": (0.8, 0.2, 0.0),
}
EARN_MEDIAN = {"airline": 800.0, "card": 1500.0, "car_rental": 400.0, "ride_hailing": 60.0, "retail": 300.0}

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Catalogue:
    """The world as arrays, ready for vectorised sampling."""

    start_day: int  # first day of history, days since 1970-01-01
    end_day: int  # as_of: history ends at its midnight (exclusive)
    city_props: IntArray  # (cities, P) property indices, -1 padded
    prop_level: FloatArray
    prop_rate: FloatArray
    prop_cost: FloatArray
    prop_resort: npt.NDArray[np.bool_]
    prop_outlets: IntArray  # (properties, Q) outlet indices, -1 padded
    outlet_cuisine: IntArray
    valid: npt.NDArray[np.bool_]  # (history days, offers)
    tier_ok: npt.NDArray[np.bool_]  # (5, offers)
    region_ok: npt.NDArray[np.bool_]  # (countries, offers)
    channel_ok: npt.NDArray[np.bool_]  # (channels, offers)
    log_push: FloatArray
    points_cost: FloatArray
    per_member_limit: FloatArray  # NaN = no limit

    @property
    def days(self) -> int:
        return self.end_day - self.start_day


def _padded(groups: pd.Series, size: int) -> IntArray:
    """Row i lists the positions whose group is i, padded with -1."""
    out = np.full((size, int(groups.value_counts().max())), -1, dtype=np.int64)
    rank = groups.groupby(groups).cumcount().to_numpy()
    out[groups.to_numpy(dtype=np.int64), rank] = np.arange(len(groups))
    return out


def _allowed(lists: pd.Series, names: tuple[str, ...]) -> npt.NDArray[np.bool_]:
    """(names, offers): an empty list allows everyone."""
    out = np.ones((len(names), len(lists)), dtype=bool)
    for j, text in enumerate(lists):
        if text:
            out[:, j] = [name in str(text).split("|") for name in names]
    return out


def prepare(world: World, as_of: date) -> Catalogue:
    end_day = (as_of - EPOCH).days
    start_day = end_day - HISTORY_DAYS
    props, offers = world.properties, world.offers
    days = np.arange(start_day, end_day)
    valid_from = offers["valid_from"].to_numpy().astype("datetime64[D]").astype(np.int64)
    valid_to = offers["valid_to"].to_numpy().astype("datetime64[D]").astype(np.int64)
    min_tier = offers["min_tier"].map(TIER_LABELS.index).to_numpy()
    max_tier = offers["max_tier"].map(lambda t: TIER_LABELS.index(t) if t else 4).to_numpy()
    tiers = np.arange(5)[:, None]
    return Catalogue(
        start_day=start_day,
        end_day=end_day,
        city_props=_padded(props["city_idx"], len(CITIES)),
        prop_level=props["level"].to_numpy(dtype=np.float64),
        prop_rate=props["rate"].to_numpy(dtype=np.float64),
        prop_cost=np.array([CITIES[i].cost for i in props["city_idx"]]),
        prop_resort=np.array([CITIES[i].resort for i in props["city_idx"]]),
        prop_outlets=_padded(world.outlets["prop_idx"], len(props)),
        outlet_cuisine=world.outlets["cuisine"].map(CUISINES.index).to_numpy(dtype=np.int64),
        valid=(valid_from[None, :] <= days[:, None]) & (valid_to[None, :] >= days[:, None]),
        tier_ok=(min_tier[None, :] <= tiers) & (max_tier[None, :] >= tiers),
        region_ok=_allowed(offers["regions"], tuple(COUNTRIES)),
        channel_ok=_allowed(offers["channels"], CHANNELS),
        log_push=np.log(world.push),
        points_cost=offers["points_cost"].to_numpy(dtype=np.float64),
        per_member_limit=offers["per_member_limit"].astype("float64").to_numpy(na_value=np.nan),
    )


def _ids(prefix: str, first: int, n: int, width: int) -> npt.NDArray[np.str_]:
    return np.char.add(prefix, np.char.zfill(np.arange(first, first + n).astype(str), width))


def _pick(rng: np.random.Generator, candidates: IntArray, weights: FloatArray) -> IntArray:
    """One candidate per row with probability proportional to its weight (Gumbel-max); -1 = none."""
    keys = np.where(candidates >= 0, np.log(np.maximum(weights, 1e-12)) + rng.gumbel(size=weights.shape), -np.inf)
    return candidates[np.arange(len(candidates)), np.argmax(keys, axis=1)]


def _favourites(tastes: pd.DataFrame) -> tuple[IntArray, IntArray]:
    index = {c.name: i for i, c in enumerate(CITIES)}
    lists = tastes["fav_cities"].str.split("|")
    fav = np.full((len(tastes), 4), -1, dtype=np.int64)
    for j in range(4):
        fav[:, j] = lists.str.get(j).map(index).fillna(-1).to_numpy(dtype=np.int64)
    return fav, (fav >= 0).sum(axis=1)


def _choose_property(
    rng: np.random.Generator, cat: Catalogue, city: IntArray, level_pref: FloatArray, leisure: FloatArray
) -> IntArray:
    candidates = cat.city_props[city]
    safe = np.maximum(candidates, 0)
    weights = np.exp(-1.1 * np.abs(cat.prop_level[safe] - level_pref[:, None]))
    weights *= 1.0 + 1.5 * leisure[:, None] * cat.prop_resort[safe]
    return _pick(rng, candidates, weights)


def _uniform_days(rng: np.random.Generator, first: IntArray, last: IntArray) -> IntArray:
    """A day in [first, last] for each row."""
    return first + np.floor(rng.random(len(first)) * (last - first + 1)).astype(np.int64)


@dataclass(frozen=True)
class Batch:
    """Contract files for one batch of members (ids already assigned)."""

    members: pd.DataFrame
    stays: pd.DataFrame
    dining: pd.DataFrame
    partner_activity: pd.DataFrame
    offer_events: pd.DataFrame


@dataclass(frozen=True)
class _People:
    """Per-member arrays the behaviour draws share."""

    tier: IntArray
    enrolled: IntArray  # day of enrolment
    active_from: IntArray  # first day of history that counts for them
    years: FloatArray  # years of history they have
    level_pref: FloatArray
    leisure: FloatArray
    fav: IntArray  # (members, 4) favourite city indices, -1 padded
    fav_count: IntArray


@dataclass(frozen=True)
class _Stays:
    who: IntArray
    prop: IntArray
    check_in: IntArray
    nights: IntArray
    revenue: FloatArray


@dataclass(frozen=True)
class _Dining:
    who: IntArray
    prop: IntArray
    outlet: IntArray
    day: IntArray
    spend: FloatArray


@dataclass(frozen=True)
class _Activity:
    who: IntArray
    partner: IntArray
    kind: IntArray  # 0 earn, 1 transfer_in, 2 transfer_out
    amount: FloatArray
    day: IntArray


def simulate(
    rng: np.random.Generator, tastes: pd.DataFrame, world: World, cat: Catalogue, first_ids: dict[str, int]
) -> Batch:
    """History of the members in ``tastes``; ``first_ids`` numbers the first row of each file."""
    people = _people(rng, tastes, cat)
    stays = _stays(rng, tastes, people, cat)
    dining = _dining(rng, tastes, people, cat, stays)
    activity = _partner_activity(rng, tastes, people, cat)
    consent_email = rng.random(len(tastes)) < 0.7
    events, redeemed_points = _offer_events(rng, tastes, world, cat, people.active_from, consent_email)
    member_ids = tastes["member_id"].to_numpy()
    events.insert(0, "event_id", _ids("E", first_ids["offer_events"], len(events), 10))
    events["member_id"] = member_ids[events["member_id"].to_numpy()]
    return Batch(
        members=_members_file(rng, tastes, people, cat, stays, dining, activity, redeemed_points, consent_email),
        stays=_stays_file(stays, member_ids, world, first_ids["stays"]),
        dining=_dining_file(dining, member_ids, world, cat, first_ids["dining"]),
        partner_activity=_activity_file(activity, member_ids, first_ids["partner_activity"]),
        offer_events=events,
    )


def _people(rng: np.random.Generator, tastes: pd.DataFrame, cat: Catalogue) -> _People:
    """Enrolment (higher tiers joined longer ago; a few joined in the last four weeks) and shared arrays."""
    n = len(tastes)
    tier = tastes["tier"].to_numpy(dtype=np.int64)
    old = rng.random(n) < 0.5 + 0.1 * tier
    recent = rng.random(n) < 0.08
    enrolled = np.where(
        old,
        cat.start_day - rng.integers(0, 3650, n),
        np.where(recent, cat.end_day - rng.integers(1, 28, n), cat.end_day - rng.integers(28, HISTORY_DAYS, n)),
    )
    active_from = np.maximum(enrolled, cat.start_day)
    fav, fav_count = _favourites(tastes)
    return _People(
        tier=tier,
        enrolled=enrolled,
        active_from=active_from,
        years=(cat.end_day - active_from) / 365.0,
        level_pref=tastes["level_pref"].to_numpy(dtype=np.float64),
        leisure=tastes["leisure"].to_numpy(dtype=np.float64),
        fav=fav,
        fav_count=fav_count,
    )


def _stays(rng: np.random.Generator, tastes: pd.DataFrame, people: _People, cat: Catalogue) -> _Stays:
    """Mostly in favourite cities, at brands near the preferred level, often in the member's season."""
    n_stays = rng.poisson(tastes["travel_rate"].to_numpy() * people.years)
    who = np.repeat(np.arange(len(tastes)), n_stays)
    slot = np.minimum(np.floor(rng.random(len(who)) ** 1.6 * people.fav_count[who]).astype(np.int64), 3)
    popularity = np.array([c.popularity for c in CITIES])
    elsewhere = rng.choice(len(CITIES), len(who), p=popularity / popularity.sum())
    city = np.where(rng.random(len(who)) < 0.85, people.fav[who, slot], elsewhere)
    prop = _choose_property(rng, cat, city, people.level_pref[who], people.leisure[who])
    nights = np.minimum(rng.geometric(0.6 - 0.35 * people.leisure[who]), 14).astype(np.int64)
    last = cat.end_day - nights  # the stay is over by as_of
    first = people.active_from[who]
    check_in = _uniform_days(rng, first, np.maximum(last, first))
    peak = _season_days(rng, tastes["season_peak"].to_numpy()[who], cat.end_day)
    in_season = rng.random(len(who)) < tastes["season_strength"].to_numpy()[who]
    check_in = np.where(in_season & (peak >= first) & (peak <= last), peak, check_in)
    keep = check_in <= last
    who, prop, nights, check_in = who[keep], prop[keep], nights[keep], check_in[keep]
    revenue = np.round(nights * cat.prop_rate[prop] * rng.lognormal(0.0, 0.15, len(who)), 2)
    return _Stays(who, prop, check_in, nights, revenue)


def _dining(rng: np.random.Generator, tastes: pd.DataFrame, people: _People, cat: Catalogue, stays: _Stays) -> _Dining:
    """During stays and near home, at the outlets that serve the member's cuisines."""
    bills = rng.binomial(np.minimum(stays.nights, 3), tastes["dining_rate"].to_numpy()[stays.who])
    offset = np.floor(rng.random(int(bills.sum())) * np.repeat(stays.nights, bills)).astype(np.int64)
    local = rng.poisson(tastes["local_dining"].to_numpy() * people.years)
    l_who = np.repeat(np.arange(len(tastes)), local)
    l_prop = _choose_property(rng, cat, people.fav[l_who, 0], people.level_pref[l_who], people.leisure[l_who])
    l_day = _uniform_days(rng, people.active_from[l_who], np.full(len(l_who), cat.end_day - 1))
    who = np.concatenate([np.repeat(stays.who, bills), l_who])
    prop = np.concatenate([np.repeat(stays.prop, bills), l_prop])
    day = np.concatenate([np.repeat(stays.check_in, bills) + offset, l_day])
    outlets = cat.prop_outlets[prop]
    liked = _likes(tastes)[who[:, None], cat.outlet_cuisine[np.maximum(outlets, 0)]]
    outlet = _pick(rng, outlets, 1.0 + 3.0 * liked)
    party = 1 + rng.poisson(0.8, len(who))
    meal = np.array([MEAL_SPEND[int(level)] for level in cat.prop_level])
    spend = np.round(meal[prop] * cat.prop_cost[prop] * party * rng.lognormal(0.0, 0.25, len(who)), 2)
    return _Dining(who, prop, outlet, day, spend)


def _partner_activity(rng: np.random.Generator, tastes: pd.DataFrame, people: _People, cat: Catalogue) -> _Activity:
    """How often a member deals with a partner follows their affinity with it."""
    n, k = len(tastes), len(PARTNERS)
    yearly = np.array([p.yearly for p in PARTNERS])
    affinity = tastes[list(PARTNER_COLUMNS)].to_numpy(dtype=np.float64)
    counts = rng.poisson(affinity * yearly[None, :] * people.years[:, None]).ravel()
    who = np.repeat(np.repeat(np.arange(n), k), counts)
    partner = np.repeat(np.tile(np.arange(k), n), counts)
    kinds = [p.kind for p in PARTNERS]
    mix = np.array([ACTIVITY_MIX[kind] for kind in kinds])[partner]
    roll = rng.random(len(who))
    kind = np.where(roll < mix[:, 0], 0, np.where(roll < mix[:, 0] + mix[:, 1], 1, 2))
    earn = np.array([EARN_MEDIAN[kind] for kind in kinds])[partner] * rng.lognormal(0.0, 0.5, len(who))
    transfer_in = rng.lognormal(np.log(3000.0), 0.5, len(who))  # partner units
    transfer_out = np.array([max(p.min_transfer, 500) for p in PARTNERS])[partner] * rng.integers(1, 6, len(who))
    amount = np.round(np.select([kind == 0, kind == 1], [earn, transfer_in], transfer_out), 0)
    day = _uniform_days(rng, people.active_from[who], np.full(len(who), cat.end_day - 1))
    return _Activity(who, partner, kind, amount, day)


def _members_file(
    rng: np.random.Generator,
    tastes: pd.DataFrame,
    people: _People,
    cat: Catalogue,
    stays: _Stays,
    dining: _Dining,
    activity: _Activity,
    redeemed_points: FloatArray,
    consent_email: npt.NDArray[np.bool_],
) -> pd.DataFrame:
    """Balances and tier progress follow from what the members did."""
    n = len(tastes)
    to_points = np.array([p.partner_to_points for p in PARTNERS])[activity.partner]
    amount = activity.amount
    earned = (
        1000.0
        + 10.0 * np.bincount(stays.who, stays.revenue, n)
        + 5.0 * np.bincount(dining.who, dining.spend, n)
        + np.bincount(activity.who, np.where(activity.kind == 0, amount, 0.0), n)
        + np.bincount(activity.who, np.where(activity.kind == 1, amount * to_points, 0.0), n)
        - np.bincount(activity.who, np.where(activity.kind == 2, amount, 0.0), n)
        - redeemed_points
    )
    balance = np.round(np.maximum(earned, 0.0) * rng.uniform(0.3, 1.0, n)).astype(np.int64)
    expires = (balance > 0) & (rng.random(n) < 0.7)
    expiring = np.where(expires, cat.end_day + rng.integers(14, 400, n), 0).astype("datetime64[D]")
    last_day = EPOCH + timedelta(days=cat.end_day - 1)
    year_start = (date(last_day.year, 1, 1) - EPOCH).days
    this_year = np.where(stays.check_in >= year_start, stays.nights, 0)
    return pd.DataFrame(
        {
            "member_id": tastes["member_id"].to_numpy(),
            "tier": np.array(TIER_LABELS)[people.tier],
            "home_country": tastes["home_country"].to_numpy(),
            "enrolled_on": people.enrolled.astype("datetime64[D]"),
            "points_balance": balance,
            "consent_personalisation": rng.random(n) < 0.92,
            "consent_email": consent_email,
            "points_expiring_on": np.where(expires, expiring, np.datetime64("NaT")),
            "qualifying_nights_ytd": np.bincount(stays.who, this_year, n).astype(np.int64),
        }
    )


def _stays_file(stays: _Stays, member_ids: npt.NDArray[np.str_], world: World, first: int) -> pd.DataFrame:
    order = np.lexsort((stays.check_in, stays.who))
    prop = stays.prop[order]
    return pd.DataFrame(
        {
            "stay_id": _ids("S", first, len(order), 9),
            "member_id": member_ids[stays.who[order]],
            "property_id": world.properties["property_id"].to_numpy()[prop],
            "brand": world.properties["brand"].to_numpy()[prop],
            "city": world.properties["city"].to_numpy()[prop],
            "check_in": stays.check_in[order].astype("datetime64[D]"),
            "nights": stays.nights[order],
            "revenue": stays.revenue[order],
        }
    )


def _dining_file(
    dining: _Dining, member_ids: npt.NDArray[np.str_], world: World, cat: Catalogue, first: int
) -> pd.DataFrame:
    order = np.lexsort((dining.day, dining.who))
    outlet = dining.outlet[order]
    return pd.DataFrame(
        {
            "dining_id": _ids("D", first, len(order), 9),
            "member_id": member_ids[dining.who[order]],
            "outlet_id": world.outlets["outlet_id"].to_numpy()[outlet],
            "property_id": world.properties["property_id"].to_numpy()[dining.prop[order]],
            "cuisine": np.array(CUISINES)[cat.outlet_cuisine[outlet]],
            "date": dining.day[order].astype("datetime64[D]"),
            "spend": dining.spend[order],
        }
    )


def _activity_file(activity: _Activity, member_ids: npt.NDArray[np.str_], first: int) -> pd.DataFrame:
    order = np.lexsort((activity.day, activity.who))
    return pd.DataFrame(
        {
            "activity_id": _ids("A", first, len(order), 9),
            "member_id": member_ids[activity.who[order]],
            "partner_id": np.array(PARTNER_IDS)[activity.partner[order]],
            "activity": np.array(PARTNER_ACTIVITIES)[activity.kind[order]],
            "amount": activity.amount[order],
            "date": activity.day[order].astype("datetime64[D]"),
        }
    )


def _season_days(rng: np.random.Generator, month: IntArray, end_day: int) -> IntArray:
    """A day around the middle of ``month`` in one of the last three years."""
    end_year = int(np.datetime64(end_day, "D").astype("datetime64[Y]").astype(np.int64)) + 1970
    year = end_year - rng.integers(0, 3, len(month))
    first = ((year - 1970) * 12 + (month - 1)).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return first + 14 + np.round(rng.normal(0.0, 18.0, len(month))).astype(np.int64)


def _likes(tastes: pd.DataFrame) -> npt.NDArray[np.bool_]:
    padded = "|" + tastes["cuisines"].astype(str) + "|"
    return np.column_stack([padded.str.contains(f"|{c}|", regex=False).to_numpy(dtype=bool) for c in CUISINES])


def _offer_events(
    rng: np.random.Generator,
    tastes: pd.DataFrame,
    world: World,
    cat: Catalogue,
    active_from: IntArray,
    consent_email: npt.NDArray[np.bool_],
) -> tuple[pd.DataFrame, FloatArray]:
    """Visits grow over time (digital adoption); each shows a few eligible offers picked by a
    taste-blind planner (by a hidden campaign push); responses follow the true affinity."""
    n = len(tastes)
    span = cat.days * DAY
    start_s, end_s = cat.start_day * DAY, cat.end_day * DAY

    def cumulative(u: FloatArray) -> FloatArray:  # intensity grows linearly, averaging 1
        return (1.0 - GROWTH) * u + GROWTH * u * u

    a = np.clip((active_from - cat.start_day) / cat.days, 0.0, 1.0)
    expected = tastes["engagement"].to_numpy() * cat.days / 365.0 * (cumulative(np.ones(n)) - cumulative(a))
    visits = rng.poisson(expected)
    who = np.repeat(np.arange(n), visits)
    y = rng.uniform(cumulative(a[who]), 1.0)
    u = (np.sqrt((1.0 - GROWTH) ** 2 + 4.0 * GROWTH * y) - (1.0 - GROWTH)) / (2.0 * GROWTH)
    when = np.minimum(start_s + (u * span).astype(np.int64), end_s - 3 * 3600)
    channel = rng.choice(len(CHANNELS), len(who), p=[CHANNEL_SHARE[c] for c in CHANNELS])
    email, app = CHANNELS.index("email"), CHANNELS.index("app")
    channel = np.where((channel == email) & ~consent_email[who], app, channel)
    low = np.array([SHOWN_PER_VISIT[c][0] for c in CHANNELS])[channel]
    high = np.array([SHOWN_PER_VISIT[c][1] for c in CHANNELS])[channel]
    shown = rng.integers(low, high + 1)

    tier = tastes["tier"].to_numpy(dtype=np.int64)
    country = pd.Index(list(COUNTRIES)).get_indexer(tastes["home_country"])
    day = (when - start_s) // DAY
    visit, offer = _planner_picks(rng, cat, day, tier[who], country[who], channel, shown)

    affinity = true_affinity(tastes, world.offers)
    member = who[visit]
    score = affinity[member, offer].astype(np.float64)
    offset = np.array([CHANNEL_OFFSET[c] for c in CHANNELS])[channel[visit]]
    clicked = rng.random(len(visit)) < _sigmoid(score + CLICK_OFFSET + offset)
    redeemed = clicked & (rng.random(len(visit)) < _sigmoid(0.5 * score + REDEEM_OFFSET))
    dismissed = ~clicked & (rng.random(len(visit)) < _sigmoid(-0.3 * score + DISMISS_OFFSET))
    shown_at = when[visit]
    clicked_at = shown_at + rng.integers(5, 900, len(visit))
    redeemed_at = clicked_at + rng.integers(60, 7200, len(visit))
    redeemed &= _within_limit(member, offer, redeemed_at, redeemed, cat.per_member_limit)

    kinds, parts = [], []
    for code, mask, at in (
        (0, np.ones(len(visit), dtype=bool), shown_at),
        (1, clicked, clicked_at),
        (2, redeemed, redeemed_at),
        (3, dismissed, shown_at + rng.integers(2, 120, len(visit))),
    ):
        parts.append((member[mask], offer[mask], channel[visit][mask], at[mask]))
        kinds.append(np.full(int(mask.sum()), code, dtype=np.int64))
    ev_member = np.concatenate([p[0] for p in parts])
    ev_offer = np.concatenate([p[1] for p in parts])
    ev_channel = np.concatenate([p[2] for p in parts])
    ev_at = np.concatenate([p[3] for p in parts])
    ev_kind = np.concatenate(kinds)
    order = np.lexsort((ev_kind, ev_at, ev_member))
    events = pd.DataFrame(
        {
            "member_id": ev_member[order],
            "offer_id": world.offers["offer_id"].to_numpy()[ev_offer[order]],
            "event": np.array(EVENT_KINDS)[ev_kind[order]],
            "channel": np.array(CHANNELS)[ev_channel[order]],
            "timestamp": ev_at[order].astype("datetime64[s]"),
        }
    )
    redeemed_points = np.bincount(member[redeemed], cat.points_cost[offer[redeemed]], n).astype(np.float64)
    return events, redeemed_points


def _planner_picks(
    rng: np.random.Generator,
    cat: Catalogue,
    day: IntArray,
    tier: IntArray,
    country: IntArray,
    channel: IntArray,
    shown: IntArray,
) -> tuple[IntArray, IntArray]:
    """(visit, offer) pairs: per visit, draws weighted by the planner's push, keeping the first
    ``shown`` distinct offers the member may see then (no visits x offers matrix is built)."""
    cdf = np.cumsum(np.exp(cat.log_push))
    draws = np.searchsorted(cdf / cdf[-1], rng.random((len(day), DRAWS_PER_VISIT)), side="right")
    draws = np.minimum(draws, len(cdf) - 1)
    eligible = (
        cat.valid[day[:, None], draws]
        & cat.tier_ok[tier[:, None], draws]
        & cat.region_ok[country[:, None], draws]
        & cat.channel_ok[channel[:, None], draws]
    )
    order = np.argsort(draws, axis=1, kind="stable")
    ordered = np.take_along_axis(draws, order, axis=1)
    first_sorted = np.ones(ordered.shape, dtype=bool)
    first_sorted[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    first = np.empty_like(first_sorted)
    np.put_along_axis(first, order, first_sorted, axis=1)
    keep = eligible & first
    keep &= np.cumsum(keep, axis=1) <= shown[:, None]
    rows, cols = np.nonzero(keep)
    return rows.astype(np.int64), draws[rows, cols].astype(np.int64)


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _within_limit(
    member: IntArray, offer: IntArray, at: IntArray, redeemed: npt.NDArray[np.bool_], limit: FloatArray
) -> npt.NDArray[np.bool_]:
    """False for redemptions beyond the offer's per-member limit (later ones first to go)."""
    rows = np.flatnonzero(redeemed)
    ok = np.ones(len(member), dtype=bool)
    if not len(rows):
        return ok
    frame = pd.DataFrame({"m": member[rows], "o": offer[rows], "t": at[rows], "row": rows}).sort_values(["m", "o", "t"])
    nth = frame.groupby(["m", "o"]).cumcount().to_numpy()
    cap = limit[frame["o"].to_numpy()]
    over = ~np.isnan(cap) & (nth >= cap)
    ok[frame["row"].to_numpy()[over]] = False
    return ok
