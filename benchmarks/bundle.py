"""The serving bundle as ``offers train`` packs it (embeddings, catalogue, profiles, offer features), for
the benchmarks that fit a model themselves: what they publish is what the product publishes."""

from __future__ import annotations

from datetime import UTC, datetime

from models.base import Recommender, TrainingSet
from recsys.dataset import LoyaltyData
from recsys.features import FeatureSpace
from recsys.profiles import member_profiles, offer_feature_table
from training.bundle import ServingBundle
from training.train import popular_by_tier, redeemed_counts


def product_bundle(data: LoyaltyData, training: TrainingSet, space: FeatureSpace, model: Recommender) -> ServingBundle:
    space_json = space.to_json(member_ids=False)
    return ServingBundle(
        member_ids=training.member_ids,
        member=model.member_embeddings(),
        offer_ids=training.offer_ids,
        offer=model.offer_embeddings(),
        members=data.members,
        offers=data.offers,
        partners=data.partners,
        popular_by_tier=popular_by_tier(training),
        redeemed=redeemed_counts(data, training.offer_ids),
        meta={
            "model_name": "bench",
            "family": model.family,
            "run_id": "bench",
            "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        feature_space_json=space_json,
        offer_features=offer_feature_table(model, space_json),
        profiles=member_profiles(data, training.member_ids),
    )
