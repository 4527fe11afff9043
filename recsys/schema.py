"""The data contract: every input file, its columns, their types and what they mean.

One ``FileSpec`` per file. ``recsys.validation`` checks every row against these specs and
``docs/data.md`` documents them; keep the three in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from recsys.tiers import TIER_LABELS


class Kind(StrEnum):
    ID = "id"  # non-empty string, no control characters, at most 64 characters
    TEXT = "text"  # free text (may be empty when nullable)
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"  # true/false, 1/0, yes/no
    DATE = "date"  # ISO 8601 date, YYYY-MM-DD
    DATETIME = "datetime"  # ISO 8601 timestamp; naive values are UTC
    CHOICE = "choice"  # one of ``choices``
    TIER = "tier"  # one of classic, silver, gold, platinum, diamond
    LIST = "list"  # values separated by '|', e.g. "app|email"


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    meaning: str
    required: bool = True  # the column must be present in the file
    nullable: bool = False  # an empty cell is allowed
    minimum: float | None = None
    choices: tuple[str, ...] = ()
    references: str | None = None  # "members.member_id": the value must exist there
    default: str | None = None  # used when an optional column is absent


@dataclass(frozen=True)
class FileSpec:
    name: str  # file stem: members.csv / members.parquet
    meaning: str
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()  # columns that must be unique together
    checks: tuple[str, ...] = field(default=())  # row checks across columns, by name

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


OFFER_CATEGORIES = (
    "stay",
    "dining",
    "spa",
    "upgrade",
    "partner_transfer",
    "experience",
    "car_rental",
    "card",
)
CHANNELS = ("app", "email", "web", "sms")
EVENT_KINDS = ("impression", "click", "redeem", "dismiss")
POSITIVE_EVENTS = ("click", "redeem")  # the responses that show interest in an offer
PARTNER_KINDS = ("airline", "car_rental", "card", "ride_hailing", "retail")
PARTNER_ACTIVITIES = ("earn", "transfer_in", "transfer_out")

MEMBERS = FileSpec(
    name="members",
    meaning="One row per loyalty member.",
    key=("member_id",),
    columns=(
        Column("member_id", Kind.ID, "Stable member identifier."),
        Column("tier", Kind.TIER, "Current tier: " + ", ".join(TIER_LABELS) + ", in that order."),
        Column("home_country", Kind.ID, "ISO 3166-1 alpha-2 country of residence, e.g. CN."),
        Column("enrolled_on", Kind.DATE, "Date the member joined the programme."),
        Column("points_balance", Kind.INT, "Points the member can spend now.", minimum=0),
        Column("consent_personalisation", Kind.BOOL, "May their history be used to personalise offers."),
        Column("consent_email", Kind.BOOL, "May they receive marketing email (weekly picks)."),
        Column(
            "points_expiring_on",
            Kind.DATE,
            "Date the oldest points expire; empty when none expire.",
            required=False,
            nullable=True,
        ),
        Column(
            "qualifying_nights_ytd",
            Kind.INT,
            "Tier-qualifying nights so far this year.",
            required=False,
            minimum=0,
            default="0",
        ),
    ),
)

OFFERS = FileSpec(
    name="offers",
    meaning="The offer catalogue with its business rules.",
    key=("offer_id",),
    checks=("valid_from_before_valid_to", "min_tier_not_above_max_tier"),
    columns=(
        Column("offer_id", Kind.ID, "Stable offer identifier."),
        Column("title", Kind.TEXT, "What the member sees."),
        Column("category", Kind.CHOICE, "Kind of offer.", choices=OFFER_CATEGORIES),
        Column("brand", Kind.ID, "Hotel brand the offer belongs to (the partner's name for partner offers)."),
        Column("city", Kind.TEXT, "City where it applies; empty when it applies anywhere.", nullable=True),
        Column(
            "partner_id",
            Kind.ID,
            "Partner behind the offer; empty unless a partner offer.",
            nullable=True,
            references="partners.partner_id",
        ),
        Column("min_tier", Kind.TIER, "Lowest tier that may see the offer."),
        Column("valid_from", Kind.DATE, "First day the offer may be shown."),
        Column("valid_to", Kind.DATE, "Last day the offer may be shown (inclusive)."),
        Column("points_cost", Kind.INT, "Points a redemption costs the member.", minimum=0),
        Column("value", Kind.FLOAT, "What one redemption is worth to the business.", minimum=0),
        Column("budget", Kind.INT, "Redemptions available; empty for unlimited.", nullable=True, minimum=0),
        Column(
            "max_tier", Kind.TIER, "Highest tier that may see it; empty for no ceiling.", required=False, nullable=True
        ),
        Column(
            "regions",
            Kind.LIST,
            "Home countries allowed, '|'-separated; empty for everyone.",
            required=False,
            nullable=True,
        ),
        Column(
            "channels",
            Kind.LIST,
            "Channels it may be shown on, '|'-separated among " + ", ".join(CHANNELS) + "; empty for all.",
            required=False,
            nullable=True,
            choices=CHANNELS,
        ),
        Column(
            "lever", Kind.FLOAT, "Campaign boost multiplier set by marketing.", required=False, minimum=0, default="1"
        ),
        Column(
            "per_member_limit",
            Kind.INT,
            "Redemptions one member may make; empty for unlimited.",
            required=False,
            nullable=True,
            minimum=1,
        ),
        Column(
            "earns_qualifying_nights",
            Kind.BOOL,
            "Redeeming it earns tier-qualifying nights.",
            required=False,
            default="false",
        ),
    ),
)

STAYS = FileSpec(
    name="stays",
    meaning="One row per hotel stay.",
    key=("stay_id",),
    columns=(
        Column("stay_id", Kind.ID, "Stay identifier."),
        Column("member_id", Kind.ID, "Who stayed.", references="members.member_id"),
        Column("property_id", Kind.ID, "Hotel property."),
        Column("brand", Kind.ID, "Brand of the property."),
        Column("city", Kind.TEXT, "City of the property."),
        Column("check_in", Kind.DATE, "Check-in date."),
        Column("nights", Kind.INT, "Nights stayed.", minimum=1),
        Column("revenue", Kind.FLOAT, "Room revenue.", minimum=0),
    ),
)

DINING = FileSpec(
    name="dining",
    meaning="One row per dining bill charged to a member.",
    key=("dining_id",),
    columns=(
        Column("dining_id", Kind.ID, "Bill identifier."),
        Column("member_id", Kind.ID, "Who dined.", references="members.member_id"),
        Column("outlet_id", Kind.ID, "Restaurant or bar."),
        Column("property_id", Kind.ID, "Hotel the outlet is in."),
        Column("cuisine", Kind.ID, "Cuisine of the outlet."),
        Column("date", Kind.DATE, "Date of the bill."),
        Column("spend", Kind.FLOAT, "Amount spent.", minimum=0),
    ),
)

PARTNERS = FileSpec(
    name="partners",
    meaning="Partners outside the hotel group and their conversion rules.",
    key=("partner_id",),
    columns=(
        Column("partner_id", Kind.ID, "Partner identifier."),
        Column("name", Kind.TEXT, "Partner name."),
        Column("kind", Kind.CHOICE, "Kind of partner.", choices=PARTNER_KINDS),
        Column(
            "points_to_partner", Kind.FLOAT, "Partner units one hotel point converts to; 0 if not offered.", minimum=0
        ),
        Column(
            "partner_to_points", Kind.FLOAT, "Hotel points one partner unit converts to; 0 if not offered.", minimum=0
        ),
        Column("min_transfer", Kind.INT, "Smallest number of points per conversion.", minimum=0),
        Column("unit", Kind.TEXT, "Name of the partner's unit, e.g. miles.", required=False, default="units"),
    ),
)

PARTNER_ACTIVITY = FileSpec(
    name="partner_activity",
    meaning="One row per member activity with a partner.",
    key=("activity_id",),
    columns=(
        Column("activity_id", Kind.ID, "Activity identifier."),
        Column("member_id", Kind.ID, "Member.", references="members.member_id"),
        Column("partner_id", Kind.ID, "Partner.", references="partners.partner_id"),
        Column("activity", Kind.CHOICE, "What happened.", choices=PARTNER_ACTIVITIES),
        Column("amount", Kind.FLOAT, "Points (or partner units) involved.", minimum=0),
        Column("date", Kind.DATE, "Date of the activity."),
    ),
)

OFFER_EVENTS = FileSpec(
    name="offer_events",
    meaning="Member responses to offers: the feedback the model learns from.",
    key=("event_id",),
    columns=(
        Column("event_id", Kind.ID, "Event identifier."),
        Column("member_id", Kind.ID, "Member.", references="members.member_id"),
        Column("offer_id", Kind.ID, "Offer.", references="offers.offer_id"),
        Column("event", Kind.CHOICE, "What the member did.", choices=EVENT_KINDS),
        Column("channel", Kind.CHOICE, "Where it happened.", choices=CHANNELS),
        Column("timestamp", Kind.DATETIME, "When it happened (UTC)."),
    ),
)

# In load order: a file's references point only at files before it.
FILES: tuple[FileSpec, ...] = (MEMBERS, PARTNERS, OFFERS, STAYS, DINING, PARTNER_ACTIVITY, OFFER_EVENTS)
FILES_BY_NAME: dict[str, FileSpec] = {f.name: f for f in FILES}
