"""Weighting offer responses into training evidence, on a hand-made history."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pydantic
import pytest

from models.base import TrainingSet
from recsys.errors import DataError
from recsys.interactions import InteractionWeights, build_training_set, evidence, holdout_positives
from tests.recsys.tiny_loyalty import AS_OF, tiny_data


def _decay(days: float, half_life: float = 90.0) -> float:
    return float(2.0 ** (-days / half_life))


def _value(matrix: object, member: int, offer: int) -> float:
    return float(matrix[member, offer])  # type: ignore[index]


def test_rows_and_columns_cover_every_member_and_offer() -> None:
    data = tiny_data()
    training, _ = build_training_set(data, until=AS_OF)
    assert list(training.member_ids) == ["m1", "m2", "m3"]  # m3 has no events at all
    assert list(training.offer_ids) == ["o1", "o2", "o3", "o4"]  # o4 was never shown
    assert training.interactions.shape == (3, 4)
    assert training.interactions.dtype == np.float32
    assert training.member_tiers.tolist() == [0, 2, 4] and training.member_tiers.dtype == np.int8
    assert training.member_features is not None and training.member_features.shape[0] == 3
    assert training.offer_features is not None and training.offer_features.shape[0] == 4
    assert len(training.member_feature_names) == training.member_features.shape[1]


def test_events_are_weighted_by_kind_and_decayed_by_age() -> None:
    training, _ = build_training_set(tiny_data(), until=AS_OF)
    x = training.interactions
    # m1/o1: an impression (weight 0) and a redemption 29.5 days before the cut.
    assert _value(x, 0, 0) == pytest.approx(5 * _decay(29.5), rel=1e-5)
    # m2/o2: a click one half-life (89.5 days) before the cut counts about half of 2.
    assert _value(x, 1, 1) == pytest.approx(2 * _decay(89.5), rel=1e-5)
    # m2/o3: a click and a redemption half a day before the cut add up.
    assert _value(x, 1, 2) == pytest.approx(7 * _decay(0.5), rel=1e-5)


def test_a_dismissal_is_negative_evidence() -> None:
    training, _ = build_training_set(tiny_data(), until=AS_OF)
    assert _value(training.interactions, 0, 1) == pytest.approx(-_decay(29.5), rel=1e-5)


def test_nothing_after_until_is_used() -> None:
    data = tiny_data()
    training, space = build_training_set(data, until=AS_OF)
    assert _value(training.interactions, 0, 2) == 0.0  # m1 clicked o3 after the cut
    assert _value(training.interactions, 1, 0) == 0.0  # m2 clicked o1 after the cut
    assert training.interactions.nnz == 4
    # Behaviour after the cut does not leak into features either: m1's Dubai Palace stay, m2's sushi.
    assert "city:Dubai" not in space.member_side and "cuisine:sushi" not in space.member_side
    features = training.member_features
    assert features is not None
    row = features[0]
    assert space.member_side.index("brand:Palace") not in set(row.indices)


def test_without_until_all_history_counts_decayed_from_the_latest_date() -> None:
    training, space = build_training_set(tiny_data())
    x = training.interactions
    # The latest date in the history is m2's dinner on 2025-02-01.
    assert _value(x, 0, 2) == pytest.approx(2 * _decay(27.0), rel=1e-5)  # clicked 2025-01-05
    assert _value(x, 1, 0) == pytest.approx(2 * _decay(12.0), rel=1e-5)  # clicked 2025-01-20
    assert "city:Dubai" in space.member_side and "cuisine:sushi" in space.member_side


def test_as_of_in_the_weights_ends_the_history_when_no_until_is_given() -> None:
    by_until, _ = build_training_set(tiny_data(), until=AS_OF)
    by_as_of, _ = build_training_set(tiny_data(), weights=InteractionWeights(as_of=AS_OF.to_pydatetime()))
    assert (by_until.interactions != by_as_of.interactions).nnz == 0


def test_weights_are_configuration() -> None:
    weights = InteractionWeights(impression=0.5, redeem=10.0, half_life_days=30.0)
    training, _ = build_training_set(tiny_data(), until=AS_OF, weights=weights)
    expected = 0.5 * _decay(31 - 10 / 24, 30.0) + 10 * _decay(29.5, 30.0)
    assert _value(training.interactions, 0, 0) == pytest.approx(expected, rel=1e-5)
    assert weights.model_dump()["redeem"] == 10.0
    with pytest.raises(pydantic.ValidationError):
        InteractionWeights(half_life_days=0)
    with pytest.raises(pydantic.ValidationError):
        InteractionWeights(city_half_life_days=0)
    with pytest.raises(pydantic.ValidationError):
        InteractionWeights(purchase=3.0)  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        weights.redeem = 1.0


def test_city_half_life_reaches_the_features_and_the_space() -> None:
    weights = InteractionWeights(city_half_life_days=5.0)
    short, short_space = build_training_set(tiny_data(), until=AS_OF, weights=weights)
    long, long_space = build_training_set(tiny_data(), until=AS_OF)
    assert short_space.city_half_life_days == 5.0 and long_space.city_half_life_days == 730.0

    def cities(training: TrainingSet) -> dict[str, float]:
        assert training.member_features is not None
        row = training.member_features[0].toarray().ravel()
        names = training.member_feature_names
        return {n: float(row[j]) for j, n in enumerate(names) if n.startswith("city:") and row[j]}

    # m1's Beijing stay is 121 days old: over years it still counts, over days it is gone
    assert set(cities(long)) == {"city:Shanghai", "city:Beijing"}
    assert set(cities(short)) == {"city:Shanghai"}


def test_evidence_that_cancels_out_is_not_stored() -> None:
    weights = InteractionWeights(click=1.0, dismiss=-1.0, half_life_days=1e9)
    data = tiny_data()
    events = data.offer_events.copy()
    events.loc[events["event_id"] == "e1", "event"] = "click"
    events.loc[events["event_id"] == "e2", "event"] = "dismiss"
    tweaked = type(data)(**{**data.frames(), "offer_events": events})
    training, _ = build_training_set(tweaked, until=AS_OF, weights=weights)
    assert _value(training.interactions, 0, 0) == 0.0
    assert not np.any(training.interactions.data == 0)


def test_a_given_space_encodes_new_members_without_identity() -> None:
    data = tiny_data()
    _, space = build_training_set(data, until=AS_OF)
    newcomer = pd.DataFrame(
        {
            "member_id": ["m9"],
            "tier": pd.Series([1], dtype="int8"),
            "home_country": ["CN"],
            "enrolled_on": pd.Series(pd.to_datetime(["2025-01-02"])),
            "points_balance": [0],
            "consent_personalisation": [True],
            "consent_email": [True],
        }
    )
    grown = type(data)(**{**data.frames(), "members": pd.concat([data.members, newcomer], ignore_index=True)})
    training, same = build_training_set(grown, until=AS_OF, space=space)
    assert same is space
    assert training.member_features is not None
    assert training.member_features.shape == (4, space.n_member_features)
    names = {space.member_feature_names[c] for c in training.member_features[3].indices}
    # silver was never seen in training
    assert names == {"country:CN", "stay_frequency:none", "spend:none", "dining_frequency:none"}


def test_exposure_records_what_was_shown_and_taken_up_before_until() -> None:
    training, _ = build_training_set(tiny_data(), until=AS_OF)
    assert training.shown is not None and training.responded is not None
    # m1 saw o1 (and redeemed it) and o2 (dismissed); m2 clicked o2 and o3 with no impression logged.
    assert training.shown.toarray().tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    assert training.responded.toarray().tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    everything, _ = build_training_set(tiny_data())  # m1's click on o3 and m2's on o1 come after the cut
    assert everything.responded is not None
    assert everything.responded.toarray().tolist() == [[1, 0, 1, 0], [1, 1, 1, 0], [0, 0, 0, 0]]


def test_members_and_brands_get_price_levels_from_history_before_until() -> None:
    training, _ = build_training_set(tiny_data(), until=AS_OF)
    # Budget earns 50 a night and Palace 500 before the cut: two brands, one standard deviation each side.
    assert dict(training.feature_price_levels) == pytest.approx({"brand:Budget": -1.0, "brand:Palace": 1.0})
    assert {"brand:Budget", "brand:Palace"} <= set(training.offer_feature_names)
    assert training.member_price_levels is not None
    # m1: 3 Budget nights (its tier's only evidence); m2: 4 Palace nights and a meal at the Palace hotel;
    # m3 (diamond, no history): everyone's mean, (-3 + 5) / 8. s5 and m2's later meal come after the cut.
    np.testing.assert_allclose(training.member_price_levels, [-1.0, 1.0, 0.25])


def test_exposure_read_in_slices_is_the_same() -> None:
    data = tiny_data()
    members, offers = pd.Index(data.members["member_id"]), pd.Index(data.offers["offer_id"])
    weights = InteractionWeights()
    whole = evidence(data.offer_events, members, offers, weights, until=AS_OF, as_of=AS_OF)
    sliced = evidence(data.offer_events, members, offers, weights, until=AS_OF, as_of=AS_OF, slice_rows=2)
    for a, b in ((whole.shown, sliced.shown), (whole.responded, sliced.responded)):
        assert (a != b).nnz == 0 and a.has_sorted_indices and b.has_sorted_indices


def test_holdout_positives_are_clicks_and_redemptions_in_the_window() -> None:
    data = tiny_data()
    relevant = holdout_positives(data, since=AS_OF, until=None)
    assert relevant.shape == (3, 4) and relevant.dtype == np.float32
    assert relevant.toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    bounded = holdout_positives(data, since=AS_OF, until=pd.Timestamp("2025-01-10", tz="UTC"))
    assert bounded.toarray().tolist() == [[0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    before = holdout_positives(data, since=pd.Timestamp("2024-01-01"), until=AS_OF)
    assert before.toarray().tolist() == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]  # dismissals are not relevant


def test_duplicate_member_ids_are_a_data_error() -> None:
    data = tiny_data()
    doubled = type(data)(**{**data.frames(), "members": pd.concat([data.members, data.members.iloc[:1]])})
    with pytest.raises(DataError, match="unique"):
        build_training_set(doubled)


def test_weights_as_recorded_fill_what_a_model_predates_with_what_it_was_trained_on() -> None:
    now = InteractionWeights(redeem=7.0)
    assert InteractionWeights.as_recorded(json.loads(now.model_dump_json())) == now
    older = InteractionWeights.as_recorded({"redeem": 7.0, "half_life_days": 60.0})
    expected = InteractionWeights(redeem=7.0, half_life_days=60.0, stay_weighting="nights", city_half_life_days=60.0)
    assert older == expected
    assert InteractionWeights.as_recorded(None) == InteractionWeights(stay_weighting="nights", city_half_life_days=90.0)
