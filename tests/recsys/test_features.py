"""Member and offer features and the feature space that encodes new rows, on a hand-made history."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.errors import DataError
from recsys.features import CITY_HALF_LIFE_DAYS, FeatureSpace, StayWeighting, fit_features, trained_part
from tests.recsys.tiny_loyalty import AS_OF, tiny_data


def _row(matrix: sp.csr_matrix, names: tuple[str, ...], i: int) -> dict[str, float]:
    row = matrix[i]
    return {names[c]: float(v) for c, v in zip(row.indices, row.data, strict=True)}


def _fit(**kwargs: object) -> tuple[FeatureSpace, sp.csr_matrix, sp.csr_matrix]:
    return fit_features(tiny_data(), until=AS_OF, **kwargs)  # type: ignore[arg-type]


def _decay(days: float, half_life: float = 90.0) -> float:
    return float(2.0 ** (-days / half_life))


def _city(days: float) -> float:
    """Decay of city evidence: trips are rare, so where a member goes fades over years."""
    return _decay(days, CITY_HALF_LIFE_DAYS)


def test_member_rows_describe_who_they_are_and_what_they_do() -> None:
    space, members, _ = _fit(min_city_share=0.0)
    m1 = _row(members, space.member_feature_names, 0)
    assert set(m1) == {
        "member:m1",
        "tier:classic",
        "country:CN",
        "brand:Budget",
        "brand_level:economy",
        "city:Shanghai",
        "city:Beijing",
        "partner:air",
        "partner_kind:airline",
        "partner_activity:earn",
        "partner_activity:transfer_out",
        "stay_frequency:low",
        "spend:low",
        "dining_frequency:none",
        "partner_use:air:low",  # how much the member deals with each partner, in bands
    }
    m2 = _row(members, space.member_feature_names, 1)
    assert {"cuisine:persian", "brand_level:upscale", "spend:top", "tier:gold", "country:IR"} <= set(m2)
    assert "dining_frequency:low" in m2
    m3 = _row(members, space.member_feature_names, 2)  # no history: who they are, and "no activity"
    assert set(m3) == {
        "member:m3",
        "tier:diamond",
        "country:CN",
        "stay_frequency:none",
        "spend:none",
        "dining_frequency:none",
    }


def test_each_group_sums_to_one_and_rows_are_l1_normalised() -> None:
    space, members, offers = _fit(min_city_share=0.0)
    for matrix in (members, offers):
        assert matrix.dtype == np.float32 and sp.issparse(matrix)
        np.testing.assert_allclose(np.asarray(matrix.sum(axis=1)).ravel(), 1.0, rtol=1e-6)
    m1 = _row(members, space.member_feature_names, 0)
    groups = 15 - 1 - 1  # 15 features; the two cities and two partner activities are one group each
    assert m1["tier:classic"] == pytest.approx(1 / groups)
    assert m1["city:Shanghai"] + m1["city:Beijing"] == pytest.approx(1 / groups)


@pytest.mark.parametrize(
    ("weighting", "shanghai", "beijing"),
    [
        ("nights", 2 * _city(31), 1 * _city(121)),
        ("count", _city(31), _city(121)),
        ("spend", 100 * _city(31), 50 * _city(121)),
    ],
)
def test_stays_weigh_by_the_chosen_measure_with_recency_decay(
    weighting: StayWeighting, shanghai: float, beijing: float
) -> None:
    space, members, _ = _fit(stay_weighting=weighting, min_city_share=0.0)
    m1 = _row(members, space.member_feature_names, 0)
    redeemed = _city(29.5)  # m1 also redeemed the Shanghai offer o1: one unit of city evidence
    assert m1["city:Shanghai"] / m1["city:Beijing"] == pytest.approx((shanghai + redeemed) / beijing, rel=1e-5)


def test_cities_fade_on_their_own_half_life_and_the_rest_on_the_shorter_one() -> None:
    space, members, _ = _fit(city_half_life_days=30.0, min_city_share=0.0)
    default_space, default_members, _ = _fit(min_city_share=0.0)
    m1 = _row(members, space.member_feature_names, 0)
    shanghai = _decay(31, 30.0) + _decay(29.5, 30.0)  # a stay and a redemption, one visit each by default
    assert m1["city:Shanghai"] / m1["city:Beijing"] == pytest.approx(shanghai / _decay(121, 30.0), rel=1e-5)
    before = _row(default_members, default_space.member_feature_names, 0)
    assert before["city:Shanghai"] / before["city:Beijing"] != pytest.approx(shanghai / _decay(121, 30.0), rel=1e-3)
    assert m1["partner_activity:earn"] == pytest.approx(before["partner_activity:earn"], rel=1e-6)
    assert FeatureSpace.from_json(space.to_json()).city_half_life_days == 30.0


def test_a_space_saved_before_cities_had_their_own_half_life_decays_them_like_the_rest() -> None:
    space, _, _ = _fit(half_life_days=45.0)
    doc = json.loads(space.to_json())
    del doc["city_half_life_days"]
    assert FeatureSpace.from_json(json.dumps(doc)).city_half_life_days == 45.0


def test_cities_come_from_stays_hotel_meals_and_offer_responses() -> None:
    data = tiny_data()
    space, members, _ = _fit(min_city_share=0.0)
    assert space.property_cities["p3"] == "Tehran"
    assert space.offer_cities == {"o1": "Shanghai", "o4": "Tehran"}
    m2 = _row(members, space.member_feature_names, 1)
    assert {n for n in m2 if n.startswith("city:")} == {"city:Tehran"}  # its Shanghai click is after the cut
    # Without stays: a meal in hotel p3 places m2 in Tehran, m1's redemption of o1 in Shanghai.
    alone = space.encode_members(data.members, dining=data.dining, offer_events=data.offer_events, until=AS_OF)
    assert "city:Tehran" in _row(alone, space.member_feature_names, 1)
    assert "city:Shanghai" in _row(alone, space.member_feature_names, 0)
    assert not any(n.startswith("city:") for n in _row(alone, space.member_feature_names, 2))


def test_cities_below_the_minimum_share_are_dropped() -> None:
    # By nights, Beijing (one night) holds under a quarter of m1's city evidence (two nights and a redemption).
    space, members, _ = _fit(stay_weighting="nights")
    m1 = _row(members, space.member_feature_names, 0)
    assert "city:Shanghai" in m1 and "city:Beijing" not in m1
    assert FeatureSpace.from_json(space.to_json()).min_city_share == space.min_city_share


def test_partner_activity_decays_with_age() -> None:
    space, members, _ = _fit()
    m1 = _row(members, space.member_feature_names, 0)
    ratio = m1["partner_activity:earn"] / m1["partner_activity:transfer_out"]
    assert ratio == pytest.approx(_decay(17) / _decay(61), rel=1e-5)


def test_only_the_top_cities_are_kept() -> None:
    space, members, _ = _fit(top_cities=1, min_city_share=0.0)
    m1 = _row(members, space.member_feature_names, 0)
    assert "city:Shanghai" in m1 and "city:Beijing" not in m1
    assert "city:Beijing" not in space.member_side


def test_brand_levels_come_from_revenue_per_night() -> None:
    space, _, _ = _fit()
    assert space.brand_levels == {"Budget": "economy", "Palace": "upscale"}


def test_spend_bands_are_learned_and_kept_for_new_members() -> None:
    space, _, _ = _fit()
    assert len(space.spend_edges) == 3 and list(space.spend_edges) == sorted(space.spend_edges)


def test_price_bands_follow_points_cost_and_are_kept_for_new_offers() -> None:
    space, _, offers = _fit()
    bands = [next(n for n in _row(offers, space.offer_feature_names, i) if n.startswith("price:")) for i in range(4)]
    assert bands == ["price:low", "price:low", "price:none", "price:top"]  # costs 100, 200, 0, 500
    assert FeatureSpace.from_json(space.to_json()).price_edges == space.price_edges


def test_offer_rows_describe_the_offer() -> None:
    space, _, offers = _fit()
    o3 = _row(offers, space.offer_feature_names, 2)
    assert set(o3) == {
        "offer:o3",
        "brand:Air",
        "category:partner_transfer",
        "city:any",
        "partner:air",
        "partner_kind:airline",
        "min_tier:classic",
        "price:none",  # nothing to pay up front
    }
    o4 = _row(offers, space.offer_feature_names, 3)
    assert {"brand_level:upscale", "city:Tehran", "min_tier:platinum"} <= set(o4)


def test_a_new_offer_encodes_from_known_values_only() -> None:
    space, _, offers = _fit()
    new = pd.DataFrame(
        {
            "offer_id": ["o-new"],
            "brand": ["Palace"],
            "category": ["spa"],
            "city": ["Atlantis"],  # unknown: ignored
            "partner_id": [None],
            "min_tier": pd.Series(["gold"]),  # tier names work as well as tier numbers
        }
    )
    row = space.encode_offers(new)
    assert row.shape == (1, offers.shape[1])
    assert set(_row(row, space.offer_feature_names, 0)) == {"brand:Palace", "brand_level:upscale", "category:spa"}


def test_a_known_offer_encodes_as_in_training() -> None:
    data = tiny_data()
    space, _, offers = fit_features(data, until=AS_OF)
    assert (space.encode_offers(data.offers.iloc[::-1]) != offers[::-1]).nnz == 0


def test_a_row_without_an_identity_weighs_its_side_features_as_a_known_row_does() -> None:
    """A new offer or member is normalised as though it carried its identity: the side features weigh what
    they weigh beside one, and the identity's share is left at its prior, zero."""
    data = tiny_data()
    space, members, offers = fit_features(data, until=AS_OF)
    renamed = data.offers.assign(offer_id=[f"new-{i}" for i in range(len(data.offers))])
    new = space.encode_offers(renamed)
    n_side = len(space.offer_side)
    assert new[:, n_side:].nnz == 0
    np.testing.assert_allclose(new[:, :n_side].toarray(), offers[:, :n_side].toarray(), rtol=1e-6)
    identity = offers[:, n_side:].toarray().sum(axis=1)
    np.testing.assert_allclose(np.asarray(new.sum(axis=1)).ravel(), 1.0 - identity, rtol=1e-6)
    slim = FeatureSpace.from_json(space.to_json(member_ids=False))
    kwargs: dict[str, Any] = {"stays": data.stays, "dining": data.dining, "offer_events": data.offer_events}
    as_new = slim.encode_members(data.members, partner_activity=data.partner_activity, until=AS_OF, **kwargs)
    n_member_side = len(space.member_side)
    np.testing.assert_allclose(as_new[:, :n_member_side].toarray(), members[:, :n_member_side].toarray(), rtol=1e-6)


