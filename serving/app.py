"""The FastAPI scorer: ``create_app`` wires settings, Redis, routers and error mapping."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from recsys.cache import Keys
from recsys.contacts import ContactPolicy, load_contact_policy
from recsys.decision import RankingPolicy, load_ranking_policy
from recsys.events import load_event_settings
from recsys.rewards import load_rewards_settings
from recsys.settings import Settings, get_settings
from recsys.store import open_redis
from serving import errors, security
from serving.access_log import AccessLog
from serving.auth_failures import FailedAuthLimit
from serving.body_guard import BodyGuard
from serving.fallback import Fallback, Refresher
from serving.headers import SecurityHeaders
from serving.hot_path import OffersHotPath
from serving.limits import load_limit_settings
from serving.reader import OfferReader
from serving.responses import OrjsonResponse
from serving.routes import catalogue, events, health, members, model, offers, picks, rewards


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    security.load_access(app)  # a malformed OFFERS_API_KEYS fails start-up, not the first request
    if app.state.contact_policy is None:
        app.state.contact_policy = load_contact_policy()
    if app.state.ranking_policy is None:
        app.state.ranking_policy = load_ranking_policy()
    app.state.event_settings = load_event_settings()
    app.state.rewards_settings = load_rewards_settings()
    endpoint = open_redis(settings)
    client = await endpoint.aconnect()
    app.state.endpoint = endpoint
    app.state.reader = reader = OfferReader(client, Keys(settings.key_prefix))
    app.state.fallback = fallback = Fallback(settings.fallback_members)
    refresher = Refresher(functools.partial(fallback.refresh, reader), settings.fallback_refresh_s)
    refresher.start()
    try:
        yield
    finally:
        await refresher.stop()
        await reader.aclose()
        await client.aclose()
        endpoint.close()


def create_app(
    settings: Settings | None = None,
    *,
    contact_policy: ContactPolicy | None = None,
    ranking_policy: RankingPolicy | None = None,
    hot_path: bool = True,
) -> FastAPI:
    """The API, reading Redis as ``settings`` (default: from the environment) says; the contact and
    ranking policies default to their ``OFFERS_CONTACT_*`` / ``OFFERS_RANKING_*`` settings. With
    ``hot_path=False`` every offers request goes through FastAPI's own machinery (``serving.hot_path``)."""
    settings = settings or get_settings()
    telemetry = settings.telemetry  # FastAPI's OpenTelemetry check costs each request even with no provider
    app = FastAPI(
        title="Loyalty Offers",
        summary="Personalised, tier-aware offers for loyalty members.",
        version="1",
        lifespan=_lifespan,
        default_response_class=OrjsonResponse,
        telemetry={"tracing": telemetry, "metrics": telemetry, "logs": telemetry},
    )
    app.state.settings = settings
    app.state.contact_policy, app.state.ranking_policy = contact_policy, ranking_policy
    errors.install(app)
    security.install(app)
    app.state.limit_settings = limits = load_limit_settings()
    if hot_path:
        app.add_middleware(OffersHotPath)  # innermost: after every check below, before FastAPI's routing
    app.add_middleware(BodyGuard, limits=limits)  # the last added runs first: headers, log, body checks
    app.add_middleware(FailedAuthLimit, limits=limits)  # an address over it is refused before its body is read
    app.add_middleware(AccessLog)
    app.add_middleware(SecurityHeaders, limits=limits)
    for router in (
        offers.router,
        picks.router,
        rewards.router,
        events.router,
        catalogue.router,
        members.router,
        model.router,
        health.router,
    ):
        app.include_router(router)
    return app
