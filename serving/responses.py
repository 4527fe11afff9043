"""JSON responses rendered with orjson: routes hand over plain dicts and skip a second validation.

A ``JSONResponse`` subclass, so the OpenAPI page documents each route's ``response_model`` (FastAPI
describes the body of any other response class as a bare string)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
