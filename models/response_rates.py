"""How much more (or less) than expected each member takes up the offers of each group (a category, say).

A member who clicked two of the three spa offers shown likes spa more than one who clicked two of thirty;
raw click-through rates mislead twice over. A member the old campaigns showed mostly unappealing offers
looks unresponsive, and three showings say little. So each member's responses in a group are compared
with the responses expected from the very offers they were shown (each offer's own take-up rate across
all members, shrunk towards the overall rate), and the log of that ratio is shrunk towards the group's
population ratio by ``prior`` expected responses:

    rate[m, g] = log((observed[m, g] + prior * pop[g]) / (expected[m, g] + prior)) - log(pop[g])

0 means "as expected" and is exactly what a member who was never shown the group gets, so a member who
comes later, with no history yet, scores as an average member. Positive: takes the group up more often
than its offers' appeal explains. This is the part of a member's taste that their stays and spend reveal
only in part, and that a factorisation trained on positives alone cannot see: it never learns what was
shown and ignored.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from recsys.errors import ModelError

OFFER_PRIOR = 10.0  # showings of weight pulling each offer's take-up rate towards the overall rate
PRIOR = 1.0  # expected responses of weight pulling each member's ratio towards the population's


def response_rates(
    shown: sp.csr_matrix,
    responded: sp.csr_matrix,
    groups: sp.csr_matrix,
    *,
    prior: float = PRIOR,
    offer_prior: float = OFFER_PRIOR,
) -> npt.NDArray[np.float32]:
    """(members, groups) shrunk log ratios of observed to expected responses.

    ``shown`` and ``responded`` are members x offers (non-zero = shown, responded; a response counts as
    a showing even where the impression was not logged); ``groups`` is offers x groups (non-zero = the
    offer belongs to the group; an offer may belong to several or none)."""
    if shown.shape != responded.shape or shown.shape[1] != groups.shape[0]:
        raise ModelError(f"shown {shown.shape}, responded {responded.shape} and groups {groups.shape} do not line up")
    if prior <= 0 or offer_prior <= 0:
        raise ModelError("response rate priors must be positive")
    took = (sp.csr_matrix(responded) != 0).astype(np.float64)
    saw = ((abs(sp.csr_matrix(shown, dtype=np.float64)) + took) != 0).astype(np.float64)
    member_of = (sp.csr_matrix(groups) != 0).astype(np.float64)
    times_shown = np.asarray(saw.sum(axis=0)).ravel()
    times_taken = np.asarray(took.sum(axis=0)).ravel()
    if times_shown.sum() == 0:
        return np.zeros((shown.shape[0], groups.shape[1]), dtype=np.float32)
    overall = times_taken.sum() / times_shown.sum()
    appeal = (times_taken + offer_prior * overall) / (times_shown + offer_prior)
    expected = np.asarray((saw @ sp.diags(appeal) @ member_of).todense())
    observed = np.asarray((took @ member_of).todense())
    exp_total, obs_total = expected.sum(axis=0), observed.sum(axis=0)
    population = np.divide(obs_total, exp_total, out=np.ones_like(obs_total), where=(exp_total > 0) & (obs_total > 0))
    rates = np.log((observed + prior * population) / (expected + prior)) - np.log(population)
    return rates.astype(np.float32)
