"""Members' response rates by offer group: observed against expected take-up of the offers they were
shown, shrunk towards the population; worked out by hand on small exposures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from models.response_rates import response_rates
from recsys.errors import ModelError


def _csr(rows: list[list[int]]) -> sp.csr_matrix:
    return sp.csr_matrix(np.array(rows, dtype=np.float32))


def test_a_member_never_shown_a_group_is_average() -> None:
    shown = _csr([[1, 1], [0, 0]])
    responded = _csr([[1, 0], [0, 0]])
    rates = response_rates(shown, responded, _csr([[1, 0], [0, 1]]))
    assert rates.shape == (2, 2) and rates.dtype == np.float32
    assert rates[1].tolist() == [0.0, 0.0]


def test_taking_a_group_up_raises_its_rate_and_ignoring_it_lowers_it() -> None:
    # Offers 0-1 are spa, 2-3 stay; both members saw all four; m0 took the spa offers, m1 the stays.
    shown = _csr([[1, 1, 1, 1], [1, 1, 1, 1]])
    responded = _csr([[1, 1, 0, 0], [0, 0, 1, 1]])
    groups = _csr([[1, 0], [1, 0], [0, 1], [0, 1]])
    rates = response_rates(shown, responded, groups)
    assert rates[0, 0] > 0 > rates[0, 1]
    assert rates[1, 1] > 0 > rates[1, 0]


def test_the_rate_is_the_shrunk_log_ratio_worked_by_hand() -> None:
    shown = _csr([[1, 1, 1, 1], [1, 1, 1, 1]])
    responded = _csr([[1, 1, 0, 0], [0, 0, 1, 1]])
    groups = _csr([[1, 0], [1, 0], [0, 1], [0, 1]])
    # Each offer: 1 take-up in 2 showings, overall rate 1/2, so appeal (1 + 10 * 0.5) / (2 + 10) = 0.5;
    # m0 expects 2 * 0.5 = 1 spa response and gave 2; the population ratio per group is 2/2 = 1.
    rates = response_rates(shown, responded, groups, prior=1.0, offer_prior=10.0)
    assert rates[0, 0] == pytest.approx(math.log((2 + 1) / (1 + 1)), rel=1e-6)
    assert rates[0, 1] == pytest.approx(math.log((0 + 1) / (1 + 1)), rel=1e-6)


def test_beating_low_expectations_counts_more_than_meeting_high_ones() -> None:
    # Offer 0 appeals to nearly everyone who sees it, offer 1 to almost no one; both are in one group.
    # m0 took the appealing one, m1 the unappealing one: m1 showed more taste for the group.
    crowd_shown = [[1, 0]] * 10 + [[0, 1]] * 10
    crowd_taken = [[1, 0]] * 9 + [[0, 0]] + [[0, 0]] * 9 + [[0, 1]]
    shown = _csr([[1, 0], [0, 1], *crowd_shown])
    responded = _csr([[1, 0], [0, 1], *crowd_taken])
    rates = response_rates(shown, responded, _csr([[1], [1]]))
    assert rates[1, 0] > rates[0, 0]


def test_more_evidence_moves_further_from_average() -> None:
    few = [1] + [0] * 9
    many = [1] * 10
    shown = _csr([few, many, many, many])
    responded = _csr([few, many, [0] * 10, [0] * 10])
    rates = response_rates(shown, responded, sp.csr_matrix(np.ones((10, 1), np.float32)))
    assert rates[1, 0] > rates[0, 0] > 0


def test_a_response_counts_as_a_showing_even_without_its_impression() -> None:
    with_impression = response_rates(_csr([[1, 1], [1, 1]]), _csr([[1, 0], [0, 0]]), _csr([[1], [1]]))
    without = response_rates(_csr([[0, 1], [1, 1]]), _csr([[1, 0], [0, 0]]), _csr([[1], [1]]))
    np.testing.assert_array_equal(with_impression, without)


def test_no_exposure_at_all_gives_zeros() -> None:
    empty = sp.csr_matrix((3, 2), dtype=np.float32)
    assert not response_rates(empty, empty, _csr([[1], [1]])).any()


def test_shapes_that_do_not_line_up_are_refused() -> None:
    with pytest.raises(ModelError, match="do not line up"):
        response_rates(_csr([[1, 1]]), _csr([[1, 1]]), _csr([[1], [1], [1]]))
    with pytest.raises(ModelError, match="positive"):
        response_rates(_csr([[1]]), _csr([[1]]), _csr([[1]]), prior=0.0)
