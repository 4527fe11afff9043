"""API keys the tests use: one per kind of caller, all accepted by ``keys_env()``."""

from __future__ import annotations

import json

from recsys.access import Scope, key_entry

KEYS: dict[str, tuple[str, list[Scope]]] = {
    "events-key": ("app-backend", [Scope.EVENTS_WRITE]),
    "catalogue-key": ("merchandising", [Scope.CATALOGUE_WRITE]),
    "reader-key": ("mobile-app", [Scope.OFFERS_READ, Scope.PICKS_READ]),
    "admin-key": ("operator", [Scope.ADMIN]),
}


def keys_env() -> str:
    """An ``OFFERS_API_KEYS`` value accepting every key of ``KEYS``."""
    entries: dict[str, dict[str, object]] = {}
    for key, (name, scopes) in KEYS.items():
        entries |= key_entry(key, name, scopes)
    return json.dumps(entries)


def auth(key: str) -> dict[str, str]:
    return {"X-API-Key": key}
