"""API keys: the registry parsed from OFFERS_API_KEYS, scopes, and the development key."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from recsys.access import ApiKey, KeyRegistry, Scope, digest, ensure_dev_key, key_entry, load_key_registry
from recsys.errors import ConfigurationError


def registry(**keys: list[str]) -> KeyRegistry:
    entries: dict[str, dict[str, object]] = {}
    for key, scopes in keys.items():
        entries |= key_entry(key, f"holder-{key}", scopes)
    return KeyRegistry.parse(json.dumps(entries))


def test_a_configured_key_is_found_by_its_digest() -> None:
    reg = registry(alpha=["events:write"], beta=["offers:read", "picks:read"])
    assert reg.lookup("alpha") == ApiKey("holder-alpha", frozenset({Scope.EVENTS_WRITE}))
    assert reg.lookup("beta") is not None and reg.lookup("beta").name == "holder-beta"
    assert reg.lookup("gamma") is None
    assert reg.lookup(digest("alpha")) is None  # the digest itself is not a key


@pytest.mark.parametrize(
    ("scopes", "asked", "allowed"),
    [
        (["offers:read"], "offers:read", True),
        (["offers:read"], "events:write", False),
        (["picks:read"], "offers:read", False),
        (["admin"], "catalogue:write", True),
        (["admin"], "events:write", True),
    ],
)
def test_scopes_and_admin(scopes: list[str], asked: str, allowed: bool) -> None:
    assert registry(k=scopes).lookup("k").allows(asked) is allowed


def test_no_configuration_means_no_key_is_accepted() -> None:
    assert len(load_key_registry({})) == 0
    assert load_key_registry({"OFFERS_API_KEYS": " "}).lookup("anything") is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "JSON object"),
        ('{"secret-key-in-clear": {"name": "x", "scopes": ["admin"]}}', "SHA-256 hex digest"),
        (json.dumps({digest("k"): {"scopes": ["admin"]}}), '"name"'),
        (json.dumps({digest("k"): {"name": "x", "scopes": []}}), "non-empty list"),
        (json.dumps({digest("k"): {"name": "x", "scopes": ["root"]}}), "unknown scope"),
    ],
)
def test_malformed_configuration_is_refused_clearly(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_key_registry({"OFFERS_API_KEYS": value})
    assert "secret-key-in-clear" not in str(caught.value)


def test_development_key_is_created_once_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "var" / "dev-api-key"
    key, env_value = ensure_dev_key(path)
    assert key.startswith("lo_dev_") and len(key) > 30
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_dev_key(path) == (key, env_value)
    holder = load_key_registry({"OFFERS_API_KEYS": env_value}).lookup(key)
    assert holder is not None and holder.allows(Scope.CATALOGUE_WRITE)
    assert key not in env_value


def test_a_key_may_carry_its_own_rate() -> None:
    entries = key_entry("slow", "batch-job", ["picks:read"], rate_per_s=0.5, burst=3) | key_entry(
        "plain", "app", ["offers:read"]
    )
    reg = KeyRegistry.parse(json.dumps(entries))
    assert reg.lookup("slow") == ApiKey("batch-job", frozenset({Scope.PICKS_READ}), rate_per_s=0.5, burst=3)
    plain = reg.lookup("plain")
    assert plain is not None and plain.rate_per_s is None and plain.burst is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rate_per_s": -1}, "rate_per_s must be a number >= 0"),
        ({"rate_per_s": "fast"}, "rate_per_s must be a number >= 0"),
        ({"rate_per_s": True}, "rate_per_s must be a number >= 0"),
        ({"burst": 0}, "burst must be an integer >= 1"),
        ({"burst": 2.5}, "burst must be an integer >= 1"),
    ],
)
def test_a_malformed_rate_is_refused_naming_the_key(extra: dict[str, object], message: str) -> None:
    entry = key_entry("k", "mobile-app", ["offers:read"])
    entry[digest("k")] |= extra
    with pytest.raises(ConfigurationError, match=message) as caught:
        KeyRegistry.parse(json.dumps(entry))
    assert "mobile-app" in str(caught.value)
