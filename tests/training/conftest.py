"""Shared fixtures of the training tests: one small synthetic programme and a fresh MLflow store."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from recsys.settings import Settings, get_settings
from training.generate import generate


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, members=1500, seed=3, as_of=date(2026, 11, 1), show_progress=False)
    return out


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    return get_settings(home=tmp_path)
