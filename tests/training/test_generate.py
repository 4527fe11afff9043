"""The synthetic programme: deterministic, realistic, valid, and driven by the hidden tastes."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.errors import ConfigurationError
from recsys.schema import CHANNELS, EVENT_KINDS, FILES, OFFER_CATEGORIES
from recsys.validation import LoadResult, load_dataset
from training.generate import generate, load_tastes, true_affinity
from training.synthetic_tastes import TIER_SHARES, W_FAVOURITE_CITY, W_OTHER_CITY, favourite_cities
from training.synthetic_world import BRAND_LEVELS, CITY_INDEX

AS_OF = date(2025, 11, 1)
MEMBERS = 3000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("synthetic")
    return out, generate(out, members=MEMBERS, seed=11, as_of=AS_OF, show_progress=False)


@pytest.fixture(scope="module")
def loaded(sample: tuple[Path, dict[str, int]]) -> LoadResult:
    return load_dataset(sample[0], max_reject_share=0.0)  # a single reject would raise


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_seed_and_day_give_the_same_bytes(tmp_path: Path, fmt: str) -> None:
    generate(tmp_path / "a", members=400, seed=5, as_of=AS_OF, fmt=fmt, show_progress=False)
    generate(tmp_path / "b", members=400, seed=5, as_of=AS_OF, fmt=fmt, show_progress=False)
    generate(tmp_path / "c", members=400, seed=6, as_of=AS_OF, fmt=fmt, show_progress=False)
    first, second, other = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    names = {f"{spec.name}.{fmt}" for spec in FILES} | {f"ground_truth/tastes.{fmt}"}
    assert names <= set(first)
    assert first == second
    assert first[f"offer_events.{fmt}"] != other[f"offer_events.{fmt}"]


def test_counts_match_the_files_and_everything_loads_without_rejects(
    sample: tuple[Path, dict[str, int]], loaded: LoadResult
) -> None:
    _, counts = sample
    assert list(counts) == [spec.name for spec in FILES]
    assert {name: rep.total for name, rep in loaded.report.items()} == counts
    assert all(rep.rejected == 0 for rep in loaded.report.values())
    assert counts["members"] == MEMBERS


def test_tiers_form_a_pyramid_that_follows_stay_volume(loaded: LoadResult) -> None:
    members, stays = loaded.data.members, loaded.data.stays
    shares = members["tier"].value_counts(normalize=True).reindex(range(5), fill_value=0.0)
    assert shares.to_numpy() == pytest.approx(np.array(TIER_SHARES), abs=0.035)
    per_member = stays.groupby("member_id").size().reindex(members["member_id"], fill_value=0)
    by_tier = per_member.groupby(members["tier"].to_numpy()).mean()
    assert by_tier.is_monotonic_increasing and by_tier[4] > 5 * by_tier[0]


def test_world_is_a_hotel_group_with_partners_and_a_rich_catalogue(loaded: LoadResult) -> None:
    data = loaded.data
    assert data.stays["brand"].nunique() >= 8 and set(data.stays["brand"]) <= set(BRAND_LEVELS)
    assert data.stays["city"].nunique() >= 20
    assert data.members["home_country"].nunique() >= 8 and {"CN", "IR"} <= set(data.members["home_country"])
    assert data.dining["cuisine"].nunique() >= 8 and data.dining["outlet_id"].nunique() > 50
    partners = data.partners
    assert len(partners) >= 4 and {"airline", "car_rental", "card", "ride_hailing"} <= set(partners["kind"])
    airlines = partners[partners["kind"] == "airline"]
    assert ((airlines["points_to_partner"] > 0) & (airlines["partner_to_points"] > 0)).any()

    offers = data.offers
    as_of = pd.Timestamp(AS_OF)
    assert len(offers) >= 200 and set(offers["category"]) == set(OFFER_CATEGORIES)
    live = (offers["valid_from"] <= as_of) & (offers["valid_to"] >= as_of)
    assert live.mean() > 0.5
    assert (offers["valid_to"] < as_of).sum() >= 20  # expired
    assert (offers["valid_from"] > as_of - pd.Timedelta(days=28)).sum() >= 10  # new this month: cold
    assert (offers["valid_to"] > as_of + pd.Timedelta(days=14)).sum() >= 100
    assert (offers["min_tier"] > 0).sum() >= 30 and (offers["max_tier"] < 4).sum() >= 5
    assert offers["budget"].isna().sum() >= 30 and offers["budget"].notna().sum() >= 30
    assert offers["per_member_limit"].notna().sum() >= 30
    assert (offers["regions"].map(len) > 0).sum() >= 5 and (offers["channels"].map(len) > 0).sum() >= 20
    assert offers["earns_qualifying_nights"].any() and (offers["lever"] != 1).any()
    assert offers["partner_id"].notna().sum() >= 50 and offers["city"].isna().sum() >= 30

    members = data.members
    assert members["points_expiring_on"].notna().mean() > 0.3 and (members["qualifying_nights_ytd"] > 0).any()
    assert members["consent_email"].mean() == pytest.approx(0.7, abs=0.05)


def test_history_is_sparse_with_heavy_members_and_about_thirty_events_each(loaded: LoadResult) -> None:
    data = loaded.data
    events = data.offer_events
    assert 20 <= len(events) / MEMBERS <= 45
    assert set(events["event"]) == set(EVENT_KINDS) and set(events["channel"]) == set(CHANNELS)
    start = pd.Timestamp(AS_OF - timedelta(days=730), tz="UTC")
    assert events["timestamp"].min() >= start and events["timestamp"].max() < pd.Timestamp(AS_OF, tz="UTC")
    assert data.stays["check_in"].max() < pd.Timestamp(AS_OF)
    stays = data.stays.groupby("member_id").size().reindex(data.members["member_id"], fill_value=0)
    assert (stays == 0).mean() > 0.2 and stays.quantile(0.99) >= 8 * max(stays.median(), 1)
    clicks = events["event"].eq("click").sum() / events["event"].eq("impression").sum()
    assert 0.03 < clicks < 0.25


def test_only_eligible_offers_are_shown(loaded: LoadResult) -> None:
    data = loaded.data
    shown = data.offer_events.merge(data.offers, on="offer_id").merge(data.members, on="member_id")
    day = shown["timestamp"].dt.tz_localize(None).dt.normalize()
    assert ((shown["valid_from"] <= day) & (day <= shown["valid_to"])).all()
    assert ((shown["min_tier"] <= shown["tier"]) & (shown["tier"] <= shown["max_tier"])).all()
    region_ok = [not r or c in r for r, c in zip(shown["regions"], shown["home_country"], strict=True)]
    channel_ok = [not a or c in a for a, c in zip(shown["channels"], shown["channel"], strict=True)]
    assert all(region_ok) and all(channel_ok)
    assert not shown.loc[~shown["consent_email"], "channel"].eq("email").any()


def test_behaviour_reveals_the_hidden_tastes(sample: tuple[Path, dict[str, int]], loaded: LoadResult) -> None:
    data = loaded.data
    tastes = load_tastes(sample[0])
    assert tastes["member_id"].tolist() == data.members["member_id"].tolist()
    by_member = tastes.set_index("member_id")
    stays = data.stays.join(by_member[["fav_cities", "level_pref"]], on="member_id")
    in_favourite = [c in f.split("|") for c, f in zip(stays["city"], stays["fav_cities"], strict=True)]
    assert np.mean(in_favourite) > 0.75
    level = stays.assign(level=stays["brand"].map(BRAND_LEVELS)).groupby("member_id")[["level", "level_pref"]].mean()
    assert level["level"].corr(level["level_pref"]) > 0.5
    users = data.partner_activity.join(by_member, on="member_id")
    assert all(users.apply(lambda row: row[f"aff_{row['partner_id']}"] > 0, axis=1))

    affinity = true_affinity(tastes, data.offers)
    assert affinity.shape == (len(tastes), len(data.offers)) and affinity.dtype == np.float32
    events = data.offer_events
    rows = pd.Index(tastes["member_id"]).get_indexer(events["member_id"])
    cols = pd.Index(data.offers["offer_id"]).get_indexer(events["offer_id"])
    score = pd.Series(affinity[rows, cols], index=events.index)
    clicked = events.assign(score=score).groupby("event")["score"].mean()
    assert clicked["click"] > clicked["impression"] + 1.0 and clicked["dismiss"] < clicked["impression"]


def test_true_affinity_reads_raw_and_loaded_offers_alike(
    sample: tuple[Path, dict[str, int]], loaded: LoadResult
) -> None:
    folder = sample[0]
    tastes = load_tastes(folder).iloc[:50]
    raw = pd.read_csv(folder / "offers.csv", dtype={"partner_id": str, "city": str}, keep_default_na=False)
    np.testing.assert_array_equal(true_affinity(tastes, raw), true_affinity(tastes, loaded.data.offers))


def test_told_favourites_move_only_the_city_offers(sample: tuple[Path, dict[str, int]], loaded: LoadResult) -> None:
    tastes = load_tastes(sample[0]).iloc[:50]
    offers = loaded.data.offers
    hidden = favourite_cities(tastes)
    assert hidden.any()
    np.testing.assert_array_equal(true_affinity(tastes, offers, favourites=hidden), true_affinity(tastes, offers))

    none = true_affinity(tastes, offers, favourites=np.zeros_like(hidden))
    delta = true_affinity(tastes, offers) - none
    tied = offers["city"].notna().to_numpy() & (offers["city"].astype(str) != "").to_numpy()
    assert np.all(delta[:, ~tied] == 0)  # offers tied to no city do not care
    expected = (W_FAVOURITE_CITY - W_OTHER_CITY) * hidden[:, offers.loc[tied, "city"].map(CITY_INDEX).to_numpy()]
    np.testing.assert_allclose(delta[:, tied], expected, atol=1e-5)
    with pytest.raises(ValueError, match="favourites"):
        true_affinity(tastes, offers, favourites=hidden[:, :3])


def test_parquet_holds_the_same_data_as_csv(tmp_path: Path) -> None:
    generate(tmp_path / "csv", members=300, seed=2, as_of=AS_OF, show_progress=False)
    generate(tmp_path / "parquet", members=300, seed=2, as_of=AS_OF, fmt="parquet", show_progress=False)
    from_csv = load_dataset(tmp_path / "csv", max_reject_share=0.0).data.frames()
    from_parquet = load_dataset(tmp_path / "parquet", max_reject_share=0.0).data.frames()
    for name, frame in from_csv.items():
        pd.testing.assert_frame_equal(from_parquet[name], frame)
    pd.testing.assert_frame_equal(load_tastes(tmp_path / "parquet"), load_tastes(tmp_path / "csv"), check_dtype=False)


def test_switching_format_removes_the_other_formats_files(tmp_path: Path) -> None:
    generate(tmp_path, members=50, seed=1, as_of=AS_OF, show_progress=False)
    generate(tmp_path, members=50, seed=1, as_of=AS_OF, fmt="parquet", show_progress=False)
    assert not any((tmp_path / f"{spec.name}.csv").exists() for spec in FILES)
    assert not (tmp_path / "ground_truth" / "tastes.csv").exists()
    assert load_dataset(tmp_path).report["members"].total == 50


@pytest.mark.parametrize(("kwargs", "message"), [({"fmt": "xlsx"}, "unknown format"), ({"members": 0}, "at least 1")])
def test_impossible_requests_are_refused(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        generate(tmp_path, show_progress=False, **kwargs)  # type: ignore[arg-type]
