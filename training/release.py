"""From the registry to Redis: resolve a registered version, fetch its bundle, publish it."""

from __future__ import annotations

import tempfile
from pathlib import Path

from recsys.cache import Keys
from recsys.settings import Settings
from recsys.store import RedisEndpoint
from training import tracking
from training.bundle import ServingBundle
from training.publish import PublishResult, publish


def publish_registered(
    settings: Settings,
    endpoint: RedisEndpoint,
    version: str | None = None,
    *,
    show_progress: bool = True,
    workers: int = 1,
) -> tuple[PublishResult, ServingBundle]:
    """Publish ``version`` of the registered model (default: the champion, else the newest); with
    ``workers`` > 1 the members are scored and written by that many Ray workers."""
    client = tracking.configure(settings)
    found = tracking.resolve(client, settings.model_name, version)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = ServingBundle.load(tracking.download(found, Path(tmp)))
    bundle.meta["model_version"] = str(found.version)
    keys = Keys(settings.key_prefix)
    if workers > 1:
        from training.publish_ray import publish_distributed

        result = publish_distributed(
            endpoint,
            bundle,
            keys=keys,
            workers=workers,
            candidates=settings.candidates_per_member,
            versions_kept=settings.versions_kept,
            show_progress=show_progress,
        )
        return result, bundle
    result = publish(
        endpoint.client(),
        bundle,
        keys=keys,
        candidates=settings.candidates_per_member,
        versions_kept=settings.versions_kept,
        show_progress=show_progress,
    )
    return result, bundle