def test_trained_part_zeroes_untrained_columns_and_scales_nothing_up() -> None:
    row = sp.csr_matrix(np.array([[0.25, 0.25, 0.25, 0.25]], dtype=np.float32))
    kept = trained_part(row, np.array([True, False, True, False]))
    np.testing.assert_array_equal(kept.toarray(), [[0.25, 0.0, 0.25, 0.0]])


def test_a_new_member_encodes_from_profile_and_their_own_behaviour() -> None:
    data = tiny_data()
    space, _, _ = fit_features(data, until=AS_OF)
    newcomer = pd.DataFrame({"member_id": ["m9"], "tier": pd.Series([2], dtype="int8"), "home_country": ["ZZ"]})
    stays = pd.DataFrame(
        {
            "member_id": ["m9", "m1"],
            "brand": ["Palace", "Budget"],
            "city": ["Tehran", "Shanghai"],
            "check_in": pd.Series(pd.to_datetime(["2024-12-30", "2024-12-30"])),
            "nights": [2, 9],
            "revenue": [900.0, 90.0],
        }
    )
    row = space.encode_members(newcomer, stays=stays, until=AS_OF)
    names = set(_row(row, space.member_feature_names, 0))
    assert names == {
        "tier:gold",
        "brand:Palace",
        "brand_level:upscale",
        "city:Tehran",
        "stay_frequency:low",
        "spend:low",
        "dining_frequency:none",
    }
    bare = space.encode_members(newcomer)
    assert set(_row(bare, space.member_feature_names, 0)) == {
        "tier:gold",
        "stay_frequency:none",
        "spend:none",
        "dining_frequency:none",
    }


def test_the_space_round_trips_through_json() -> None:
    data = tiny_data()
    space, members, _ = fit_features(data, until=AS_OF)
    again = FeatureSpace.from_json(space.to_json())
    assert again == space
    kwargs: dict[str, Any] = {
        "stays": data.stays,
        "dining": data.dining,
        "partner_activity": data.partner_activity,
        "offer_events": data.offer_events,
        "until": AS_OF,
    }
    assert abs(again.encode_members(data.members, **kwargs) - members).max() == 0
    slim = FeatureSpace.from_json(space.to_json(member_ids=False))
    assert len(space.to_json(member_ids=False)) < len(space.to_json())
    encoded = slim.encode_members(data.members, **kwargs)
    assert encoded.shape == members.shape
    assert encoded[:, len(space.member_side) :].nnz == 0  # known members encode like new ones


@pytest.mark.parametrize("text", ["not json", "{}", '{"format": 99}', '{"format": 1, "member_side": []}'])
def test_anything_else_is_not_a_feature_space(text: str) -> None:
    with pytest.raises(DataError, match="not a feature space"):
        FeatureSpace.from_json(text)
