"""Planted data whose right answer is known: three member groups, each preferring its own offer group.

Member features reveal the group (``taste:g``) and offer features the offer group (``kind:g``); tiers
equal the group, so popularity within the tier finds the answer too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.base import TrainingSet

GROUPS = 3
MEMBERS_PER_GROUP = 40
OFFERS_PER_GROUP = 8
RESPONSES_PER_MEMBER = 4
SIDE_WEIGHT = 0.5  # each row is its group feature and its identity, L1-normalised


@dataclass(frozen=True)
class Planted:
    training: TrainingSet
    member_group: npt.NDArray[np.int64]
    offer_group: npt.NDArray[np.int64]

    def member_features_of(self, group: int) -> sp.csr_matrix:
        """A brand-new member described only by the group feature (no identity), at the weight a known
        member's group feature has (as ``recsys.features`` encodes a row it has no identity for)."""
        n = self.training.member_features.shape[1] if self.training.member_features is not None else 0
        return sp.csr_matrix(([SIDE_WEIGHT], ([0], [group])), shape=(1, n), dtype=np.float32)

    def offer_features_of(self, group: int) -> sp.csr_matrix:
        """A brand-new offer described only by its group feature (no identity), weighted as above."""
        n = self.training.offer_features.shape[1] if self.training.offer_features is not None else 0
        return sp.csr_matrix(([SIDE_WEIGHT], ([0], [group])), shape=(1, n), dtype=np.float32)

    def history_of(self, group: int, seed: int = 1) -> sp.csr_matrix:
        """A member not in training with a few positive responses to their group's offers."""
        rng = np.random.default_rng(seed)
        offers = rng.choice(np.flatnonzero(self.offer_group == group), RESPONSES_PER_MEMBER, replace=False)
        n_offers = len(self.offer_group)
        return sp.csr_matrix((np.full(len(offers), 5.0), ([0] * len(offers), offers)), shape=(1, n_offers))


def _features(groups: npt.NDArray[np.int64], prefix: str, id_prefix: str) -> tuple[sp.csr_matrix, tuple[str, ...]]:
    """Group one-hot first, identity after, rows L1-normalised (as ``recsys.features`` lays them out)."""
    n = len(groups)
    rows = np.concatenate([np.arange(n), np.arange(n)])
    cols = np.concatenate([groups, GROUPS + np.arange(n)])
    matrix = sp.csr_matrix((np.full(2 * n, SIDE_WEIGHT, np.float32), (rows, cols)), shape=(n, GROUPS + n))
    names = tuple(f"{prefix}{g}" for g in range(GROUPS)) + tuple(f"{id_prefix}{i}" for i in range(n))
    return matrix, names


def planted(seed: int = 0, *, cold_members: int = 3, dismissals: bool = True) -> Planted:
    """Each warm member responds to a few offers of their own group; the last ``cold_members`` of each
    group have no responses at all; one offer per group has no responses either (the cold offer)."""
    rng = np.random.default_rng(seed)
    member_group = np.repeat(np.arange(GROUPS), MEMBERS_PER_GROUP)
    offer_group = np.repeat(np.arange(GROUPS), OFFERS_PER_GROUP)
    rows, cols, values = [], [], []
    for m, g in enumerate(member_group):
        if m % MEMBERS_PER_GROUP >= MEMBERS_PER_GROUP - cold_members:
            continue
        own = np.flatnonzero(offer_group == g)[:-1]  # the group's last offer stays cold
        picks = rng.choice(own, RESPONSES_PER_MEMBER, replace=False)
        rows += [m] * len(picks)
        cols += list(picks)
        values += list(rng.choice([2.0, 5.0, 7.0], len(picks)))
        if dismissals:
            other = rng.choice(np.flatnonzero(offer_group != g))
            rows.append(m)
            cols.append(int(other))
            values.append(-1.0)
    interactions = sp.csr_matrix(
        (np.asarray(values, np.float32), (rows, cols)), shape=(len(member_group), len(offer_group)), dtype=np.float32
    )
    member_features, member_names = _features(member_group, "taste:", "member:")
    offer_features, offer_names = _features(offer_group, "kind:", "offer:")
    training = TrainingSet(
        interactions=interactions,
        member_ids=np.array([f"m{i}" for i in range(len(member_group))]),
        offer_ids=np.array([f"o{i}" for i in range(len(offer_group))]),
        member_tiers=member_group.astype(np.int8),
        member_features=member_features,
        offer_features=offer_features,
        member_feature_names=member_names,
        offer_feature_names=offer_names,
    )
    return Planted(training=training, member_group=member_group, offer_group=offer_group)
