"""Liveness and readiness for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from serving.deps import ReaderDep
from serving.schemas import ErrorBody, Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    summary="Redis is reachable and a version is published",
    responses={503: {"model": ErrorBody, "description": "Not ready: Redis unreachable or nothing published."}},
)
async def readyz(reader: ReaderDep) -> dict[str, str]:
    await reader.ping()
    return {"status": "ready", "version": await reader.served_version()}
