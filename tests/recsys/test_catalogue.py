"""Offer records from the offers frame, the array catalogue, and the live overlay."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from recsys.catalogue import (
    ALL_CHANNELS,
    CHANNEL_BITS,
    Catalogue,
    catalogue_from_hash,
    day_number,
    offer_records,
    offers_hash,
)
from recsys.errors import StoreError
from tests.support.serving_bundle import make_bundle


def small_catalogue(overlay: dict[str, dict[str, object] | None] | None = None) -> Catalogue:
    bundle, _ = make_bundle(n_plain_offers=3, on=date(2025, 6, 1))
    records = offer_records(bundle.offers, partners=bundle.partners, redeemed=bundle.redeemed)
    return Catalogue.build(
        records,
        factors=bundle.offer.factors,
        bias=bundle.offer.bias,
        popular=bundle.popular_by_tier,
        overlay=overlay,
    )


def test_records_are_plain_json_values() -> None:
    bundle, _ = make_bundle(n_plain_offers=3, on=date(2025, 6, 1))
    records = offer_records(bundle.offers, partners=bundle.partners, redeemed=bundle.redeemed)
    by_id = {r["offer_id"]: r for r in records}
    assert [r["offer_id"] for r in records] == list(bundle.offer_ids)
    assert by_id["o000"]["city"] is None and by_id["o001"]["city"] == "Shanghai"
    assert by_id["o000"]["budget"] is None and by_id["x_exhausted"]["budget"] == 5
    assert by_id["x_exhausted"]["redeemed"] == 5
    assert by_id["x_up_to_silver"]["max_tier"] == 1 and by_id["o000"]["max_tier"] is None
    assert by_id["x_email_only"]["channels"] == ["email"] and by_id["o000"]["channels"] == []
    assert by_id["x_china_only"]["regions"] == ["CN"]
    assert by_id["x_future"]["valid_from"] == "2025-06-02"
    assert by_id["x_expired"]["valid_to"] == "2025-05-31"


def test_records_accept_pipe_separated_lists_and_missing_optional_columns() -> None:
    frame = pd.DataFrame(
        {
            "offer_id": ["a"],
            "title": ["A"],
            "category": ["stay"],
            "brand": ["B"],
            "city": [np.nan],
            "partner_id": ["air"],
            "min_tier": [1],
            "valid_from": ["2025-01-01"],
            "valid_to": ["2025-12-31"],
            "points_cost": [10],
            "value": [2.5],
            "budget": [np.nan],
            "channels": ["app|web"],
        }
    )
    partners = pd.DataFrame({"partner_id": ["air"], "name": ["Air"], "kind": ["airline"]})
    (record,) = offer_records(frame, partners=partners)
    assert record["channels"] == ["app", "web"]
    assert record["regions"] == [] and record["lever"] == 1.0 and record["per_member_limit"] is None
    assert (record["partner_name"], record["partner_kind"]) == ("Air", "airline")


def test_catalogue_arrays() -> None:
    c = small_catalogue()
    i = c.index
    assert len(c) == len(c.offer_ids) == c.n_published
    assert c.valid_to[i["x_expired"]] == day_number(date(2025, 5, 31))
    assert c.max_tier[i["o000"]] == 4 and c.max_tier[i["x_up_to_silver"]] == 1
    assert c.channels[i["o000"]] == ALL_CHANNELS
    assert c.channels[i["x_app_or_web"]] == CHANNEL_BITS["app"] | CHANNEL_BITS["web"]
    assert not c.limited[i["o000"]] and c.budget_left[i["x_last_one"]] == 1
    assert c.region_restricted[i["x_china_only"]] and c.region_ok("CN")[i["x_china_only"]]
    assert not c.region_ok("IR")[i["x_china_only"]] and c.region_ok("IR")[i["o000"]]
    assert c.display[i["o001"]]["title"] == "Offer o001"


def test_overlay_edits_takes_down_and_adds() -> None:
    new = {"title": "Fresh", "min_tier": 0, "valid_from": "2025-01-01", "valid_to": "2025-12-31", "factors": [1.0] * 8}
    c = small_catalogue({"o000": None, "o001": {"title": "Renamed", "budget": 0}, "n1": new})
    i = c.index
    assert not c.active[i["o000"]] and c.active[i["o001"]]
    assert c.display[i["o001"]]["title"] == "Renamed" and c.limited[i["o001"]]
    assert i["n1"] == c.n_published == len(c) - 1
    assert c.factors[i["n1"]].tolist() == [1.0] * 8
    assert c.popular[:, i["n1"]].tolist() == [0.0] * 5


def test_hash_round_trip_and_damage() -> None:
    bundle, _ = make_bundle(n_plain_offers=3)
    records = offer_records(bundle.offers, redeemed=bundle.redeemed)
    fields = offers_hash(records, bundle.offer.factors, bundle.offer.bias, bundle.popular_by_tier, '{"x": 1}')
    raw = {k.encode(): v for k, v in fields.items()}
    c = catalogue_from_hash(raw, {b"o000": b"null"})
    assert np.array_equal(c.factors, bundle.offer.factors) and not c.active[c.index["o000"]]
    with pytest.raises(StoreError):
        catalogue_from_hash({**raw, b"factors": b"short"})
    with pytest.raises(StoreError):
        catalogue_from_hash({k: v for k, v in raw.items() if k != b"catalogue"})
    with pytest.raises(StoreError):
        catalogue_from_hash(raw, {b"o000": b"{not json"})


@pytest.mark.parametrize(
    ("value", "day"),
    [("1970-01-02", 1), (date(2000, 1, 1), 10957), (pd.Timestamp("2000-01-01 13:00").to_pydatetime(), 10957)],
)
def test_day_number(value: object, day: int) -> None:
    assert day_number(value) == day  # type: ignore[arg-type]
