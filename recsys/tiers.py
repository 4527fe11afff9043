"""The programme's tiers, in order: a member qualifies for an offer when their tier is at least its minimum."""

from __future__ import annotations

from enum import IntEnum


class Tier(IntEnum):
    CLASSIC = 0
    SILVER = 1
    GOLD = 2
    PLATINUM = 3
    DIAMOND = 4

    @classmethod
    def parse(cls, value: str) -> Tier:
        """Parse a tier name case-insensitively; raise ValueError naming the allowed values."""
        try:
            return cls[str(value).strip().upper()]
        except KeyError:
            allowed = ", ".join(t.label for t in cls)
            raise ValueError(f"unknown tier {value!r}; expected one of {allowed}") from None

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def next(self) -> Tier | None:
        return Tier(self + 1) if self < Tier.DIAMOND else None


TIER_LABELS: tuple[str, ...] = tuple(t.label for t in Tier)

# Qualifying nights in a calendar year needed to hold each tier (used by the near-next-tier rule
# and by the sample-data generator).
QUALIFYING_NIGHTS: dict[Tier, int] = {
    Tier.CLASSIC: 0,
    Tier.SILVER: 10,
    Tier.GOLD: 25,
    Tier.PLATINUM: 50,
    Tier.DIAMOND: 75,
}
