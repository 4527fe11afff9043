"""``top_k`` ranks equal scores by column, so the same scores give the same lists on every CPU."""

from __future__ import annotations

import numpy as np

from models.base import top_k


def _reference(scores: np.ndarray, k: int) -> np.ndarray:
    """Best first, equal scores lowest column first: a full sort, row by row."""
    columns = np.arange(scores.shape[1])
    return np.array([np.lexsort((columns, -row))[:k] for row in scores])


def test_equal_scores_go_to_the_lowest_column_first() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(500, 300)).astype(np.float32)  # every row full of ties
    for k in (1, 10, 37, 300):
        ids, values = top_k(scores, k)
        np.testing.assert_array_equal(ids, _reference(scores, k))
        np.testing.assert_array_equal(values, np.take_along_axis(scores, ids, axis=1))


def test_rows_without_ties_and_excluded_offers() -> None:
    rng = np.random.default_rng(1)
    scores = rng.standard_normal((200, 50)).astype(np.float32)
    scores[:, ::3] = -np.inf  # excluded offers tie at -inf, and a row may have fewer finite than k
    for k in (5, 20, 40):
        ids, _ = top_k(scores, k)
        np.testing.assert_array_equal(ids, _reference(scores, k))
