"""The floor the offers endpoint is measured against: the least a FastAPI endpoint can do here, read one
member's packed record from the same Redis (one GET) and return its bytes.

Run it like the API, with the same uvicorn settings: ``uvicorn benchmarks.floor_app:create_floor_app
--factory``. It reads ``REDIS_URL`` and ``OFFERS_KEY_PREFIX`` like the product and serves the version
published when it starts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aredis
from fastapi import FastAPI
from starlette.responses import Response

from recsys.cache import Keys
from recsys.errors import NotPublishedError
from recsys.settings import get_settings

PATH = "/floor/{member_id}"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    client = aredis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", max_connections=256)
    keys = Keys(settings.key_prefix)
    version = await client.get(keys.current)
    if version is None:
        await client.aclose()
        raise NotPublishedError("the floor app needs a published version")
    app.state.client = client
    served = version.decode() if isinstance(version, bytes) else str(version)
    app.state.prefix = keys.member(served, "\x00").split("\x00")[0]  # key of a member: prefix + id + "}"
    try:
        yield
    finally:
        await client.aclose()


def create_floor_app() -> FastAPI:
    app = FastAPI(title="Serving floor", lifespan=_lifespan, openapi_url=None)

    @app.get(PATH)
    async def member_value(member_id: str) -> Response:
        value = await app.state.client.get(f"{app.state.prefix}{member_id}}}")
        if value is None:
            return Response(status_code=404)
        return Response(content=value, media_type="application/octet-stream")

    return app
