"""Popularity overall and within the tier, as embeddings the shared ``recommend`` ranks."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from models.base import TrainingSet
from models.families import create

# Tier 0 members love offer 0, tier 1 members offer 2; offer 1 is liked a little by both; no one offer 3.
INTERACTIONS = np.array(
    [
        [5, 1, 0, 0],
        [5, 0, 0, 0],
        [2, 0, -1, 0],
        [0, 1, 7, 0],
        [0, 0, 2, 0],
        [1, 0, 3, 0],
    ],
    dtype=np.float32,
)
TIERS = np.array([0, 0, 0, 1, 1, 1], dtype=np.int8)
NAMES = ("tier:classic", "tier:silver", "tier:gold", "tier:platinum", "tier:diamond", "member:a")


def _training() -> TrainingSet:
    features = sp.csr_matrix((np.ones(6, np.float32), (np.arange(6), TIERS.astype(np.int64))), shape=(6, 6))
    return TrainingSet(
        interactions=sp.csr_matrix(INTERACTIONS),
        member_ids=np.array([f"m{i}" for i in range(6)]),
        offer_ids=np.array([f"o{i}" for i in range(4)]),
        member_tiers=TIERS,
        member_features=features,
        member_feature_names=NAMES,
    )


def test_overall_popularity_ranks_by_members_with_positive_evidence() -> None:
    model = create("popularity", within_tier=False).fit(_training())
    ids, scores = model.recommend(np.arange(6), k=4)
    assert (ids == ids[0]).all()
    assert list(ids[0]) == [0, 2, 1, 3]  # the dismissal of offer 2 does not count for it
    np.testing.assert_allclose(scores[0], [4 / 6, 3 / 6, 2 / 6, 0])


def test_within_tier_each_tier_sees_its_favourites_first() -> None:
    model = create("popularity", within_tier=True, smoothing=0.0).fit(_training())
    ids, scores = model.recommend(np.arange(6), k=2)
    assert list(ids[0]) == [0, 1] and (ids[3:, 0] == 2).all()
    np.testing.assert_allclose(scores[0], [1.0, 1 / 3])
    np.testing.assert_allclose(scores[3], [1.0, 1 / 3])
    assert model.member_embeddings().informed.all()


def test_smoothing_pulls_a_tier_towards_the_overall_share() -> None:
    sharp = create("popularity", smoothing=0.0).fit(_training()).offer_embeddings().factors
    smooth = create("popularity", smoothing=6.0).fit(_training()).offer_embeddings().factors
    overall = sharp[:, 5]
    assert np.all(np.abs(smooth[:, 1] - overall) <= np.abs(sharp[:, 1] - overall) + 1e-7)
    # Diamond has no members: it falls back to the overall share.
    np.testing.assert_allclose(smooth[:, 4], overall)


def test_a_new_member_is_ranked_by_the_tier_in_their_features() -> None:
    model = create("popularity", smoothing=0.0).fit(_training())
    features = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 5])), shape=(3, 6), dtype=np.float32)
    emb = model.member_embeddings(member_features=features)
    assert emb.informed.all()
    ids, _ = model.recommend(np.arange(3), k=1, member_emb=emb)
    assert ids[:, 0].tolist() == [2, 0, 0]  # silver -> its favourite; no tier -> the overall favourite


def test_an_offer_never_seen_has_no_popularity() -> None:
    model = create("popularity").fit(_training())
    emb = model.offer_embeddings(offer_features=sp.csr_matrix((2, 3), dtype=np.float32))
    assert not emb.informed.any() and not emb.factors.any()
