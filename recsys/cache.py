"""The cache layout in Redis: every key built by one helper from named parts, and the compact
binary codecs of what lives under them.

Control keys share the hash tag ``{ctl}`` so the version switch is one atomic MULTI in a Redis
Cluster too; every key of one member carries the member id as hash tag so one member's reads stay
in one slot. Per-version data sits under ``<prefix>:v:<version>:`` so a new version is written
beside the served one and switched with one operation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recsys.errors import StoreError

FORMAT_VERSION = 2  # 2: candidates without their scores (recomputed from the embedding on read)
# Field of ``Keys.version_offers``: JSON of the live redemption counters when the version was
# published, so budgets count only what was redeemed after it on top of the published history.
LIVE_BASE_FIELD = "live_redeemed_base"
MEMBER_INDEX_CHUNK = 1000


@dataclass(frozen=True)
class Keys:
    prefix: str = "lo"

    # -- control (one slot) ---------------------------------------------------------------
    @property
    def current(self) -> str:
        """The served version id (a string of digits)."""
        return f"{self.prefix}:{{ctl}}:current"

    @property
    def versions(self) -> str:
        """List of published version ids, newest first (served and kept for rollback)."""
        return f"{self.prefix}:{{ctl}}:versions"

    @property
    def sequence(self) -> str:
        """Counter handing out version ids."""
        return f"{self.prefix}:{{ctl}}:seq"

    @property
    def publish_lock(self) -> str:
        return f"{self.prefix}:{{ctl}}:publish-lock"

    # -- one published version ------------------------------------------------------------
    def version_meta(self, version: str) -> str:
        """Hash: model name/version, run id, trained_at, published_at, metrics (JSON), counts, status."""
        return f"{self.prefix}:v:{version}:meta"

    def version_offers(self, version: str) -> str:
        """Hash: catalogue (JSON list in offer-index order), shape (JSON), factors, bias and popular-by-tier
        (float32 bytes); field names in ``recsys.catalogue.OffersHash``."""
        return f"{self.prefix}:v:{version}:offers"

    def member(self, version: str, member_id: str) -> str:
        """String: the packed MemberRecord of one member in one version."""
        return f"{self.prefix}:v:{version}:m:{{{member_id}}}"

    def member_index(self, version: str, chunk: int) -> str:
        """String: member ids of one version, newline-separated, ``MEMBER_INDEX_CHUNK`` per chunk, in a
        stable order (weekly picks page through them)."""
        return f"{self.prefix}:v:{version}:index:{chunk}"

    def version_pattern(self, version: str) -> str:
        return f"{self.prefix}:v:{version}:*"

    # -- live state, not versioned ------------------------------------------------------------
    @property
    def catalogue_overlay(self) -> str:
        """Hash offer_id -> offer JSON (or "null" for a takedown) applied over every version."""
        return f"{self.prefix}:{{cat}}:overlay"

    @property
    def catalogue_revision(self) -> str:
        """Counter bumped on every catalogue change so servers know to reload."""
        return f"{self.prefix}:{{cat}}:rev"

    def member_contacts(self, member_id: str) -> str:
        """Per-member contact state (impressions, dismissals, redemptions)."""
        return f"{self.prefix}:c:{{{member_id}}}"

    def erased_members(self) -> str:
        """Set of erased member ids: publish, exports, weekly picks and the events API leave them out."""
        return f"{self.prefix}:erased"

    def member_erased(self, member_id: str) -> str:
        """Marker of an erased member in the member's own slot (read by event recording on a Cluster)."""
        return f"{self.prefix}:x:{{{member_id}}}"

    def member_event_ids(self, member_id: str) -> str:
        """Sorted set of the member's recent client event ids (event recording on a Cluster only)."""
        return f"{self.prefix}:c:{{{member_id}}}:ids"

    # -- feedback events (slot {ev}: one Lua script records a batch across them) -------------------
    @property
    def events_stream(self) -> str:
        """Stream of every recorded offer event (fields in ``recsys.events.StreamFields``)."""
        return f"{self.prefix}:{{ev}}:events"

    @property
    def event_ids(self) -> str:
        """Sorted set of client event ids seen recently (score: ms received), so a retried batch counts once."""
        return f"{self.prefix}:{{ev}}:ids"

    @property
    def offer_redemptions(self) -> str:
        """Hash offer_id -> redemptions recorded live through the events API (for budgets)."""
        return f"{self.prefix}:{{ev}}:redeemed"

    # -- abuse protection ---------------------------------------------------------------------
    def rate_bucket(self, caller: str) -> str:
        """Token bucket of one API key holder (fields tokens, ts), shared by every replica."""
        return f"{self.prefix}:rate:{caller}"

    def auth_failures(self, address: str) -> str:
        """Counter of one client address's failed authentications in the current window (expires with it)."""
        return f"{self.prefix}:authfail:{address}"


