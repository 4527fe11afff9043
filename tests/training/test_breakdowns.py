from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from models.base import TrainingSet
from training.breakdowns import (
    FAVOURITE_NAMED,
    FAVOURITE_UNNAMED,
    NO_CITY,
    OTHER_CITY,
    by_category,
    by_favourite_city,
    by_offer_evidence,
    history_cities,
)
from training.synthetic_world import CITY_INDEX


def _train() -> TrainingSet:
    names = ("city:Tokyo", "country:JP", "member:m0", "member:m1")
    features = sp.csr_matrix(np.array([[0.5, 0.25, 0.25, 0.0], [0.0, 0.5, 0.0, 0.5]], dtype=np.float32))
    return TrainingSet(
        interactions=sp.csr_matrix((2, 4), dtype=np.float32),
        member_ids=np.array(["m0", "m1"]),
        offer_ids=np.array(["o0", "o1", "o2", "o3"]),
        member_tiers=np.zeros(2, dtype=np.int8),
        member_features=features,
        member_feature_names=names,
    )


# in another order than the training set's offers, as the offers file may be
OFFERS = pd.DataFrame(
    {
        "offer_id": ["o3", "o2", "o1", "o0"],
        "category": ["card", "stay", "dining", "stay"],
        "city": [None, "Paris", "Osaka", "Tokyo"],
    }
)


def test_category_labels_follow_the_training_offer_order() -> None:
    label = by_category(OFFERS, _train())
    assert list(label(np.array([0, 1, 1]), np.array([0, 1, 3]))) == ["stay", "dining", "card"]


def test_city_labels_split_favourites_by_what_the_history_names() -> None:
    tastes = pd.DataFrame({"member_id": ["m1", "m0"], "fav_cities": ["Paris", "Tokyo|Osaka"]})
    label = by_favourite_city(tastes, OFFERS, _train())
    members = np.array([0, 0, 0, 0, 1, 1])
    offers = np.array([0, 1, 2, 3, 2, 0])
    assert list(label(members, offers)) == [
        FAVOURITE_NAMED,  # m0 likes Tokyo and stayed there
        FAVOURITE_UNNAMED,  # m0 likes Osaka but the history never shows it
        OTHER_CITY,  # Paris is not one of m0's
        NO_CITY,
        FAVOURITE_UNNAMED,  # m1's features name no city at all
        OTHER_CITY,
    ]


def test_history_cities_are_the_cities_the_member_features_name() -> None:
    names = ("city:Tokyo", "city:Atlantis", "city:Osaka", "member:m0", "member:m1")
    features = sp.csr_matrix(np.array([[0.25, 0.25, 0.0, 0.5, 0.0], [0.0, 0.0, 0.5, 0.0, 0.5]], dtype=np.float32))
    train = dataclasses.replace(_train(), member_features=features, member_feature_names=names)
    named = history_cities(train)
    assert named.shape == (2, len(CITY_INDEX))
    # a city the synthetic world does not know (Atlantis) names nothing
    assert {int(c) for c in np.flatnonzero(named[0])} == {CITY_INDEX["Tokyo"]}
    assert {int(c) for c in np.flatnonzero(named[1])} == {CITY_INDEX["Osaka"]}
    assert not history_cities(dataclasses.replace(train, member_features=None)).any()


def test_offer_evidence_counts_the_members_who_responded_in_training() -> None:
    # o0: nobody; o1: one member; o2: three members, one of them only dismissed it; o3: two members
    interactions = sp.csr_matrix(np.array([[0, 2.0, 5.0, 1.0], [0, 0, 2.0, 1.0], [0, 0, -1.0, 0]], dtype=np.float32))
    train = dataclasses.replace(
        _train(), interactions=interactions, member_ids=np.array(["m0", "m1", "m2"]), member_features=None
    )
    label = by_offer_evidence(train, few=2)
    assert list(label(np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3]))) == [
        "offer with no response",
        "offer with 1 to 1 responses",
        "offer with 2 or more responses",  # the dismissal is no response
        "offer with 2 or more responses",
    ]
