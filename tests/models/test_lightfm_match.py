"""The LightFM hybrid's extra dimensions, in the exported embeddings themselves. Matching: a member and
an offer sharing a city (or partner) score the group's weight times the offer's feature weight on top of
what LightFM learned, for trained and brand-new rows alike. Response rates: a trained member's taste for
an offer category, learned from what they were shown and took up, times the offer's feature weight."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from models.base import TrainingSet
from models.families import create, load
from models.lightfm_hybrid import LightFMHybrid, match_columns
from models.response_rates import response_rates
from recsys.errors import ModelError

CITIES = ("Lisbon", "Porto", "Seoul")
MEMBER_NAMES = (*(f"city:{c}" for c in CITIES), "tier:gold", "member:m0", "member:m1", "member:m2")
OFFER_NAMES = ("city:Lisbon", "city:Seoul", "city:Paris", "category:stay", "offer:o0", "offer:o1", "offer:o2")
PARAMS = {"no_components": 4, "epochs": 3, "num_threads": 1, "random_state": 7, "response_category": 0.0}


def _training() -> TrainingSet:
    # m0 stays in Lisbon, m1 in Porto and Seoul, m2 nowhere; o0 is in Lisbon, o1 in Seoul, o2 in Paris.
    members = sp.csr_matrix(
        np.array(
            [
                [0.25, 0, 0, 0.25, 0.5, 0, 0],
                [0, 0.125, 0.125, 0.25, 0, 0.5, 0],
                [0, 0, 0, 0.5, 0, 0, 0.5],
            ],
            dtype=np.float32,
        )
    )
    offers = sp.csr_matrix(
        np.array(
            [
                [1 / 3, 0, 0, 1 / 3, 1 / 3, 0, 0],
                [0, 1 / 3, 0, 1 / 3, 0, 1 / 3, 0],
                [0, 0, 1 / 3, 1 / 3, 0, 0, 1 / 3],
            ],
            dtype=np.float32,
        )
    )
    interactions = sp.csr_matrix(np.array([[5, 0, 0], [0, 2, 0], [0, 0, 2]], dtype=np.float32))
    return TrainingSet(
        interactions=interactions,
        member_ids=np.array(["m0", "m1", "m2"]),
        offer_ids=np.array(["o0", "o1", "o2"]),
        member_tiers=np.zeros(3, np.int8),
        member_features=members,
        offer_features=offers,
        member_feature_names=MEMBER_NAMES,
        offer_feature_names=OFFER_NAMES,
    )


def _scores(model: object) -> np.ndarray:
    members, offers = model.member_embeddings(), model.offer_embeddings()  # type: ignore[attr-defined]
    return members.factors @ offers.factors.T + offers.bias[None, :] + members.bias[:, None]


def test_only_values_on_both_sides_of_a_weighted_group_match() -> None:
    member_cols, offer_cols, weights = match_columns(MEMBER_NAMES, OFFER_NAMES, {"city": 2.0, "tier": 0.0})
    assert [MEMBER_NAMES[i] for i in member_cols] == ["city:Lisbon", "city:Seoul"]  # Porto and Paris are one-sided
    assert [OFFER_NAMES[j] for j in offer_cols] == ["city:Lisbon", "city:Seoul"]
    assert weights.tolist() == [2.0, 2.0]


def test_a_shared_city_adds_its_weight_times_the_offers_feature_weight() -> None:
    data = _training()
    plain = create("lightfm", **PARAMS, match_city=0.0, match_partner=0.0).fit(data)
    matched = create("lightfm", **PARAMS, match_city=6.0, match_partner=0.0).fit(data)
    assert matched.member_embeddings().factors.shape[1] == plain.member_embeddings().factors.shape[1] + 2
    lift = _scores(matched) - _scores(plain)  # the same LightFM fit (one thread, same seed) underneath
    expected = np.zeros((3, 3), np.float32)
    expected[0, 0] = 6.0 / 3  # m0 and o0 share Lisbon; o0 weighs its city 1/3
    expected[1, 1] = 6.0 / 3  # m1 and o1 share Seoul
    np.testing.assert_allclose(lift, expected, atol=1e-5)


def test_a_new_offer_and_a_new_member_match_from_their_features() -> None:
    model = create("lightfm", **PARAMS, match_city=6.0).fit(_training())
    new_offer = sp.csr_matrix(np.array([[0, 0.5, 0, 0.5, 0, 0, 0]], dtype=np.float32))  # Seoul, no identity
    new_member = sp.csr_matrix(np.array([[0, 0, 0.5, 0.5, 0, 0, 0]], dtype=np.float32))  # stays in Seoul
    offer = model.offer_embeddings(new_offer)
    member = model.member_embeddings(new_member)
    assert offer.factors[0, -2:].tolist() == [0.0, 0.5]  # (Lisbon, Seoul) dimensions
    assert member.factors[0, -2:].tolist() == [0.0, 6.0]


def test_folded_in_members_have_no_features_to_match() -> None:
    model = create("lightfm", **PARAMS, match_city=6.0).fit(_training())
    folded = model.member_embeddings(interactions=sp.csr_matrix(np.array([[0, 5, 0]], dtype=np.float32)))
    assert folded.factors.shape[1] == model.offer_embeddings().factors.shape[1]
    assert folded.factors[0, -2:].tolist() == [0.0, 0.0]


def test_matching_survives_save_and_load(tmp_path: Path) -> None:
    model = create("lightfm", **PARAMS, match_city=6.0).fit(_training())
    model.save(tmp_path / "model")
    again = load(tmp_path / "model")
    np.testing.assert_array_equal(_scores(again), _scores(model))
    new_offer = sp.csr_matrix(np.array([[0.5, 0, 0, 0.5, 0, 0, 0]], dtype=np.float32))
    np.testing.assert_array_equal(again.offer_embeddings(new_offer).factors, model.offer_embeddings(new_offer).factors)


def _exposed() -> TrainingSet:
    # m0 was shown all three (stay) offers and took one; m1 was shown o1 and took it; m2 saw nothing.
    shown = sp.csr_matrix(np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    responded = sp.csr_matrix(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.float32))
    return dataclasses.replace(_training(), shown=shown, responded=responded)


def test_response_rates_add_the_weight_times_the_rate_times_the_offers_feature_weight() -> None:
    data = _exposed()
    plain = create("lightfm", **PARAMS).fit(data)
    with_rates = create("lightfm", **{**PARAMS, "response_category": 6.0}).fit(data)
    assert with_rates.member_embeddings().factors.shape[1] == plain.member_embeddings().factors.shape[1] + 1
    assert data.shown is not None and data.responded is not None
    rates = response_rates(data.shown, data.responded, sp.csr_matrix(np.ones((3, 1), np.float32)))[:, 0]
    assert rates[0] < 0 < rates[1] and rates[2] == 0.0  # m0 took 1 of 3, m1 1 of 1, m2 saw nothing
    lift = _scores(with_rates) - _scores(plain)
    np.testing.assert_allclose(lift, np.repeat(6.0 * rates[:, None] / 3, 3, axis=1), atol=1e-5)


def test_rows_without_known_exposure_get_no_response_rates() -> None:
    model = create("lightfm", **{**PARAMS, "response_category": 6.0}).fit(_exposed())
    assert model.member_embeddings().factors[1, -1] > 0  # m1, as trained
    again = model.member_embeddings(member_features=_exposed().member_features)  # the same rows, from features
    assert not again.factors[:, -1].any()
    folded = model.member_embeddings(interactions=sp.csr_matrix(np.array([[0, 5, 0]], dtype=np.float32)))
    assert folded.factors.shape[1] == model.offer_embeddings().factors.shape[1]
    assert folded.factors[0, -1] == 0.0
    new_offer = sp.csr_matrix(np.array([[0, 0, 0, 1, 0, 0, 0]], dtype=np.float32))  # a stay offer, no identity
    assert model.offer_embeddings(new_offer).factors[0, -1] == 1.0


def test_no_exposure_recorded_means_no_response_dimensions() -> None:
    plain = create("lightfm", **PARAMS).fit(_training())
    asked = create("lightfm", **{**PARAMS, "response_category": 6.0}).fit(_training())  # shown is None
    assert asked.member_embeddings().factors.shape == plain.member_embeddings().factors.shape


def test_response_rates_survive_save_and_load(tmp_path: Path) -> None:
    model = create("lightfm", **{**PARAMS, "response_category": 6.0}).fit(_exposed())
    model.save(tmp_path / "model")
    again = load(tmp_path / "model")
    np.testing.assert_array_equal(_scores(again), _scores(model))


PRICED_OFFER_NAMES = ("brand:Budget", "brand:Palace", "category:stay", "offer:o0", "offer:o1", "offer:o2")


def _priced() -> TrainingSet:
    # o0 is a Budget hotel's offer, o1 a Palace's, o2 no hotel's; Budget sits at -1, Palace at +1 and the
    # members book at -1 (m0), +1 (m1) and 0 (m2).
    offers = sp.csr_matrix(
        np.array(
            [[1 / 3, 0, 1 / 3, 1 / 3, 0, 0], [0, 1 / 3, 1 / 3, 0, 1 / 3, 0], [0, 0, 0.5, 0, 0, 0.5]], dtype=np.float32
        )
    )
    return dataclasses.replace(
        _training(),
        offer_features=offers,
        offer_feature_names=PRICED_OFFER_NAMES,
        member_price_levels=np.array([-1.0, 1.0, 0.0]),
        feature_price_levels={"brand:Budget": -1.0, "brand:Palace": 1.0, "brand:Elsewhere": 3.0},
    )


def test_price_levels_add_the_weight_times_the_centred_closeness_to_each_hotel_offers_brand() -> None:
    data = _priced()
    plain = create("lightfm", **PARAMS, level_fit=0.0).fit(data)
    priced = create("lightfm", **PARAMS, level_fit=1.5).fit(data)
    assert priced.member_embeddings().factors.shape[1] == plain.member_embeddings().factors.shape[1] + 3
    lift = _scores(priced) - _scores(plain)  # the same LightFM fit underneath
    # mean squared distance between the members (-1, 1, 0) and the hotel offers (-1, 1): 2/3 + 1 = 5/3
    member, brand = np.array([-1.0, 1.0, 0.0])[:, None], np.array([-1.0, 1.0])[None, :]
    expected = np.zeros((3, 3))
    expected[:, :2] = 1.5 / 3 * (5 / 3 - (member - brand) ** 2)  # each hotel offer weighs its brand 1/3
    np.testing.assert_allclose(lift, expected, atol=1e-5)
    assert lift[0, 0] > lift[0, 1] and lift[1, 1] > lift[1, 0]  # each member is steered to their own level


def test_rows_without_a_known_level_get_none_and_a_new_offer_is_priced_from_its_brand() -> None:
    model = create("lightfm", **PARAMS, level_fit=1.5).fit(_priced())
    again = model.member_embeddings(member_features=_priced().member_features)  # the same rows, from features
    assert not again.factors[:, -3:].any()
    folded = model.member_embeddings(interactions=sp.csr_matrix(np.array([[0, 5, 0]], dtype=np.float32)))
    assert folded.factors.shape[1] == model.offer_embeddings().factors.shape[1]
    assert not folded.factors[0, -3:].any()
    new_offer = sp.csr_matrix(np.array([[0, 0.5, 0.5, 0, 0, 0]], dtype=np.float32))  # a Palace stay, no identity
    np.testing.assert_allclose(model.offer_embeddings(new_offer).factors[0, -3:], [0.5, 0.5, 0.5])


def test_no_price_levels_means_no_level_dimensions() -> None:
    plain = create("lightfm", **PARAMS, level_fit=0.0).fit(_priced())
    unpriced = dataclasses.replace(_priced(), member_price_levels=None)
    assert (
        create("lightfm", **PARAMS, level_fit=1.5).fit(unpriced).member_embeddings().factors.shape
        == plain.member_embeddings().factors.shape
    )


def test_price_levels_survive_save_and_load(tmp_path: Path) -> None:
    model = create("lightfm", **PARAMS, level_fit=1.5).fit(_priced())
    model.save(tmp_path / "model")
    again = load(tmp_path / "model")
    np.testing.assert_array_equal(_scores(again), _scores(model))


def test_price_levels_that_do_not_line_up_with_the_members_are_a_model_error() -> None:
    data = dataclasses.replace(_priced(), member_price_levels=np.zeros(2))
    with pytest.raises(ModelError, match="member price levels"):
        create("lightfm", **PARAMS, level_fit=1.5).fit(data)


def test_parameters_are_idle_without_what_they_act_on() -> None:
    extras = {"match_city", "match_partner", "match_brand_level", "response_category", "level_fit"}
    bare = dataclasses.replace(
        _training(), member_features=None, offer_features=None, member_feature_names=(), offer_feature_names=()
    )
    assert LightFMHybrid.idle_params(bare) == extras  # an interactions file: LightFM's own parameters only
    assert LightFMHybrid.idle_params(_training()) == {"response_category", "level_fit"}
    assert LightFMHybrid.idle_params(_exposed()) == {"level_fit"}
    everything = dataclasses.replace(_priced(), shown=_exposed().shown, responded=_exposed().responded)
    assert LightFMHybrid.idle_params(everything) == set()
    assert create("als").idle_params(bare) == set()
