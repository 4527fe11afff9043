"""Kinds of relevant test responses, for ``evaluate``'s breakdowns: what share of each kind a model (and
the oracle) ranks in the top k shows where a model trails.

- ``by_category``, on any loyalty data: the category of the offer responded to.
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

from models.base import TrainingSet
from recsys.features import CITY_GROUP
from training.evaluate import PairLabeller
from training.synthetic_tastes import favourite_cities
from training.synthetic_world import CITY_INDEX

IntArray = npt.NDArray[np.int64]

NO_CITY = "offer tied to no city"
FAVOURITE_NAMED = "favourite city the history names"
FAVOURITE_UNNAMED = "favourite city the history does not name"
OTHER_CITY = "city that is no favourite"


def response_kinds(offers: pd.DataFrame, train: TrainingSet, tastes: pd.DataFrame | None) -> dict[str, PairLabeller]:
    """The breakdowns of an evaluation on ``train``: by category, and by city where the hidden
    ``tastes`` are known (synthetic data)."""
    kinds = {"category": by_category(offers, train)}
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


def by_favourite_city(tastes: pd.DataFrame, offers: pd.DataFrame, train: TrainingSet) -> PairLabeller:
    """Each pair's offer city against the member's hidden favourites (``tastes`` as
    ``training.synthetic_tastes.load_tastes`` reads them, read as the oracle reads them) and the cities
    their features name."""
    city = _offer_column(offers, train, "city")
    city_index = np.array([CITY_INDEX.get(c, -1) for c in city], dtype=np.int64)  # -1: no city the world knows
    favourite = favourite_cities(tastes.set_index("member_id").reindex(list(train.member_ids)))
    features, names = train.member_features, train.member_feature_names
    city_columns = [j for j, name in enumerate(names) if name.startswith(CITY_GROUP)]
    column_of = {names[j].removeprefix(CITY_GROUP): i for i, j in enumerate(city_columns)}
    offer_column = np.array([column_of.get(c, -1) for c in city], dtype=np.int64)  # -1: no member names it
    named = features[:, city_columns].tocsr() if features is not None and city_columns else None

    def label(members: IntArray, cols: IntArray) -> Sequence[str]:
        where, column = city_index[cols], offer_column[cols]
        liked = np.zeros(len(cols), dtype=bool)
        liked[where >= 0] = favourite[members[where >= 0], where[where >= 0]]
        known = np.zeros(len(cols), dtype=bool)
        look = liked & (column >= 0)
        if named is not None and look.any():
            known[look] = np.asarray(named[members[look], column[look]]).ravel() != 0
        kinds = np.select([city[cols] == "", ~liked, known], [NO_CITY, OTHER_CITY, FAVOURITE_NAMED], FAVOURITE_UNNAMED)
        return [str(kind) for kind in kinds]

    return label
