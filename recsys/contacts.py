"""Contact state and contact policy: what a member has seen, clicked, dismissed and redeemed, and the
rules that stop an offer from being shown for ever (caps shared by every channel, weekly email cap,
rotation).

The state of one member lives in the hash ``Keys.member_contacts(member_id)`` (hash tag = member id,
the slot of their member record), written only by ``recsys.events.record_events``. The request path
reads it with one ``HGETALL`` in its pipeline and calls the pure functions below, so a cap takes
effect on the first request after the event that triggers it. Fields (timestamps are epoch seconds):

``i:<offer>``  the last impression times of the offer, ascending, comma-separated (at most
               ``ContactPolicy.impressions_kept``)
``c:<offer>``  the last click on the offer
``d:<offer>``  the last dismissal of the offer
``r:<offer>``  how many times the member redeemed the offer
``ew``         email impressions in the member's latest ISO week, as ``<week>:<count>`` (e.g. ``2025-W07:2``)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from recsys.errors import ConfigurationError

DAY = 86_400
IMPRESSIONS = "i:"
CLICK = "c:"
DISMISS = "d:"
REDEEMED = "r:"
EMAIL_WEEK = "ew"


def iso_week(moment: datetime) -> str:
    """The ISO week of a moment (in its own time zone; pass UTC), e.g. ``2025-W07``."""
    year, week, _ = moment.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


@dataclass(frozen=True)
class ContactState:
    """One member's contact state as read from Redis (empty for a member never contacted)."""

    impressions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    clicks: dict[str, int] = field(default_factory=dict)
    dismissals: dict[str, int] = field(default_factory=dict)
    redeemed: dict[str, int] = field(default_factory=dict)
    email_week: str | None = None
    email_count: int = 0

    @classmethod
    def from_redis(cls, mapping: Mapping[bytes, bytes] | Mapping[str, str]) -> ContactState:
        """Parse the raw ``HGETALL`` of ``Keys.member_contacts``; unreadable fields are skipped, so a
        damaged field never fails a request."""
        impressions: dict[str, tuple[int, ...]] = {}
        clicks: dict[str, int] = {}
        dismissals: dict[str, int] = {}
        redeemed: dict[str, int] = {}
        week: str | None = None
        count = 0
        for raw_key, raw_value in mapping.items():
            key, value = _text(raw_key), _text(raw_value)
            try:
                if key.startswith(IMPRESSIONS):
                    impressions[key[2:]] = tuple(int(t) for t in value.split(",") if t)
                elif key.startswith(CLICK):
                    clicks[key[2:]] = int(value)
                elif key.startswith(DISMISS):
                    dismissals[key[2:]] = int(value)
                elif key.startswith(REDEEMED):
                    redeemed[key[2:]] = int(value)
                elif key == EMAIL_WEEK:
                    text, _, number = value.partition(":")
                    week, count = text, int(number)
            except ValueError:
                continue
        return cls(impressions, clicks, dismissals, redeemed, week, count)

    def redemptions(self, offer_id: str) -> int:
        """How many times the member redeemed ``offer_id``."""
        return self.redeemed.get(offer_id, 0)

    def limit_reached(self, per_member_limits: Mapping[str, int | None]) -> set[str]:
        """Offers whose per-member redemption limit (offer id -> limit, None = unlimited) the member reached."""
        return {
            offer_id
            for offer_id, count in self.redeemed.items()
            if (limit := per_member_limits.get(offer_id)) is not None and count >= limit
        }


