"""The API with the test API keys configured and no key sent by default, for tests of access rules."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

import tests.conftest as conftest
from recsys.access import ENV_VAR
from recsys.settings import Settings
from serving.app import create_app
from tests.support.keys import KEYS, auth, keys_env

__all__ = ["KEYS", "auth", "create_live_app", "keys_env", "live_api"]


def create_live_app(settings: Settings) -> FastAPI:
    return create_app(settings)


@contextlib.contextmanager
def live_api(settings: Settings, monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[httpx.Client]:
    """The API under uvicorn (``tests.conftest.running_api``) with the write side and the test keys."""
    monkeypatch.setenv(ENV_VAR, keys_env())
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with conftest.running_api(settings, key=None) as client:
        yield client
