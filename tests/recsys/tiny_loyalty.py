"""A hand-made LoyaltyData small enough to check features and weighting by hand."""

from __future__ import annotations

import pandas as pd

from recsys.dataset import LoyaltyData

AS_OF = pd.Timestamp("2025-01-01", tz="UTC")


def _dates(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")


def _stamps(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[ns, UTC]")


def tiny_data() -> LoyaltyData:
    """Three members (m3 has no history at all), four offers (o4 never seen), events on both sides of 2025-01-01."""
    members = pd.DataFrame(
        {
            "member_id": ["m1", "m2", "m3"],
            "tier": pd.Series([0, 2, 4], dtype="int8"),
            "home_country": ["CN", "IR", "CN"],
            "enrolled_on": _dates(["2020-01-01", "2021-01-01", "2024-12-01"]),
            "points_balance": [100, 2000, 0],
            "consent_personalisation": [True, True, True],
            "consent_email": [True, False, True],
        }
    )
    partners = pd.DataFrame(
        {
            "partner_id": ["air", "car"],
            "name": ["Air", "Car"],
            "kind": ["airline", "car_rental"],
            "points_to_partner": [0.5, 0.0],
            "partner_to_points": [2.0, 0.0],
            "min_transfer": [1000, 0],
        }
    )
    offers = pd.DataFrame(
        {
            "offer_id": ["o1", "o2", "o3", "o4"],
            "title": ["a", "b", "c", "d"],
            "category": ["stay", "dining", "partner_transfer", "spa"],
            "brand": ["Budget", "Palace", "Air", "Palace"],
            "city": ["Shanghai", None, None, "Tehran"],
            "partner_id": [None, None, "air", None],
            "min_tier": pd.Series([0, 1, 0, 3], dtype="int8"),
            "valid_from": _dates(["2024-01-01"] * 4),
            "valid_to": _dates(["2025-12-31"] * 4),
            "points_cost": [100, 200, 0, 500],
            "value": [1.0, 2.0, 3.0, 4.0],
            "budget": [None, None, None, None],
        }
    )
    stays = pd.DataFrame(
        {
            "stay_id": ["s1", "s2", "s3", "s4", "s5"],
            "member_id": ["m1", "m1", "m2", "m2", "m1"],
            "property_id": ["p1", "p2", "p3", "p3", "p4"],
            "brand": ["Budget", "Budget", "Palace", "Palace", "Palace"],
            "city": ["Shanghai", "Beijing", "Tehran", "Tehran", "Dubai"],
            # s5 is after 2025-01-01: it must not count when training until then.
            "check_in": _dates(["2024-12-01", "2024-09-02", "2024-12-20", "2024-06-01", "2025-01-10"]),
            "nights": [2, 1, 3, 1, 5],
            "revenue": [100.0, 50.0, 1500.0, 500.0, 2500.0],
        }
    )
    dining = pd.DataFrame(
        {
            "dining_id": ["d1", "d2"],
            "member_id": ["m2", "m2"],
            "outlet_id": ["r1", "r2"],
            "property_id": ["p3", "p3"],
            "cuisine": ["persian", "sushi"],
            "date": _dates(["2024-12-21", "2025-02-01"]),
            "spend": [80.0, 120.0],
        }
    )
    activity = pd.DataFrame(
        {
            "activity_id": ["a1", "a2"],
            "member_id": ["m1", "m1"],
            "partner_id": ["air", "air"],
            "activity": ["transfer_out", "earn"],
            "amount": [1000.0, 300.0],
            "date": _dates(["2024-11-01", "2024-12-15"]),
        }
    )
    events = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(1, 9)],
            "member_id": ["m1", "m1", "m1", "m2", "m2", "m2", "m1", "m2"],
            "offer_id": ["o1", "o1", "o2", "o2", "o3", "o3", "o3", "o1"],
            "event": ["impression", "redeem", "dismiss", "click", "click", "redeem", "click", "click"],
            "channel": ["app"] * 8,
            "timestamp": _stamps(
                [
                    "2024-12-01T10:00",
                    "2024-12-02T12:00",  # 30 days before AS_OF
                    "2024-12-02T12:00",
                    "2024-10-03T12:00",  # 90 days before AS_OF: one half-life
                    "2024-12-31T12:00",
                    "2024-12-31T12:00",
                    "2025-01-05T00:00",  # after AS_OF: holdout only
                    "2025-01-20T00:00",
                ]
            ),
        }
    )
    return LoyaltyData(
        members=members,
        offers=offers,
        stays=stays,
        dining=dining,
        partners=partners,
        partner_activity=activity,
        offer_events=events,
    )
