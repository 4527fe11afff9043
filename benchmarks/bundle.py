"""The serving bundle as ``offers train`` packs it, for the benchmarks that fit a model themselves: what
they publish is what the product publishes."""

from __future__ import annotations

from datetime import UTC, datetime

from models.base import Recommender, TrainingSet
from recsys.dataset import LoyaltyData
from recsys.features import FeatureSpace
from training.bundle import ServingBundle
from training.train import serving_bundle


def product_bundle(data: LoyaltyData, training: TrainingSet, space: FeatureSpace, model: Recommender) -> ServingBundle:
    trained_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {"model_name": "bench", "family": model.family, "run_id": "bench", "trained_at": trained_at}
    return serving_bundle(data, training, space, model, meta)