_HEADER = struct.Struct("<BBBB2sHiHHi")
_BIAS = struct.Struct("<f")
# format, tier, flags, pad, country (2 ASCII bytes), qualifying nights ytd, points balance,
# n_factors, n_candidates, points_expiring_on (days since 1970-01-01, -1 when none)

FLAG_CONSENT_PERSONALISATION = 1
FLAG_CONSENT_EMAIL = 2
FLAG_INFORMED = 4  # the member's embedding carries signal (history or features)


@dataclass(frozen=True)
class MemberRecord:
    """What serving knows of one member in one version, packed to a few hundred bytes: profile,
    embedding (float16) and precomputed candidates (uint16 offer index, best first). The candidates'
    scores are not stored: they are the embedding's dot products, recomputed on read for the few
    kept, and leaving them out saves 2 bytes a candidate (a third of a record) in Redis."""

    tier: int
    country: str
    points_balance: int
    qualifying_nights_ytd: int
    points_expiring_day: int  # days since epoch, -1 if none
    consent_personalisation: bool
    consent_email: bool
    informed: bool
    factors: npt.NDArray[np.float16]
    bias: float
    candidates: npt.NDArray[np.uint16]

    def pack(self) -> bytes:
        flags = (
            (FLAG_CONSENT_PERSONALISATION if self.consent_personalisation else 0)
            | (FLAG_CONSENT_EMAIL if self.consent_email else 0)
            | (FLAG_INFORMED if self.informed else 0)
        )
        country = (self.country or "??").encode("ascii", "replace")[:2].ljust(2, b"?")
        header = _HEADER.pack(
            FORMAT_VERSION,
            self.tier,
            flags,
            0,
            country,
            min(self.qualifying_nights_ytd, 65535),
            self.points_balance,
            len(self.factors),
            len(self.candidates),
            self.points_expiring_day,
        )
        return b"".join(
            (
                header,
                np.float32(self.bias).tobytes(),
                self.factors.astype("<f2").tobytes(),
                self.candidates.astype("<u2").tobytes(),
            )
        )

    @classmethod
    def unpack(cls, blob: bytes) -> MemberRecord:
        try:
            fmt, tier, flags, _, country, qn, points, nf, nc, expiring = _HEADER.unpack_from(blob, 0)
        except struct.error as exc:
            raise StoreError("member record is truncated") from exc
        if fmt != FORMAT_VERSION:
            raise StoreError(f"member record has format {fmt}, this server reads {FORMAT_VERSION}")
        off = _HEADER.size
        (bias,) = _BIAS.unpack_from(blob, off)
        off += 4
        factors = np.frombuffer(blob, "<f2", nf, off)
        off += 2 * nf
        candidates = np.frombuffer(blob, "<u2", nc, off)
        return cls(
            tier=tier,
            country=country.decode("ascii", "replace"),
            points_balance=points,
            qualifying_nights_ytd=qn,
            points_expiring_day=expiring,
            consent_personalisation=bool(flags & FLAG_CONSENT_PERSONALISATION),
            consent_email=bool(flags & FLAG_CONSENT_EMAIL),
            informed=bool(flags & FLAG_INFORMED),
            factors=factors,
            bias=bias,
            candidates=candidates,
        )


def member_record_dtype(n_factors: int, n_candidates: int) -> np.dtype[np.void]:
    """The packed MemberRecord as a numpy structured dtype (same bytes as ``MemberRecord.pack``), so a
    publish packs thousands of records with array operations instead of one ``pack`` call each."""
    return np.dtype(
        [
            ("format", "u1"),
            ("tier", "u1"),
            ("flags", "u1"),
            ("pad", "u1"),
            ("country", "S2"),
            ("qualifying_nights_ytd", "<u2"),
            ("points_balance", "<i4"),
            ("n_factors", "<u2"),
            ("n_candidates", "<u2"),
            ("points_expiring_day", "<i4"),
            ("bias", "<f4"),
            ("factors", "<f2", (n_factors,)),
            ("candidates", "<u2", (n_candidates,)),
        ]
    )


def pack_floats(values: npt.NDArray[np.floating]) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def unpack_floats(blob: bytes, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
    return np.frombuffer(blob, "<f4").reshape(shape)
