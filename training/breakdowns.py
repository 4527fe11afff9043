"""Kinds of relevant test responses, for ``evaluate``'s breakdowns: what share of each kind a model (and
the oracle) ranks in the top k shows where a model trails.

- ``by_category``, on any loyalty data: the category of the offer responded to.
- ``by_offer_evidence``, on any data: how many members responded to the offer in training. An offer
  launched shortly before the cut has a handful; a model that learns each offer's own embedding knows
  it less well than an established one, and one that never had a response only by its features.
- ``by_favourite_city``, on synthetic data: whether the offer is tied to a city, whether that city is
  one of the member's hidden favourites, and whether the member's training features name it (their
  ``city:`` features: the cities their stays, hotel meals and responses point to). A favourite city
  the history does not name is taste the model has no evidence of; the oracle knows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from models.base import TrainingSet
from recsys.features import CITY_GROUP
from training.evaluate import PairLabeller
from training.synthetic_tastes import favourite_cities
from training.synthetic_world import CITIES, CITY_INDEX

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

FEW_RESPONSES = 20  # an offer fewer members than this responded to in training has little evidence

NO_CITY = "offer tied to no city"
FAVOURITE_NAMED = "favourite city the history names"
FAVOURITE_UNNAMED = "favourite city the history does not name"
OTHER_CITY = "city that is no favourite"


def response_kinds(offers: pd.DataFrame, train: TrainingSet, tastes: pd.DataFrame | None) -> dict[str, PairLabeller]:
    """The breakdowns of an evaluation on ``train``: by category and by offer evidence, and by city
    where the hidden ``tastes`` are known (synthetic data)."""
    kinds = {"category": by_category(offers, train), "offer evidence": by_offer_evidence(train)}
    if tastes is not None:
        kinds["city"] = by_favourite_city(tastes, offers, train)
    return kinds


def _offer_column(offers: pd.DataFrame, train: TrainingSet, column: str) -> npt.NDArray[np.str_]:
    """``column`` of each training offer, in the training set's offer order ("" where missing)."""
    values = offers.set_index("offer_id")[column].reindex(list(train.offer_ids))
    return values.astype(object).where(values.notna(), "").astype(str).to_numpy()


def by_category(offers: pd.DataFrame, train: TrainingSet) -> PairLabeller:
    """Each pair's offer category."""
    category = _offer_column(offers, train, "category")

    def label(members: IntArray, cols: IntArray) -> Sequence[str]:
        return list(category[cols])

    return label


def by_offer_evidence(train: TrainingSet, few: int = FEW_RESPONSES) -> PairLabeller:
    """Each pair's offer by how many members gave it positive evidence in ``train``: none, fewer than
    ``few``, or ``few`` and more."""
    responses = np.diff(sp.csc_matrix(train.interactions > 0).indptr)
    kind = np.select(
        [responses == 0, responses < few],
        ["offer with no response", f"offer with 1 to {few - 1} responses"],
        f"offer with {few} or more responses",
    )

    def label(members: IntArray, cols: IntArray) -> Sequence[str]:
        return [str(k) for k in kind[cols]]

    return label


def history_cities(train: TrainingSet) -> BoolArray:
    """(members, ``CITIES``): True where the member's training features name the city (their ``city:``
    features: where their stays, hotel meals and responses point)."""
    named = np.zeros((train.n_members, len(CITIES)), dtype=bool)
    features, names = train.member_features, train.member_feature_names
    if features is None:
        return named
    pairs = [
        (j, CITY_INDEX[name.removeprefix(CITY_GROUP)])
        for j, name in enumerate(names)
        if name.startswith(CITY_GROUP) and name.removeprefix(CITY_GROUP) in CITY_INDEX
    ]
    if pairs:
        columns, cities = (list(side) for side in zip(*pairs, strict=True))
        named[:, cities] = sp.csr_matrix(features)[:, columns].toarray() != 0
    return named


def by_favourite_city(tastes: pd.DataFrame, offers: pd.DataFrame, train: TrainingSet) -> PairLabeller:
    """Each pair's offer city against the member's hidden favourites (``tastes`` as
    ``training.synthetic_tastes.load_tastes`` reads them, read as the oracle reads them) and the cities
    their features name (``history_cities``)."""
    city = _offer_column(offers, train, "city")
    city_index = np.array([CITY_INDEX.get(c, -1) for c in city], dtype=np.int64)  # -1: no city the world knows
    favourite = favourite_cities(tastes.set_index("member_id").reindex(list(train.member_ids)))
    named = history_cities(train)

    def label(members: IntArray, cols: IntArray) -> Sequence[str]:
        where = city_index[cols]
        tied = where >= 0
        liked = np.zeros(len(cols), dtype=bool)
        known = np.zeros(len(cols), dtype=bool)
        liked[tied] = favourite[members[tied], where[tied]]
        known[tied] = named[members[tied], where[tied]]
        kinds = np.select([city[cols] == "", ~liked, known], [NO_CITY, OTHER_CITY, FAVOURITE_NAMED], FAVOURITE_UNNAMED)
        return [str(kind) for kind in kinds]

    return label
