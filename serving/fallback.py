"""Offers while Redis is unreachable: the last good catalogue (with its popular-in-tier lists and the
takedowns of its revision) kept in the process, and the tier and country of recently served members.

A mobile carousel must never be empty because Redis restarted. The copy is refreshed by a background
task (``Refresher``) every ``fallback_refresh_s`` seconds and by every answer read from Redis; answers
from it are popular-in-tier (never personalised: embeddings and candidates stay in Redis), judged by the same
eligibility rules for what is known without Redis (tier, home country, validity window, channel,
takedowns as of the copy) and marked degraded. A member not served since the process started gets
only offers every tier and region may see. Contact caps and live budgets live in Redis and are not
applied; email, whose weekly cap is among them, gets no offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

from recsys.cache import MemberRecord
from recsys.catalogue import N_TIERS, Catalogue, day_number
from recsys.contacts import ContactPolicy, ContactState
from recsys.decision import Chosen, RankingPolicy, decide
from recsys.errors import StoreError
from recsys.store import REDIS_ERRORS
from recsys.tiers import TIER_LABELS
from serving.reader import MemberView, OfferReader

log = logging.getLogger(__name__)

DEGRADED = "redis-unavailable"
DEGRADED_HEADER = "X-Offers-Degraded"
UNKNOWN_COUNTRY = "??"  # matches no region: region-restricted offers are left out
_NO_FLOATS = np.zeros(0, dtype=np.float16)
_NO_OFFERS = np.zeros(0, dtype=np.uint16)


@dataclass(frozen=True, slots=True)
class Known:
    """What the fallback keeps of a member: enough for eligibility and boosts, nothing personal."""

    tier: int
    country: str
    consent_email: bool
    points_balance: int
    qualifying_nights_ytd: int
    points_expiring_day: int

    def record(self) -> MemberRecord:
        return MemberRecord(
            tier=self.tier,
            country=self.country,
            points_balance=self.points_balance,
            qualifying_nights_ytd=self.qualifying_nights_ytd,
            points_expiring_day=self.points_expiring_day,
            consent_personalisation=False,
            consent_email=self.consent_email,
            informed=False,
            factors=_NO_FLOATS,
            bias=0.0,
            candidates=_NO_OFFERS,
        )


_STRANGER = Known(0, UNKNOWN_COUNTRY, False, 0, 0, -1)


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: str
    catalogue: Catalogue


class Fallback:
    def __init__(self, members_kept: int) -> None:
        self.members_kept = members_kept
        self.snapshot: Snapshot | None = None
        self._members: OrderedDict[str, Known] = OrderedDict()
        self.degraded = False  # the last answer came from here (logged once per outage)

    def seen(self, member_id: str, view: MemberView) -> None:
        """Keep what an answer read from Redis tells (the member, the served catalogue)."""
        snapshot = self.snapshot
        if snapshot is None or snapshot.catalogue is not view.catalogue:
            self.snapshot = Snapshot(view.version, view.catalogue)
        if self.degraded:
            self.degraded = False
            log.warning("Redis answers again: offers read from Redis")
        if self.members_kept == 0:
            return
        r = view.record
        members = self._members
        members[member_id] = Known(
            r.tier, r.country, r.consent_email, r.points_balance, r.qualifying_nights_ytd, r.points_expiring_day
        )
        members.move_to_end(member_id)
        if len(members) > self.members_kept:
            members.popitem(last=False)

    async def refresh(self, reader: OfferReader) -> None:
        """Copy the served version's catalogue at its current revision (raises StoreError)."""
        version = await reader.served_version()
        try:
            revision = await reader.client.get(reader.keys.catalogue_revision)
        except REDIS_ERRORS as exc:
            raise StoreError(f"Redis failed while reading the catalogue revision: {exc}") from exc
        catalogue = await reader.catalogue(version, int(revision or 0))
        self.snapshot = Snapshot(version, catalogue)

    def answer(
        self,
        member_id: str,
        *,
        channel: str,
        day: date,
        now: datetime,
        limit: int,
        contact_policy: ContactPolicy,
        ranking_policy: RankingPolicy,
    ) -> dict[str, Any] | None:
        """The degraded body for ``member_id``, or None when no copy was ever taken."""
        snapshot = self.snapshot
        if snapshot is None:
            return None
        if not self.degraded:
            self.degraded = True
            log.warning("Redis unreachable: offers answered from the copy of version %s", snapshot.version)
        known = self._members.get(member_id)
        record = (known or _STRANGER).record()
        catalogue = snapshot.catalogue
        chosen: list[Chosen] = []
        if channel != "email":
            chosen = decide(
                record,
                catalogue,
                channel=channel,
                day=day_number(day),
                now=now,
                limit=limit if known else 4 * limit,
                contacts=ContactState(),
                live_redeemed={},
                contact_policy=contact_policy,
                ranking_policy=ranking_policy,
            ).offers
        if known is None:  # tier unknown: only offers with no tier ceiling (the floor is classic already)
            chosen = [c for c in chosen if int(catalogue.max_tier[c.index]) >= N_TIERS - 1][:limit]
        return {
            "member_id": member_id,
            "version": snapshot.version,
            "tier": None if known is None else TIER_LABELS[min(record.tier, len(TIER_LABELS) - 1)],
            "channel": channel,
            "on": day.isoformat(),
            "offers": [
                {
                    **catalogue.display[c.index],
                    "score": c.score,
                    "model_score": c.model_score,
                    "reasons": c.reasons,
                    "reason_details": c.details,
                }
                for c in chosen
            ],
            "degraded": DEGRADED,
        }


class Refresher:
    """Calls ``refresh`` every ``every_s`` seconds in a background task, from ``start`` until ``stop``;
    a refresh that raises ``StoreError`` waits for the next turn.

    ``stop`` ends the loop with a flag as well as a cancellation. On Python 3.11 ``asyncio.wait_for``,
    which redis-py wraps around every write, returns the write's result instead of raising when the
    cancellation arrives just as the write completes (fixed in 3.12); a loop ended by cancellation alone
    then runs on, and the app's shutdown waits for it for ever."""

    def __init__(self, refresh: Callable[[], Awaitable[None]], every_s: float) -> None:
        self._refresh = refresh
        self._every_s = every_s
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """End the loop and wait for it (a refresh in progress is cancelled)."""
        self._stopping.set()
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(StoreError):
                await self._refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._every_s)
