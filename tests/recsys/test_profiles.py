"""Member profiles (top brands and partners), their trailer in the packed record, and new offers
embedded from their features (LightFM) or from similar trained offers (other families)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.families import create
from recsys.cache import MemberRecord
from recsys.catalogue import Catalogue, feature_embedder
from recsys.interactions import build_training_set
from recsys.profiles import (
    EMPTY_PROFILE,
    SLOTS,
    member_profiles,
    offer_feature_table,
    offer_space,
    read_profile,
)
from tests.recsys.tiny_loyalty import tiny_data


def test_profiles_rank_brands_by_recent_nights_and_partners_by_activity() -> None:
    data = tiny_data()
    profiles = member_profiles(data, np.array(["m1", "m2", "m3"]), as_of=pd.Timestamp("2025-01-10"))
    assert profiles.brand_names == ("Budget", "Palace")
    assert profiles.brands.shape == (3, SLOTS)
    # m1: 5 nights at Palace on 2025-01-10 outweigh 3 older nights at Budget
    assert [profiles.brand_names[b] for b in profiles.brands[0] if b >= 0] == ["Palace", "Budget"]
    assert profiles.brand_shares[0].sum() == pytest.approx(1.0)
    assert profiles.brand_shares[0, 0] > profiles.brand_shares[0, 1] > 0
    assert [profiles.brand_names[b] for b in profiles.brands[1] if b >= 0] == ["Palace"]
    assert (profiles.brands[2] == -1).all()
    assert profiles.partner_ids == ("air", "car")
    assert list(profiles.partners[0]) == [0, -1, -1] and profiles.partner_shares[0, 0] == pytest.approx(1.0)
    assert (profiles.partners[1:] == -1).all()
    assert profiles.partner_popularity.tolist() == pytest.approx([1 / 3, 0.0])


def _record(n_factors: int = 4, n_candidates: int = 5) -> MemberRecord:
    return MemberRecord(
        tier=2,
        country="CN",
        points_balance=100,
        qualifying_nights_ytd=3,
        points_expiring_day=-1,
        consent_personalisation=True,
        consent_email=True,
        informed=True,
        factors=np.ones(n_factors, dtype=np.float16),
        bias=0.0,
        candidates=np.arange(n_candidates, dtype=np.uint16),
    )


@pytest.mark.parametrize("personal", [True, False])
def test_the_trailer_round_trips_after_the_record(personal: bool) -> None:
    profiles = member_profiles(tiny_data(), np.array(["m1", "m2", "m3"]), as_of=pd.Timestamp("2025-01-10"))
    record = _record()
    trailer = profiles.trailer(np.array([0]), np.array([personal]))
    blob = record.pack() + trailer.tobytes()
    unpacked = MemberRecord.unpack(blob)  # the codec reads the record and leaves the trailer alone
    assert list(unpacked.candidates) == list(record.candidates) and unpacked.tier == record.tier
    profile = read_profile(blob, unpacked)
    if personal:
        assert [b for b, _ in profile.brands] == [1, 0]
        assert [p for p, _ in profile.partners] == [0]
        assert profile.partners[0][1] == pytest.approx(1.0, abs=1e-3)
    else:
        assert profile == EMPTY_PROFILE  # no consent to personalisation: nothing of their history


def test_a_record_without_trailer_has_an_empty_profile() -> None:
    record = _record()
    assert read_profile(record.pack(), record) == EMPTY_PROFILE


@pytest.fixture(scope="module")
def trained() -> tuple[object, str, pd.DataFrame]:
    data = tiny_data()
    ts, space = build_training_set(data, until=None)
    model = create("lightfm", no_components=8, epochs=5, num_threads=1).fit(ts)
    return model, space.to_json(member_ids=False), data.offers


def test_feature_table_embeds_an_offer_as_the_model_does(trained: tuple[object, str, pd.DataFrame]) -> None:
    model, space_json, offers = trained
    table = offer_feature_table(model, space_json)  # type: ignore[arg-type]
    assert table is not None and table.learned.any()
    space = offer_space(space_json)
    new = offers.assign(offer_id=[f"new-{i}" for i in range(len(offers))])  # same features, no identity
    features = space.encode_offers(new)
    expected = model.offer_embeddings(features)  # type: ignore[attr-defined]
    got = table.embed(features)
    assert np.allclose(got.factors, expected.factors, atol=1e-5)
    assert np.allclose(got.bias, expected.bias, atol=1e-5)
    assert (got.informed == expected.informed).all()


@pytest.mark.parametrize("family", ["als", "popularity"])
def test_families_without_feature_embeddings_have_no_table(family: str) -> None:
    data = tiny_data()
    ts, space = build_training_set(data, until=None)
    model = create(family).fit(ts)
    assert offer_feature_table(model, space.to_json(member_ids=False)) is None


def _published(n: int = 4) -> tuple[list[dict[str, object]], np.ndarray, np.ndarray]:
    records: list[dict[str, object]] = [
        {
            "offer_id": f"o{i}",
            "title": f"O{i}",
            "category": ("stay", "spa")[i % 2],
            "brand": ("Aster", "Palace")[i // 2],
            "valid_from": "2025-01-01",
            "valid_to": "2025-12-31",
        }
        for i in range(n)
    ]
    factors = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return records, factors, np.arange(n, dtype=np.float32)


@pytest.mark.parametrize(
    ("brand", "category", "rows"),
    [
        ("Palace", "spa", [3]),  # brand and category
        ("Palace", "card", [2, 3]),  # brand only
        ("Nova", "stay", [0, 2]),  # category only
    ],
)
def test_new_offers_borrow_the_mean_of_similar_offers(brand: str, category: str, rows: list[int]) -> None:
    records, factors, bias = _published()
    new = {"title": "N", "brand": brand, "category": category, "valid_from": "2025-01-01", "valid_to": "2025-12-31"}
    c = Catalogue.build(records, factors=factors, bias=bias, popular=np.zeros((5, 4), np.float32), overlay={"n": new})
    i = c.index["n"]
    assert c.embedded[i]
    assert np.allclose(c.factors[i], factors[rows].mean(axis=0)) and c.bias[i] == pytest.approx(bias[rows].mean())


def test_new_offers_are_embedded_from_features_when_the_version_can(
    trained: tuple[object, str, pd.DataFrame],
) -> None:
    model, space_json, offers = trained
    table = offer_feature_table(model, space_json)  # type: ignore[arg-type]
    assert table is not None
    emb = model.offer_embeddings()  # type: ignore[attr-defined]
    records = [
        {"offer_id": str(o), "title": "t", "valid_from": "2024-01-01", "valid_to": "2025-12-31"}
        for o in offers["offer_id"]
    ]
    new = {"title": "N", "brand": "Palace", "category": "spa", "city": "Tehran", "min_tier": 3, "points_cost": 500}
    c = Catalogue.build(
        records,
        factors=emb.factors,
        bias=emb.bias,
        popular=np.zeros((5, len(records)), np.float32),
        overlay={"fresh": new},
        embedder=feature_embedder(space_json, table),
    )
    row = offers[offers["offer_id"] == "o4"].assign(offer_id="fresh")  # o4 has exactly these features
    expected = model.offer_embeddings(offer_space(space_json).encode_offers(row))  # type: ignore[attr-defined]
    i = c.index["fresh"]
    assert c.embedded[i]
    assert np.allclose(c.factors[i], expected.factors[0], atol=1e-5)
