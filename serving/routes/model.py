"""Which model answers: the served version and what the training run recorded about it."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends

from recsys.access import Scope
from serving.deps import ReaderDep
from serving.schemas import ERROR_RESPONSES, ModelInfo
from serving.security import access_responses, require_scope

router = APIRouter(
    prefix="/v1",
    tags=["model"],
    dependencies=[Depends(require_scope(Scope.OFFERS_READ))],
    responses=access_responses(Scope.OFFERS_READ),
)

_INT_FIELDS = ("members", "offers")
_TEXT_FIELDS = ("model_name", "model_version", "family", "run_id", "trained_at", "published_at")


@router.get("/model", response_model=ModelInfo, summary="The served version and its model", responses=ERROR_RESPONSES)
async def model_info(reader: ReaderDep) -> dict[str, Any]:
    version, meta = await reader.version_meta()
    info: dict[str, Any] = {"version": version}
    info |= {k: meta[k] for k in _TEXT_FIELDS if meta.get(k)}
    info |= {k: int(meta[k]) for k in _INT_FIELDS if meta.get(k, "").isdigit()}
    try:
        metrics = orjson.loads(meta.get("metrics") or "{}")
    except orjson.JSONDecodeError:
        metrics = {"raw": meta["metrics"]}
    info["metrics"] = metrics if isinstance(metrics, dict) else {"value": metrics}
    return info
