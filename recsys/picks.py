"""Weekly email picks: the real-time decision applied to every email-consented member for one ISO
week, stable for the week.

A member's picks depend only on the member, the week, the published version and the live rules
(takedowns, budgets, suppressions): the decision runs as of the week's Monday 00:00 UTC, pulls write
nothing, and the week's email allotment is the weekly cap itself (the picks are what the email system
sends that week). Members are enumerated in the order publish stored them, so a cursor of
(version, position) pages through every member exactly once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from recsys.cache import MemberRecord
from recsys.catalogue import Catalogue, day_number
from recsys.contacts import ContactPolicy, ContactState
from recsys.decision import Chosen, RankingPolicy, decide
from recsys.profiles import EMPTY_PROFILE, MemberProfile, read_profile

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def week_start(week: str) -> datetime:
    """Monday 00:00 UTC of an ISO week such as ``2026-W48``; ValueError naming the format otherwise."""
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"week must look like 2026-W48, got {week!r}")
    try:
        return datetime.fromisocalendar(int(match[1]), int(match[2]), 1).replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"{week} is not a week of the ISO calendar") from exc


@dataclass(frozen=True)
class Cursor:
    version: str
    position: int

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.version}:{self.position}".encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            version, position = raw.split(":")
            cursor = cls(version, int(position))
        except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
            raise ValueError("cursor is not one this service handed out") from exc
        if not version.isdigit() or cursor.position < 0:
            raise ValueError("cursor is not one this service handed out")
        return cursor


def member_picks(
    record: MemberRecord,
    catalogue: Catalogue,
    contacts: ContactState,
    live_redeemed: Mapping[str, int],
    *,
    week: datetime,
    contact_policy: ContactPolicy,
    ranking_policy: RankingPolicy,
    profile: MemberProfile = EMPTY_PROFILE,
) -> list[Chosen]:
    """One member's picks for the week starting ``week``; empty without email consent."""
    if not record.consent_email:
        return []
    allotment = dataclasses.replace(contacts, email_week=None, email_count=0)
    return decide(
        record,
        catalogue,
        channel="email",
        day=day_number(week),
        now=week,
        limit=contact_policy.email_weekly_cap,
        contacts=allotment,
        live_redeemed=live_redeemed,
        contact_policy=contact_policy,
        ranking_policy=ranking_policy,
        profile=profile,
    ).offers


def page_rows(
    member_ids: Sequence[str],
    blobs: Sequence[bytes | None],
    contacts: Sequence[Mapping[bytes, bytes]],
    catalogue: Catalogue,
    live_redeemed: Mapping[str, int],
    *,
    week: datetime,
    contact_policy: ContactPolicy,
    ranking_policy: RankingPolicy,
) -> list[dict[str, object]]:
    """Picks of one page of members (erased members, whose record is gone, and members without email
    consent are left out), as response rows."""
    rows: list[dict[str, object]] = []
    for member_id, blob, raw in zip(member_ids, blobs, contacts, strict=True):
        if blob is None:
            continue
        record = MemberRecord.unpack(blob)
        if not record.consent_email:
            continue
        chosen = member_picks(
            record,
            catalogue,
            ContactState.from_redis(raw),
            live_redeemed,
            week=week,
            contact_policy=contact_policy,
            ranking_policy=ranking_policy,
            profile=read_profile(blob, record),
        )
        rows.append(
            {
                "member_id": member_id,
                "offers": [
                    {
                        "offer_id": str(catalogue.offer_ids[c.index]),
                        "title": catalogue.display[c.index].get("title"),
                        "score": c.score,
                        "reasons": list(c.reasons),
                        "reason_details": c.details,
                    }
                    for c in chosen
                ],
            }
        )
    return rows