class ContactPolicy(BaseSettings):
    """Contact rules shared by every channel and by real-time and batch picks; each one can be set
    from the environment (``OFFERS_CONTACT_IMPRESSION_CAP=5`` ...)."""

    model_config = SettingsConfigDict(env_prefix="OFFERS_CONTACT_", extra="ignore", frozen=True)

    impression_cap: int = Field(
        3, ge=1, description="Impressions without a click, within impression_window_days, that suppress an offer."
    )
    impression_window_days: float = Field(7, gt=0, description="Window in which impression_cap impressions count.")
    impression_suppress_days: float = Field(
        14, ge=0, description="How long an offer stays suppressed for a member after reaching impression_cap."
    )
    dismiss_suppress_days: float = Field(30, ge=0, description="How long a dismissed offer stays suppressed.")
    email_weekly_cap: int = Field(3, ge=0, description="Offers that may reach one member by email per ISO week.")
    rotation_days: float = Field(
        3, ge=0, description="Impressions this recent make an offer rank lower (rotation); 0 turns rotation off."
    )
    rotation_discount: float = Field(
        0.8, gt=0, le=1, description="Score multiplier per recent impression: 0.8 ** impressions in rotation_days."
    )
    impressions_kept: int = Field(
        16, ge=1, le=256, description="Impression times kept per member and offer (at least impression_cap)."
    )
    contact_ttl_days: int = Field(
        400, ge=1, description="A member's contact state is dropped this long after their last event."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ContactPolicy:
        if self.impressions_kept < self.impression_cap:
            raise ValueError(
                f"impressions_kept ({self.impressions_kept}) must be at least impression_cap ({self.impression_cap})"
            )
        longest = max(self.impression_window_days + self.impression_suppress_days, self.dismiss_suppress_days)
        if self.contact_ttl_days < longest:
            raise ValueError(
                f"contact_ttl_days ({self.contact_ttl_days}) must cover the longest suppression ({longest})"
            )
        return self

    def suppressed(self, state: ContactState, now: datetime) -> set[str]:
        """Offers the member must not be shown at ``now``: dismissed recently, or shown ``impression_cap``
        times within ``impression_window_days`` without a click since, less than ``impression_suppress_days`` ago."""
        t = now.timestamp()
        out = {o for o, at in state.dismissals.items() if t < at + self.dismiss_suppress_days * DAY}
        window = self.impression_window_days * DAY
        hold = self.impression_suppress_days * DAY
        k = self.impression_cap
        for offer_id, times in state.impressions.items():
            if offer_id in out:
                continue
            clicked = state.clicks.get(offer_id, -1)
            shown = sorted(x for x in times if clicked < x <= t)
            for j in range(len(shown) - 1, k - 2, -1):
                if shown[j] + hold <= t:
                    break
                if shown[j] - shown[j - k + 1] <= window:
                    out.add(offer_id)
                    break
        return out

    def email_remaining(self, state: ContactState, week: str) -> int:
        """Offers that may still reach the member by email in ISO week ``week`` (see ``iso_week``)."""
        used = state.email_count if state.email_week == week else 0
        return max(self.email_weekly_cap - used, 0)

    def recent_impressions(self, state: ContactState, now: datetime) -> dict[str, int]:
        """Impressions of each offer within ``rotation_days`` before ``now`` (offers never shown are absent)."""
        if self.rotation_days <= 0:
            return {}
        t = now.timestamp()
        since = t - self.rotation_days * DAY
        counts = {o: sum(1 for x in times if since <= x <= t) for o, times in state.impressions.items()}
        return {o: n for o, n in counts.items() if n}

    def rotation_weights(self, state: ContactState, now: datetime) -> dict[str, float]:
        """Score multipliers for recently shown offers (absent offers: 1.0), so members see other offers too."""
        return {o: self.rotation_discount**n for o, n in self.recent_impressions(state, now).items()}

    def excluded(self, state: ContactState, now: datetime, per_member_limits: Mapping[str, int | None]) -> set[str]:
        """Everything the request path must drop for this member: suppressed offers and offers whose
        per-member redemption limit is reached."""
        return self.suppressed(state, now) | state.limit_reached(per_member_limits)


def load_contact_policy() -> ContactPolicy:
    """The contact policy from ``OFFERS_CONTACT_*``; a bad value becomes a ConfigurationError naming it."""
    try:
        return ContactPolicy.model_validate({})
    except ValidationError as exc:
        raise ConfigurationError(f"invalid contact policy (OFFERS_CONTACT_*): {exc}") from exc
