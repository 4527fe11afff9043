"""MLflow: where runs, metrics, artifacts and registered model versions live.

A local SQLite store under ``var/mlflow`` by default; ``MLFLOW_TRACKING_URI`` points at a tracking
server instead. Registered versions carry the serving bundle as their source; the ``champion``
alias names the version that is published by default.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from recsys.errors import ModelError
from recsys.settings import Settings

CHAMPION = "champion"
BUNDLE_PATH = "bundle"
WEIGHTS_TAG = "weights"  # a version's tag holding the interaction weights it was trained with (JSON)

log = logging.getLogger(__name__)


def configure(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    # Our own plain artifacts need none of MLflow's model logging integrations.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        if mlflow.get_experiment_by_name(settings.experiment) is None:
            location = settings.artifact_root.as_uri() if uri.startswith("sqlite:") else None
            with contextlib.suppress(MlflowException):  # another process created it meanwhile
                mlflow.create_experiment(settings.experiment, artifact_location=location)
        mlflow.set_experiment(settings.experiment)
    except MlflowException as exc:
        raise ModelError(f"MLflow tracking store at {uri} is not usable: {exc}") from exc
    return MlflowClient()


def register(client: MlflowClient, name: str, run_id: str, artifact_uri: str, tags: dict[str, str]) -> ModelVersion:
    """Register the bundle logged by ``run_id`` as a new version of ``name``."""
    with contextlib.suppress(MlflowException):
        client.create_registered_model(name, description="Loyalty Offers ranking model (serving bundle)")
    version = client.create_model_version(name, source=artifact_uri, run_id=run_id, tags=tags)
    return version


def champion(client: MlflowClient, name: str) -> ModelVersion | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    client.set_registered_model_alias(name, CHAMPION, version)


def resolve(client: MlflowClient, name: str, version: str | None = None) -> ModelVersion:
    """The named version, else the champion, else the newest registered version."""
    try:
        if version is not None:
            return client.get_model_version(name, version)
        found = champion(client, name)
        if found is not None:
            return found
        versions = client.search_model_versions(f"name = '{name}'", order_by=["version_number DESC"], max_results=1)
    except MlflowException as exc:
        raise ModelError(f"model {name!r} version {version or 'champion'} not found: {exc}") from exc
    if not versions:
        raise ModelError(f"no version of model {name!r} is registered yet; run `offers train` first")
    return versions[0]


def download(version: ModelVersion, dst: Path) -> Path:
    """Fetch a version's bundle into ``dst`` and return its folder."""
    dst.mkdir(parents=True, exist_ok=True)
    try:
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dst)))
    except MlflowException as exc:
        raise ModelError(f"could not download model version {version.version}: {exc}") from exc


def git_commit() -> str:
    """The commit of the code that trained a model, or 'unknown' outside a checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"
