"""Input limits and abuse protection of the API, from ``OFFERS_*``: request size, JSON nesting, the
default per-key rate, failed authentications per client address, and the optional HSTS header. Load
once per app with ``load_limit_settings()``."""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.errors import ConfigurationError


class LimitSettings(BaseSettings):
    """What one request may carry and how often one API key may call."""

    model_config = SettingsConfigDict(env_prefix="OFFERS_", extra="ignore", frozen=True)

    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body in bytes (Content-Length or streamed); above: 413."
    )
    max_json_depth: int = Field(32, ge=2, le=1000, description="Deepest nesting of a JSON body; deeper: 400.")
    rate_per_s: float = Field(
        1000.0,
        ge=0,
        description="Default requests per second per API key (token bucket in Redis, shared by replicas); "
        '0: unlimited. A key\'s entry in OFFERS_API_KEYS may set its own "rate_per_s" and "burst".',
    )
    rate_burst: int = Field(2000, ge=1, description="Default bucket size: requests a key may send at once.")
    auth_failures_max: int = Field(
        20,
        ge=0,
        description="Failed authentications (401, 403) one client address may have per window; then 429 "
        "until the window ends, before its key is looked at (counted in Redis, shared by replicas); 0: no limit.",
    )
    auth_failures_window_s: float = Field(
        10.0, gt=0, le=86_400, description="The window of OFFERS_AUTH_FAILURES_MAX, in seconds (a fixed window)."
    )
    hsts_seconds: int = Field(
        0, ge=0, description="max-age of Strict-Transport-Security (0: header not sent; set it behind TLS)."
    )


def load_limit_settings() -> LimitSettings:
    try:
        return LimitSettings.model_validate({})
    except ValidationError as exc:
        raise ConfigurationError(
            f"invalid input-limit settings (OFFERS_MAX_*, OFFERS_RATE_*, OFFERS_AUTH_FAILURES_*): {exc}"
        ) from exc


def limits_of(app: FastAPI) -> LimitSettings:
    """The limits loaded once per app (``app.state.limit_settings``)."""
    found = getattr(app.state, "limit_settings", None)
    if found is None:
        found = app.state.limit_settings = load_limit_settings()
    return cast(LimitSettings, found)
