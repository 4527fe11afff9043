"""API keys and their scopes. The server keeps only each key's SHA-256 digest (``OFFERS_API_KEYS``),
so a leaked configuration does not leak keys; presented keys are hashed and compared in constant time.

``OFFERS_API_KEYS`` is a JSON object: ``{"<sha256 hex of the key>": {"name": "email-system",
"scopes": ["picks:read"]}, ...}``; ``key_entry`` builds the entry of a new key. An entry may also set
its own request rate, ``"rate_per_s"`` (0: unlimited) and ``"burst"``, over the settings' default
(``OFFERS_RATE_PER_S`` / ``OFFERS_RATE_BURST``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from recsys.errors import ConfigurationError

ENV_VAR = "OFFERS_API_KEYS"
DEV_KEY_PREFIX = "lo_dev_"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class Scope(StrEnum):
    OFFERS_READ = "offers:read"  # a member's offers in real time
    PICKS_READ = "picks:read"  # weekly picks in bulk (email systems)
    EVENTS_WRITE = "events:write"  # feedback events
    CATALOGUE_WRITE = "catalogue:write"  # live offer edits and takedowns
    ADMIN = "admin"  # everything, including erasing a member


@dataclass(frozen=True)
class ApiKey:
    """Who holds a key (never the key itself) and what it may do."""

    name: str
    scopes: frozenset[Scope]
    rate_per_s: float | None = None  # None: the default from settings
    burst: int | None = None

    def allows(self, scope: Scope | str) -> bool:
        return Scope.ADMIN in self.scopes or Scope(scope) in self.scopes


def digest(key: str) -> str:
    """The SHA-256 hex digest under which ``key`` is configured."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRegistry:
    """The configured keys by digest; load it once at start-up."""

    keys: tuple[tuple[bytes, ApiKey], ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, key: str) -> ApiKey | None:
        """The holder of ``key``, or None. Every configured digest is compared, in constant time each."""
        presented = digest(key).encode()
        found: ApiKey | None = None
        for configured, holder in self.keys:
            if hmac.compare_digest(presented, configured):
                found = holder
        return found

    @classmethod
    def parse(cls, value: str | None) -> KeyRegistry:
        """Parse the ``OFFERS_API_KEYS`` JSON; anything malformed is a ConfigurationError that says what
        (without echoing the value)."""
        if value is None or not value.strip():
            return cls()
        try:
            raw = json.loads(value)
        except ValueError as exc:
            raise ConfigurationError(f"{ENV_VAR} is not valid JSON: {exc.args[0]}") from None
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{ENV_VAR} must be a JSON object mapping SHA-256 hex digests to key entries")
        allowed = ", ".join(s.value for s in Scope)
        keys = []
        for position, (hexdigest, entry) in enumerate(raw.items()):
            where = f"{ENV_VAR} entry {position + 1}"
            if not isinstance(hexdigest, str) or not _DIGEST.match(hexdigest.lower()):
                raise ConfigurationError(f"{where}: the name must be the SHA-256 hex digest of the key (64 hex digits)")
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
                raise ConfigurationError(f'{where}: expected {{"name": "...", "scopes": [...]}}')
            scopes = entry.get("scopes")
            if not isinstance(scopes, list) or not scopes:
                raise ConfigurationError(f"{where} ({entry['name']}): scopes must be a non-empty list among {allowed}")
            try:
                parsed = frozenset(Scope(s) for s in scopes)
            except ValueError:
                raise ConfigurationError(
                    f"{where} ({entry['name']}): unknown scope in {scopes}; expected among {allowed}"
                ) from None
            rate_per_s, burst = _rate(entry, f"{where} ({entry['name']})")
            keys.append((hexdigest.lower().encode(), ApiKey(entry["name"], parsed, rate_per_s, burst)))
        return cls(tuple(keys))


def _rate(entry: dict[str, object], where: str) -> tuple[float | None, int | None]:
    """The entry's optional ``rate_per_s`` (>= 0) and ``burst`` (>= 1)."""
    rate, burst = entry.get("rate_per_s"), entry.get("burst")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0):
        raise ConfigurationError(f"{where}: rate_per_s must be a number >= 0 (0: unlimited)")
    if burst is not None and (isinstance(burst, bool) or not isinstance(burst, int) or burst < 1):
        raise ConfigurationError(f"{where}: burst must be an integer >= 1")
    return (None if rate is None else float(rate)), burst


def load_key_registry(environ: Mapping[str, str] | None = None) -> KeyRegistry:
    """The keys configured in ``OFFERS_API_KEYS`` (none configured: an empty registry refusing every key)."""
    return KeyRegistry.parse((os.environ if environ is None else environ).get(ENV_VAR))


def key_entry(
    key: str, name: str, scopes: Iterable[Scope | str], *, rate_per_s: float | None = None, burst: int | None = None
) -> dict[str, dict[str, object]]:
    """The ``OFFERS_API_KEYS`` entry of one key (merge several with ``|``, then ``json.dumps``)."""
    entry: dict[str, object] = {"name": name, "scopes": sorted(Scope(s).value for s in scopes)}
    if rate_per_s is not None:
        entry["rate_per_s"] = rate_per_s
    if burst is not None:
        entry["burst"] = burst
    return {digest(key): entry}


def ensure_dev_key(path: Path) -> tuple[str, str]:
    """A development key with every scope, created once under ``path`` (e.g. ``var/dev-api-key``) and
    reused on later runs; returns the key (to print) and the ``OFFERS_API_KEYS`` value that accepts it."""
    try:
        key = path.read_text().strip() if path.exists() else ""
        if not key:
            key = DEV_KEY_PREFIX + secrets.token_urlsafe(32)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(key + "\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot read or create the development API key at {path}: {exc}") from exc
    return key, json.dumps(key_entry(key, "development", [Scope.ADMIN]))
