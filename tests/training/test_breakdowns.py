from __future__ import annotations

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
)


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
